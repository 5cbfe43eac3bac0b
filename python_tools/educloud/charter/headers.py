"""Security headers of a public page (C10) and its Content-Security-Policy (C3)."""

from __future__ import annotations

from collections.abc import Mapping

# ANSSI and Mozilla's web security guidelines: one year of HSTS at least.
MIN_HSTS_SECONDS = 31536000
# Sources that let a page load from anywhere (third-party scripts, fonts, pixels, CDNs).
OPEN_SOURCES = ("*", "http:", "https:", "data:", "blob:")
# data: and blob: URLs hold content the page built itself, never a third party's: accepted
# for images, fonts, media and workers (Nextcloud's own CSP allows them there), never for
# scripts, styles or frames.
LOCAL_CONTENT_SOURCES = {
    "img-src": ("data:", "blob:"),
    "font-src": ("data:",),
    "media-src": ("blob:",),
    "worker-src": ("blob:",),
}
FETCH_DIRECTIVES = (
    "default-src",
    "script-src",
    "style-src",
    "img-src",
    "font-src",
    "connect-src",
    "frame-src",
    "media-src",
    "object-src",
    "worker-src",
)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def parse_csp(value: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            directives.setdefault(tokens[0].lower(), tokens[1:])
    return directives


def security_header_problems(headers: Mapping[str, str]) -> list[str]:
    h = _lower(headers)
    problems = []
    hsts = h.get("strict-transport-security", "")
    max_age = next(
        (p.split("=", 1)[1] for p in hsts.replace(" ", "").split(";") if p.startswith("max-age=")),
        "",
    )
    if not max_age.isdigit() or int(max_age) < MIN_HSTS_SECONDS:
        problems.append(f"Strict-Transport-Security max-age under one year: {hsts!r}")
    if h.get("x-content-type-options", "").lower() != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    csp = parse_csp(h.get("content-security-policy", ""))
    frame_ok = csp.get("frame-ancestors") in (["'self'"], ["'none'"])
    if not frame_ok and h.get("x-frame-options", "").upper() not in {"DENY", "SAMEORIGIN"}:
        problems.append("framing by other sites is not refused (frame-ancestors / X-Frame-Options)")
    if h.get("referrer-policy", "").lower() not in {
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    }:
        problems.append(f"Referrer-Policy leaks addresses: {h.get('referrer-policy')!r}")
    server = h.get("server", "")
    if any(ch.isdigit() for ch in server):
        problems.append(f"Server header discloses a version: {server!r}")
    return problems


def csp_problems(headers: Mapping[str, str]) -> list[str]:
    """Empty when the page may only load from its own origin (no third party at all)."""
    value = _lower(headers).get("content-security-policy", "")
    if not value:
        return ["no Content-Security-Policy"]
    csp = parse_csp(value)
    if "default-src" not in csp:
        return ["Content-Security-Policy has no default-src"]
    problems = []
    for directive in FETCH_DIRECTIVES:
        for source in csp.get(directive, []):
            if source in OPEN_SOURCES and source not in LOCAL_CONTENT_SOURCES.get(directive, ()):
                problems.append(f"{directive} allows {source}")
            elif not source.startswith("'") and source not in OPEN_SOURCES:
                problems.append(f"{directive} allows another origin: {source}")
    return problems
