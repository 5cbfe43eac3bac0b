"""Keycloak providers built from this repository (extensions/), for the keycloak role."""
