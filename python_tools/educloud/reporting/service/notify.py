"""The moderators' mail, through the approved relay (C5), in French.

The mail says that a report arrived and where to look; the description and the
reporter's e-mail stay in the database (where retention archives them), not in mailboxes.
It is plain text (no HTML a link could inject into), and the reported link is written
with its control and format characters escaped (text.visible): what the moderators read
is what was stored.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .config import SmtpConfig
from .store import Report
from .text import visible

KIND_FR = {"share_link": "lien de partage", "description": "description"}


def message(report: Report, smtp: SmtpConfig, platform: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = f"[{platform}] Nouveau signalement {report.id}"
    mail["From"] = smtp.sender
    mail["To"] = ", ".join(smtp.moderators)
    mail["Date"] = format_datetime(report.created_at)
    mail["Message-ID"] = make_msgid(idstring=report.id)
    mail["Auto-Submitted"] = "auto-generated"
    link = visible(report.link) if report.link else "(aucun lien donné)"
    mail.set_content(
        f"Bonjour,\n\n"
        f"Un contenu a été signalé sur {platform} (charte, garantie C9).\n\n"
        f"Référence : {report.id}\n"
        f"Reçu le : {report.created_at:%d/%m/%Y à %H:%M} (UTC{report.created_at:%z})\n"
        f"Type : {KIND_FR.get(report.content_kind, report.content_kind)}\n"
        f"Lien signalé : {link}\n"
        f"Contact du signalant : {'oui' if report.contact_email else 'non'}\n\n"
        f"La description et le contact ne figurent pas dans ce message. Pour les lire et "
        f"donner suite :\n\n"
        f"    educloud moderation show {report.id}\n"
        f"    educloud moderation takedown {report.id}   (retire le partage public)\n"
        f"    educloud moderation dismiss {report.id}    (classe sans suite)\n\n"
        f"Un contenu reconnu illicite doit être retiré sans délai.\n\n"
        f"-- \nService de signalement de {platform} (message automatique)\n"
    )
    return mail


def send(report: Report, smtp: SmtpConfig, platform: str) -> None:
    """Raises OSError or smtplib.SMTPException when the relay does not take the mail."""
    mail = message(report, smtp, platform)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        client.send_message(mail)
