"""`educloud init`: a deployment's folder for the operator's own servers, from their answers.

answers.py  the operator's answers (flags, saved answers, questions), checked before anything
places.py   where the folder's parts are (inventory, policies copy, vault password...)
layout.py   the inventory's files, rendered from the answers
policies.py the deployment's copy of policies/, with the destinations the answers declare
write.py    the plan (each file: create, update, unchanged, kept) and its application
"""
