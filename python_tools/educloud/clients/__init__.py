"""Clients of the services the stack runs: Nextcloud (HTTP APIs), more to come."""
