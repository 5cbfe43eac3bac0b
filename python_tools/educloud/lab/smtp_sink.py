"""The lab's mail relay: an SMTP sink that files each message in a maildir, delivering nothing.

Lab hosts mail through the relay of policies/egress.yml (purpose mail_relay), as production
servers do; in the lab that relay is this sink on the bridge, so tests read what a service
sent from <lab dir>/mail/new/. Standard library only: smtpd left Python in 3.12 and the
protocol subset a relay's clients use (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) is
short; aiosmtpd would be one more dependency for the same thing.

Run: python -m educloud.lab.smtp_sink --bind 198.18.0.1 --port 2525 --maildir DIR
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import socketserver
import threading
import time
from pathlib import Path

# Largest message accepted (bytes), announced with EHLO's SIZE.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_counter = itertools.count()
_counter_lock = threading.Lock()


def deliver(maildir: Path, sender: str, recipients: list[str], message: bytes) -> Path:
    """Write one message into maildir/new (through tmp/, as the maildir format wants)."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    with _counter_lock:
        sequence = next(_counter)
    name = f"{time.time_ns()}.P{os.getpid()}Q{sequence}.{socket.gethostname()}"
    envelope = f"Return-Path: <{sender}>\r\n" + "".join(
        f"Delivered-To: {recipient}\r\n" for recipient in recipients
    )
    temporary = maildir / "tmp" / name
    temporary.write_bytes(envelope.encode("utf-8") + message)
    target = maildir / "new" / name
    temporary.rename(target)
    return target


class _Session(socketserver.StreamRequestHandler):
    server: SinkServer

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")

    def _read_data(self) -> bytes | None:
        """The DATA section, dot-unstuffed; None when it exceeds the size limit."""
        lines: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(MAX_MESSAGE_BYTES + 3)
            if not line or line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size <= MAX_MESSAGE_BYTES:
                lines.append(line)
        return b"".join(lines) if size <= MAX_MESSAGE_BYTES else None

    def handle(self) -> None:
        self._reply(f"220 {socket.gethostname()} educloud lab SMTP sink")
        sender: str | None = None
        recipients: list[str] = []
        while True:
            raw = self.rfile.readline(4096)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self._reply(f"250-{socket.gethostname()}")
                self._reply("250-8BITMIME")
                self._reply(f"250 SIZE {MAX_MESSAGE_BYTES}")
            elif verb == "HELO":
                self._reply(f"250 {socket.gethostname()}")
            elif verb == "MAIL" and argument.upper().startswith("FROM:"):
                sender = argument[5:].strip().split(" ")[0].strip("<>")
                recipients = []
                self._reply("250 OK")
            elif verb == "RCPT" and argument.upper().startswith("TO:"):
                if sender is None:
                    self._reply("503 MAIL first")
                    continue
                recipients.append(argument[3:].strip().split(" ")[0].strip("<>"))
                self._reply("250 OK")
            elif verb == "DATA":
                if sender is None or not recipients:
                    self._reply("503 MAIL and RCPT first")
                    continue
                self._reply("354 End data with <CR><LF>.<CR><LF>")
                message = self._read_data()
                if message is None:
                    self._reply("552 Message too large")
                else:
                    path = deliver(self.server.maildir, sender, recipients, message)
                    self._reply(f"250 OK queued as {path.name}")
                sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                self._reply("250 OK")
            elif verb == "NOOP":
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 Bye")
                return
            else:
                self._reply("502 Command not implemented")


class SinkServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], maildir: Path) -> None:
        self.maildir = maildir
        super().__init__(address, _Session)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The lab's SMTP sink (maildir).")
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    for sub in ("tmp", "new", "cur"):
        (args.maildir / sub).mkdir(parents=True, exist_ok=True)
    with SinkServer((args.bind, args.port), args.maildir) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
