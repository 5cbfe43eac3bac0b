"""The public form: its anti-bot token and the validation of what it posts.

No CAPTCHA (a third party, C3/C5): a hidden token (an HMAC of the time the form was served,
with the server's secret) that must be 3 s to 2 h old, and a honeypot field people never
see. Messages are French: they are shown to the person reporting.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import parse_qsl, urlsplit

from .store import NewReport

TOKEN_MIN_AGE = 3
TOKEN_MAX_AGE = 2 * 3600
DESCRIPTION_MIN = 10
DESCRIPTION_MAX = 4000
LINK_MAX = 2048
EMAIL_MAX = 254

KIND_FIELD_VALUES = {"lien": "share_link", "description": "description"}
FIELDS = ("type", "lien", "description", "contact", "consentement", "jeton", "site_web")
HONEYPOT = "site_web"
# A Nextcloud public link: /s/<token>, also behind /index.php (ShareController's route);
# generated tokens are letters and digits, custom ones (Nextcloud 31) may add - and _.
SHARE_PATH = re.compile(r"^(?:/index\.php)?/s/[A-Za-z0-9_-]{4,64}/?$")
# Text a person types: no control characters but tab and line breaks (and no NUL, which
# PostgreSQL's text type refuses).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")


class InvalidReportError(Exception):
    """The post is refused; `problems` are French sentences for the person reporting."""

    def __init__(self, problems: list[str], values: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.values = values or {}


def issue_token(secret: bytes, now: float | None = None) -> str:
    issued = str(int(time.time() if now is None else now))
    return f"{issued}.{_mac(secret, issued)}"


def check_token(secret: bytes, token: str, now: float | None = None) -> str | None:
    """None when the token is genuine and of the right age, else the French reason."""
    issued, _, mac = token.partition(".")
    if not issued.isdigit() or not hmac.compare_digest(mac, _mac(secret, issued)):
        return "Le formulaire n'est pas valide. Rechargez la page et recommencez."
    age = (time.time() if now is None else now) - int(issued)
    if age < TOKEN_MIN_AGE:
        return "Le formulaire a été envoyé trop vite. Patientez quelques secondes et renvoyez-le."
    if age > TOKEN_MAX_AGE:
        return "Le formulaire a expiré (plus de 2 heures). Rechargez la page et recommencez."
    return None


def _mac(secret: bytes, issued: str) -> str:
    return hmac.new(secret, f"signalement:{issued}".encode(), hashlib.sha256).hexdigest()


def parse(
    body: bytes,
    content_type: str,
    *,
    secret: bytes,
    platform_hosts: tuple[str, ...],
    now: float | None = None,
) -> NewReport:
    """The report a form post describes, or InvalidReportError with every problem found."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidReportError(["Le formulaire doit être envoyé depuis la page de signalement."])
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            encoding="utf-8",
            errors="strict",
            max_num_fields=2 * len(FIELDS),
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidReportError(
            ["Le formulaire reçu est illisible (encodage invalide). Rechargez la page."]
        ) from None
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in FIELDS or key in values:
            raise InvalidReportError(["Le formulaire contient des champs inattendus."])
        values[key] = value
    kept = {k: v for k, v in values.items() if k not in ("jeton", HONEYPOT)}
    if values.get(HONEYPOT):
        raise InvalidReportError(["Le formulaire n'est pas valide. Rechargez la page."], kept)
    token_problem = check_token(secret, values.get("jeton", ""), now)
    if token_problem:
        raise InvalidReportError([token_problem], kept)

    problems: list[str] = []
    kind = KIND_FIELD_VALUES.get(values.get("type", ""))
    if kind is None:
        problems.append("Choisissez le type de contenu : lien de partage ou description.")
    description = values.get("description", "").strip()
    if _CONTROL.search(description):
        problems.append("La description contient des caractères non autorisés.")
    elif len(description) < DESCRIPTION_MIN:
        problems.append(f"Décrivez le contenu signalé (au moins {DESCRIPTION_MIN} caractères).")
    elif len(description) > DESCRIPTION_MAX:
        problems.append(
            f"La description est trop longue ({len(description)} caractères, "
            f"{DESCRIPTION_MAX} au plus)."
        )
    link = values.get("lien", "").strip() or None
    if link is None and kind == "share_link":
        problems.append("Indiquez le lien de partage du contenu signalé.")
    elif link is not None:
        problem = _link_problem(link, platform_hosts, share_link=kind == "share_link")
        if problem:
            problems.append(problem)
    contact = values.get("contact", "").strip() or None
    if contact is not None and (len(contact) > EMAIL_MAX or not _EMAIL.match(contact)):
        problems.append("L'adresse e-mail de contact n'est pas valide (laissez-la vide si besoin).")
    if values.get("consentement") != "oui":
        problems.append("Cochez la case confirmant que votre signalement est fait de bonne foi.")
    if problems:
        raise InvalidReportError(problems, kept)
    assert kind is not None
    return NewReport(kind, description, link, contact)


def _link_problem(link: str, hosts: tuple[str, ...], *, share_link: bool) -> str | None:
    if len(link) > LINK_MAX or _CONTROL.search(link) or any(c.isspace() for c in link):
        return "Le lien n'est pas une adresse valide."
    try:
        parts = urlsplit(link)
        port = parts.port
    except ValueError:
        return "Le lien n'est pas une adresse valide."
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or parts.username or parts.password:
        return "Le lien doit être une adresse https:// de la plateforme."
    if host not in hosts or port not in (None, 443):
        return (
            "Le lien doit pointer vers la plateforme ("
            + ", ".join(hosts)
            + ") : les contenus d'autres sites se signalent à ces sites."
        )
    if share_link and not SHARE_PATH.match(parts.path):
        return "Un lien de partage a la forme https://" + hosts[0] + "/s/… : vérifiez le lien."
    return None
