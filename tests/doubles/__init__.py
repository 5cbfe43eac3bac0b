"""Test doubles: local stand-ins for services, named as doubles wherever they are used."""
