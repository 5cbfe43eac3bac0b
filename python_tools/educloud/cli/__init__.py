"""The `educloud` command line: one module per command group (main.py holds the root and
registers the others); each parses, calls the library, prints."""
