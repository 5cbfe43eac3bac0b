"""Transparency (C6): the documents generated from the policies."""
