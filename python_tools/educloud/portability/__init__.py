"""Portability (C8): a user's data exported in open formats."""
