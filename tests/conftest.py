"""Shared pytest settings: the repository root on sys.path for the test helpers."""
