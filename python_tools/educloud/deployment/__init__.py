"""Everything a command needs from an inventory: hosts and groups, sites and pinned names,
realms, the CA to trust, where secrets come from, and how Ansible is run on it."""
