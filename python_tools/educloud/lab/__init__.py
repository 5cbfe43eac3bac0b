"""The local lab: real Debian 12 hosts booted with systemd-nspawn on this machine.

Public entry points are in :mod:`educloud.lab.orchestrate` (up, status, down, destroy).
"""
