"""Retention and deletion on time (C7): the rules from the policy, the stores they apply
to, the journal."""
