"""Reporting illicit content (C9): the report service and the moderators' tools."""
