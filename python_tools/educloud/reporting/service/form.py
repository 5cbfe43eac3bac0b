"""The public form: its anti-bot token and the validation of what it posts.

No CAPTCHA (a third party, C3/C5): a hidden token and a honeypot field people never see.
The token is `<issued>.<nonce>.<mac>`: the time the form was served, a random nonce, and
an HMAC of both and of the client's network (its IPv4 address, its IPv6 /64) with the
server's secret. A post is accepted with a token of the right age (`form_token` in the
configuration: 3 s to 30 min by default), served to the same network, and never used
before: the store keeps each accepted token's nonce until it expires (store.py). Messages
are French: they are shown to the person reporting.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from .config import TokenAges
from .store import NewReport
from .text import has_hidden

DEFAULT_AGES = TokenAges()

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
# PostgreSQL's text type refuses), no C1 controls either (8-bit terminal sequences).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")
_TOKEN = re.compile(r"^(\d{1,12})\.([A-Za-z0-9_-]{16,64})\.([0-9a-f]{64})$")
INVALID_FORM_MESSAGE = (
    "Le formulaire n'est pas valide (il a peut-être été ouvert depuis une autre connexion) : "
    "il vient d'être rechargé, renvoyez-le."
)
REPLAYED_FORM_MESSAGE = (
    "Ce formulaire a déjà été envoyé : chaque formulaire ne sert qu'une fois. Le voici "
    "rechargé ; renvoyez-le seulement pour faire un autre signalement."
)


class InvalidReportError(Exception):
    """The post is refused; `problems` are French sentences for the person reporting."""

    def __init__(self, problems: list[str], values: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.values = values or {}


@dataclass(frozen=True)
class FormToken:
    """A genuine token of the right age: its nonce is spent when the report is stored."""

    nonce: str
    expires_at: int
    """Unix time after which the token is refused anyway (its nonce may be forgotten)."""


@dataclass(frozen=True)
class Submission:
    report: NewReport
    token: FormToken


def issue_token(secret: bytes, now: float | None = None, *, client: str) -> str:
    """A token for a form served now to `client` (its network, see app._client_network)."""
    issued = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(16)
    return f"{issued}.{nonce}.{_mac(secret, issued, nonce, client)}"


def check_token(
    secret: bytes,
    token: str,
    *,
    client: str,
    now: float | None = None,
    ages: TokenAges = DEFAULT_AGES,
) -> FormToken | str:
    """The token when genuine, served to `client` and of the right age; else the French
    reason. Whether it was used already is the store's to say (it keeps the nonces)."""
    match = _TOKEN.match(token)
    if not match or not hmac.compare_digest(
        match.group(3), _mac(secret, match.group(1), match.group(2), client)
    ):
        return INVALID_FORM_MESSAGE
    issued = int(match.group(1))
    age = (time.time() if now is None else now) - issued
    if age < ages.min_age:
        return "Le formulaire a été envoyé trop vite. Patientez quelques secondes et renvoyez-le."
    if age > ages.max_age:
        minutes = max(1, ages.max_age // 60)
        return (
            f"Le formulaire a expiré (il est valable {minutes} minute{'s' if minutes > 1 else ''})"
            " : il vient d'être rechargé, renvoyez-le."
        )
    return FormToken(match.group(2), issued + ages.max_age)


def _mac(secret: bytes, issued: str, nonce: str, client: str) -> str:
    message = f"signalement:{issued}:{nonce}:{client}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def parse(
    body: bytes,
    content_type: str,
    *,
    secret: bytes,
    client: str,
    platform_hosts: tuple[str, ...],
    now: float | None = None,
    ages: TokenAges = DEFAULT_AGES,
) -> Submission:
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
    token = check_token(secret, values.get("jeton", ""), client=client, now=now, ages=ages)
    if isinstance(token, str):
        raise InvalidReportError([token], kept)

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
    if contact is not None and (
        len(contact) > EMAIL_MAX or not _EMAIL.match(contact) or has_hidden(contact)
    ):
        problems.append("L'adresse e-mail de contact n'est pas valide (laissez-la vide si besoin).")
    if values.get("consentement") != "oui":
        problems.append("Cochez la case confirmant que votre signalement est fait de bonne foi.")
    if problems:
        raise InvalidReportError(problems, kept)
    assert kind is not None
    return Submission(NewReport(kind, description, link, contact), token)


def _link_problem(link: str, hosts: tuple[str, ...], *, share_link: bool) -> str | None:
    # A link never needs a control, format (bidi override, zero-width) or space character:
    # each would show the moderators another address than the one stored.
    if len(link) > LINK_MAX or has_hidden(link) or any(c.isspace() for c in link):
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
