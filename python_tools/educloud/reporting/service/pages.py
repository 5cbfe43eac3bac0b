"""The French pages people see: the form, the receipt, the refusals. No script, no
third-party resource; the one inline style is allowed by its hash in the CSP (C3).

Referrer policy `same-origin` (header and <meta>): the form's post then carries its real
Origin, which the service checks (app._check_origin). Under `no-referrer` (the reverse
proxy's default header, which the <meta> overrides in the page) a browser sends
`Origin: null` with a POST, and a refused cross-site post could not be told from the
form's own. Nothing is ever sent to another site: the pages load nothing from elsewhere.
Everything a person typed is escaped (html.escape), never markup."""

from __future__ import annotations

import base64
import hashlib
from html import escape

from .form import DESCRIPTION_MAX, DESCRIPTION_MIN, HONEYPOT

STYLE = (
    "body{font-family:sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#1b1b1b}"
    "label{display:block;margin-top:1rem;font-weight:bold}"
    "input[type=url],input[type=email],textarea{width:100%;box-sizing:border-box;"
    "padding:.4rem;font:inherit}"
    "fieldset{border:1px solid #999;margin-top:1rem}fieldset label{display:inline;"
    "font-weight:normal}"
    ".aide{font-size:.9rem;color:#444}"
    ".erreurs{border-left:4px solid #c00;padding:.5rem 1rem;background:#fdecec}"
    ".reference{font-size:1.4rem;font-weight:bold}"
    ".piege{position:absolute;left:-10000px}"
    "button{margin-top:1.5rem;padding:.5rem 1.2rem;font:inherit}"
)
REFERRER_POLICY = "same-origin"
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Security-Policy", CSP),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", REFERRER_POLICY),
]


def _page(title: str, platform: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="{REFERRER_POLICY}">'
        f"<title>{escape(title)} - {escape(platform)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    ).encode()


def form_page(
    *,
    platform: str,
    action: str,
    privacy_url: str,
    token: str,
    values: dict[str, str] | None = None,
    problems: list[str] | None = None,
) -> bytes:
    values = values or {}

    def value(name: str) -> str:
        return escape(values.get(name, ""), quote=True)

    def checked(name: str, expected: str) -> str:
        return " checked" if values.get(name) == expected else ""

    errors = ""
    if problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in problems)
        errors = (
            '<div class="erreurs" role="alert"><p>Votre signalement n\'a pas été '
            f"enregistré :</p><ul>{items}</ul></div>"
        )
    kind = values.get("type", "lien")
    body = f"""<h1>Signaler un contenu illicite ou inapproprié</h1>
<p>Vous avez vu sur {escape(platform)} un contenu illicite ou inapproprié (partage public,
document, image) ? Signalez-le ici, sans compte. Les modérateurs de la plateforme examinent
chaque signalement et retirent sans délai un contenu reconnu illicite.</p>
{errors}
<form method="post" action="{escape(action, quote=True)}">
<fieldset><legend>Type de contenu signalé</legend>
<input type="radio" id="type-lien" name="type" value="lien"{" checked" if kind == "lien" else ""}>
<label for="type-lien">Un lien de partage</label>
<input type="radio" id="type-description" name="type" value="description"\
{checked("type", "description")}>
<label for="type-description">Une description du contenu</label>
</fieldset>
<label for="lien">Lien du contenu (facultatif pour une description)</label>
<input type="url" id="lien" name="lien" maxlength="2048" value="{value("lien")}"
 placeholder="https://…/s/…">
<p class="aide">Uniquement un lien de cette plateforme.</p>
<label for="description">Description du contenu et du problème</label>
<textarea id="description" name="description" rows="8" required minlength="{DESCRIPTION_MIN}"
 maxlength="{DESCRIPTION_MAX}">{value("description")}</textarea>
<p class="aide">Entre {DESCRIPTION_MIN} et {DESCRIPTION_MAX} caractères. Ne recopiez pas
le contenu illicite lui-même.</p>
<label for="contact">Votre adresse e-mail (facultatif)</label>
<input type="email" id="contact" name="contact" maxlength="254" value="{value("contact")}">
<p class="aide">Seulement si vous souhaitez être recontacté·e au sujet de ce signalement.</p>
<div class="piege" aria-hidden="true"><label for="{HONEYPOT}">Ne pas remplir ce champ</label>
<input type="text" id="{HONEYPOT}" name="{HONEYPOT}" tabindex="-1" autocomplete="off"></div>
<input type="hidden" name="jeton" value="{escape(token, quote=True)}">
<label><input type="checkbox" name="consentement" value="oui"{checked("consentement", "oui")}
 required> Je fais ce signalement de bonne foi ; les informations données sont exactes à ma
connaissance.</label>
<button type="submit">Envoyer le signalement</button>
</form>
<p class="aide">Les signalements et leurs suites sont conservés pour la durée indiquée dans la
<a href="{escape(privacy_url, quote=True)}">politique de confidentialité</a>. Votre adresse
IP n'est pas enregistrée.</p>"""
    return _page("Signaler un contenu", platform, body)


def receipt_page(*, platform: str, reference: str) -> bytes:
    body = f"""<h1>Signalement enregistré</h1>
<p>Merci. Votre signalement a bien été transmis aux modérateurs de {escape(platform)}.</p>
<p>Référence du signalement :</p>
<p class="reference">{escape(reference)}</p>
<p>Conservez cette référence : elle permet de suivre votre signalement auprès des
modérateurs.</p>"""
    return _page("Signalement enregistré", platform, body)


def message_page(*, platform: str, title: str, message: str, back: str | None = None) -> bytes:
    link = f'<p><a href="{escape(back, quote=True)}">Revenir au formulaire</a></p>' if back else ""
    body = f"<h1>{escape(title)}</h1>\n<p>{escape(message)}</p>\n{link}"
    return _page(title, platform, body)
