#!/usr/bin/python3
"""Mail the operators that a service of this host failed (C10: failures are seen).

Installed by the educloud common role as /usr/local/sbin/educloud-failure-mail, and run by
educloud-failure-mail@.service, which a unit names in OnFailure= (the daily integrity check,
for one). Standard library only, so that a server needs no educloud package.

    educloud-failure-mail UNIT
        builds a mail in French (the unit's description, its state, the last lines of its
        journal) and hands it to the host's send-only transport (/usr/sbin/sendmail, Debian's
        msmtp-mta), addressed to root, which /etc/aliases gives to the operators

    educloud-failure-mail --print UNIT
        prints the mail instead of sending it (a dry run)

It exits non-zero when the transport refused the mail, so that the failure of the mail
itself shows in `systemctl --failed` and the journal.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

SENDMAIL = "/usr/sbin/sendmail"
JOURNAL_LINES = 200
# The sender the role configures (educloud-failure-mail@.service's Environment=).
SENDER_VARIABLE = "EDUCLOUD_FAILURE_MAIL_FROM"
RECIPIENT = "root"
_UNIT = re.compile(r"^[A-Za-z0-9:_.@\\-]+$")
_UNIT_TYPES = (".service", ".timer", ".socket", ".mount", ".path", ".target")


def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"(indisponible : {error})"
    if result.returncode != 0:
        return f"(indisponible : {result.stderr.strip() or result.returncode})"
    return result.stdout


def unit_facts(unit: str) -> dict[str, str]:
    """Description, state, result and last run's id of UNIT as systemd reports them."""
    properties = "Description,ActiveState,Result,ExecMainStatus,InvocationID"
    output = _run(["systemctl", "show", f"--property={properties}", unit])
    facts = {}
    for line in output.splitlines():
        name, _, value = line.partition("=")
        if value:
            facts[name] = value
    return facts


def journal_tail(unit: str, invocation: str = "", lines: int = JOURNAL_LINES) -> str:
    """The last LINES of the unit's failed run (its invocation), or of its journal."""
    match = [f"_SYSTEMD_INVOCATION_ID={invocation}"] if invocation else ["-u", unit]
    return _run(["journalctl", *match, "-n", str(lines), "--no-pager", "-o", "short-iso"])


def failure_message(
    unit: str, host: str, sender: str, facts: dict[str, str], journal: str
) -> EmailMessage:
    description = facts.get("Description", unit)
    message = EmailMessage()
    message["Subject"] = f"[educloud] Échec sur {host} : {description}"
    message["From"] = sender
    message["To"] = RECIPIENT
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=host)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Educloud-Unit"] = unit
    shown = ("ActiveState", "Result", "ExecMainStatus")
    state = ", ".join(f"{name} {facts[name]}" for name in shown if name in facts)
    message.set_content(
        "Bonjour,\n\n"
        f"Le service {unit} a échoué sur {host}.\n"
        f"{description}\n"
        f"État : {state or 'inconnu'}\n\n"
        f"Son journal (dernier lancement) :\n\n{journal.rstrip()}\n\n"
        f"Pour voir l'état et relancer, sur {host} :\n\n"
        f"    systemctl status {unit}\n"
        f"    journalctl -u {unit}\n"
        f"    systemctl start {unit}\n\n"
        "-- \nServeurs educloud (message automatique)\n",
        # 7-bit on the wire: any relay takes it, with or without 8BITMIME.
        cte="quoted-printable",
    )
    return message


def send(message: EmailMessage) -> None:
    """Hands MESSAGE to the transport; raises RuntimeError when it refuses it."""
    # -t: recipients from the headers (root, which the transport's aliases expand);
    # -i: a line holding a dot does not end the message.
    result = subprocess.run(
        [SENDMAIL, "-t", "-i"],
        input=message.as_bytes(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        error = result.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"{SENDMAIL} exited {result.returncode}: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mail the operators that a unit failed.")
    parser.add_argument("unit", help="the failed systemd unit (OnFailure's %%n)")
    parser.add_argument("--print", action="store_true", help="print the mail, send nothing")
    args = parser.parse_args(argv)
    if not _UNIT.match(args.unit):
        print(f"educloud-failure-mail: not a unit name: {args.unit!r}", file=sys.stderr)
        return 2
    # As systemctl: a name without a type is a service.
    unit = args.unit if args.unit.endswith(_UNIT_TYPES) else f"{args.unit}.service"
    sender = os.environ.get(SENDER_VARIABLE, "")
    if "@" not in sender:
        print(f"educloud-failure-mail: {SENDER_VARIABLE} is not an address", file=sys.stderr)
        return 2
    host = socket.gethostname()
    facts = unit_facts(unit)
    journal = journal_tail(unit, facts.get("InvocationID", ""))
    message = failure_message(unit, host, sender, facts, journal)
    if args.print:
        sys.stdout.write(message.as_string())
        return 0
    try:
        send(message)
    except (OSError, subprocess.TimeoutExpired, RuntimeError) as error:
        print(
            f"educloud-failure-mail: {unit} failed on {host}; mail not sent: {error}",
            file=sys.stderr,
        )
        return 1
    print(f"educloud-failure-mail: {unit} failed on {host}; mail handed to {SENDMAIL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
