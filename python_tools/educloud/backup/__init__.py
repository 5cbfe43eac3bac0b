"""Backups (issue #8): the backup hosts' status, their agent over SSH, and the restore drill.

The backup role installs an agent (`/usr/local/sbin/educloud-backup`) on every host of the
`backup` group; restic sends encrypted snapshots to a host of `backup_target`, where its
account may only append (rclone serve restic over SSH); the operators forget and prune.
This package reads what the agent reports and drives it from the operator's machine.
"""
