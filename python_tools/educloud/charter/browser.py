"""Load a public page in a real browser and record every origin it contacts (C3).

Headless Chromium from Debian's package (Playwright cannot download its own browser
here), driven by Playwright. Nothing leaves the deployment during the check: requests
to any other origin are recorded, then aborted; Chromium's own resolver maps every
other name to nowhere, so background services cannot phone home either.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from educloud.errors import EducloudError
from educloud.netpin import check_target

CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Cookie:
    name: str
    domain: str
    secure: bool


@dataclass
class PageVisit:
    url: str
    final_url: str = ""
    status: int | None = None
    requested: list[str] = field(default_factory=list)  # every URL the page asked for
    cookies: list[Cookie] = field(default_factory=list)

    @property
    def origins(self) -> list[str]:
        seen: list[str] = []
        for url in self.requested:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else parts.scheme + ":"
            if origin not in seen:
                seen.append(origin)
        return seen


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _own(url: str, own_names: frozenset[str]) -> bool:
    scheme = urlsplit(url).scheme
    return scheme in {"data", "blob", "about"} or _host(url) in own_names


def third_party_requests(visit: PageVisit, own_names: Iterable[str]) -> list[str]:
    names = frozenset(n.lower() for n in own_names)
    return [url for url in visit.requested if not _own(url, names)]


def cookie_problems(visit: PageVisit, own_names: Iterable[str]) -> list[str]:
    names = frozenset(n.lower() for n in own_names)
    problems = []
    for cookie in visit.cookies:
        domain = cookie.domain.lstrip(".").lower()
        if not any(name == domain or name.endswith("." + domain) for name in names):
            problems.append(f"third-party cookie {cookie.name} for {cookie.domain}")
        if not cookie.secure:
            problems.append(f"cookie {cookie.name} ({cookie.domain}) lacks Secure")
    return problems


def visit_pages(
    urls: Iterable[str], pins: Mapping[str, str], timeout_s: float = 30
) -> list[PageVisit]:
    """Load each URL (following redirects) with every name outside `pins` unreachable."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    names = frozenset(n.lower() for n in pins)
    for address in pins.values():
        check_target(address)
        ipaddress.ip_address(address)
    rules = ", ".join(
        [f"MAP {name} {address}" for name, address in pins.items()] + ["MAP * ~NOTFOUND"]
    )
    visits = []
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    f"--host-resolver-rules={rules}",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--no-sandbox",  # runs as root in CI; the pages are the deployment's own
                ],
            )
        except PlaywrightError as exc:
            raise EducloudError(
                f"cannot start {CHROMIUM}: apt-get install chromium ({exc})"
            ) from exc
        try:
            for url in urls:
                # The certificate is checked by the TLS check (sslyze with the deployment's
                # CA); this check is about which origins a page contacts.
                context = browser.new_context(ignore_https_errors=True, locale="fr-FR")
                visit = PageVisit(url)

                def route(request_route: object, request: object, visit: PageVisit = visit) -> None:
                    req_url = request.url  # type: ignore[attr-defined]
                    visit.requested.append(req_url)
                    if _own(req_url, names):
                        request_route.continue_()  # type: ignore[attr-defined]
                    else:
                        request_route.abort()  # type: ignore[attr-defined]

                context.route("**/*", route)
                page = context.new_page()
                try:
                    response = page.goto(url, wait_until="networkidle", timeout=timeout_s * 1000)
                    visit.status = response.status if response else None
                except PlaywrightError as exc:
                    raise EducloudError(f"{url} did not load: {exc}".splitlines()[0]) from exc
                visit.final_url = page.url
                visit.cookies = [
                    Cookie(c.get("name", ""), c.get("domain", ""), bool(c.get("secure")))
                    for c in context.cookies()
                ]
                visits.append(visit)
                context.close()
        finally:
            browser.close()
    return visits
