"""Accounts from an academy's directory exports: read, check, plan, apply (`educloud accounts`)."""
