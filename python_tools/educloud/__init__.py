"""educloud: deploy a sovereign education cloud and verify its charter guarantees."""

__version__ = "0.1.0"
