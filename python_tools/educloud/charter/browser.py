"""Load pages in a real browser and record every origin they contact (C3).

Headless Chromium from Debian's package (Playwright cannot download its own browser
here), driven by Playwright. Nothing leaves the deployment during the check: requests
and WebSockets to any other origin are recorded, then aborted; Chromium's own resolver
maps every other name to nowhere, so background services cannot phone home either.

Recorded for each page: every request of the page, its frames, workers and service
workers, every WebSocket, and every load the page's Content-Security-Policy refused
before it reached the network (a third-party script the CSP blocks is still a
third-party script in the page). A page that answers an error status, or nothing,
proves nothing about what it loads: it is a problem of its own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from educloud.errors import EducloudError
from educloud.netpin import check_target

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        Page,
        Request,
        Route,
        WebSocket,
        WebSocketRoute,
        Worker,
    )

CHROMIUM = "/usr/bin/chromium"
# How long a page may keep the network busy after it loaded (polling, long requests):
# what it asked for until then is recorded, the rest is not waited for.
NETWORK_IDLE_S = 10
# Reports every load the page's CSP refused (a document event, fired before any request).
_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  try { window.__educloudCspViolation(event.blockedURI, event.effectiveDirective); }
  catch (error) {}
}, true);
"""


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
    error: str = ""  # why no response came, when none did
    requested: list[str] = field(default_factory=list)  # every URL the page asked for
    refused_by_csp: list[str] = field(default_factory=list)  # loads the CSP stopped
    cookies: list[Cookie] = field(default_factory=list)

    @property
    def origins(self) -> list[str]:
        seen: list[str] = []
        for url in [*self.requested, *self.refused_by_csp]:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else parts.scheme + ":"
            if origin not in seen:
                seen.append(origin)
        return seen

    def record(self, url: str) -> None:
        if url not in self.requested:
            self.requested.append(url)


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _own(url: str, own_names: frozenset[str]) -> bool:
    scheme = urlsplit(url).scheme
    return scheme in {"data", "blob", "about"} or _host(url) in own_names


def third_party_requests(visit: PageVisit, own_names: Iterable[str]) -> list[str]:
    """Every URL outside the deployment the page asked for, requests and WebSockets, and
    those its CSP refused (marked so)."""
    names = frozenset(n.lower() for n in own_names)
    found = [url for url in visit.requested if not _own(url, names)]
    found += [
        f"{url} (refused by the CSP)"
        for url in visit.refused_by_csp
        if not _own(url, names) and url not in found
    ]
    return found


def status_problems(visit: PageVisit) -> list[str]:
    """A page that did not answer, or answered an error status."""
    if visit.status is None:
        return [f"{visit.url} gave no response ({visit.error or 'unknown error'})"]
    if visit.status >= 400:
        return [f"{visit.url} answered HTTP {visit.status} ({visit.final_url or visit.url})"]
    return []


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


def page_problems(visit: PageVisit, own_names: Iterable[str]) -> list[str]:
    """Everything wrong with one page: its status, other origins, cookies."""
    names = list(own_names)
    outside = third_party_requests(visit, names)
    problems = status_problems(visit)
    if outside:
        problems.append(f"{visit.url} contacts outside the deployment: {', '.join(outside)}")
    problems += [f"{visit.url}: {p}" for p in cookie_problems(visit, names)]
    return problems


@contextmanager
def _chromium(pins: Mapping[str, str]) -> Iterator[Browser]:
    """Chromium resolving the pinned names only: every other name is NOTFOUND."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    for address in pins.values():
        check_target(address)
        ipaddress.ip_address(address)
    rules = ", ".join(
        [f"MAP {name} {address}" for name, address in pins.items()] + ["MAP * ~NOTFOUND"]
    )
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
            yield browser
        finally:
            browser.close()


class _Recorder:
    """One browser context whose every contact is recorded into the current visit."""

    def __init__(self, browser: Browser, own_names: frozenset[str]) -> None:
        self.names = own_names
        self.visit = PageVisit("")
        # The certificate is checked by the TLS check (sslyze with the deployment's CA);
        # this check is about which origins a page contacts.
        self.context: BrowserContext = browser.new_context(ignore_https_errors=True, locale="fr-FR")
        self.context.route("**/*", self._route)
        # The context's request event also sees what route() may not: requests of workers
        # and service workers, and those answered from a service worker or the cache.
        self.context.on("request", self._request)
        self.context.on("serviceworker", lambda worker: self.visit.record(worker.url))
        self.context.route_web_socket(re.compile(".*"), self._route_web_socket)
        self.context.on("page", self._watch_page)
        self.context.expose_binding("__educloudCspViolation", self._csp_violation)
        self.context.add_init_script(_CSP_VIOLATIONS)
        self.page: Page = self.context.new_page()
        self._watch_page(self.page)  # in case its "page" event came before the handler ran

    def _route(self, route: Route, request: Request) -> None:
        self.visit.record(request.url)
        if _own(request.url, self.names):
            route.continue_()
        else:
            route.abort()

    def _request(self, request: Request) -> None:
        self.visit.record(request.url)

    def _route_web_socket(self, socket: WebSocketRoute) -> None:
        self.visit.record(socket.url)
        if _own(socket.url, self.names):
            socket.connect_to_server()
        else:
            socket.close()

    def _web_socket(self, socket: WebSocket) -> None:
        self.visit.record(socket.url)

    def _worker(self, worker: Worker) -> None:
        self.visit.record(worker.url)

    def _watch_page(self, page: Page) -> None:
        page.on("websocket", self._web_socket)
        page.on("worker", self._worker)

    def _csp_violation(self, source: object, blocked: object, directive: object) -> None:
        url = str(blocked or "")
        if "://" in url and url not in self.visit.refused_by_csp:
            self.visit.refused_by_csp.append(url)

    def load(self, url: str, timeout_s: float) -> PageVisit:
        """Open `url` (following redirects) in this context as a new visit."""
        self.visit = PageVisit(url)
        self._goto(url, timeout_s)
        return self.visit

    def _goto(self, url: str, timeout_s: float) -> None:
        from playwright.sync_api import Error as PlaywrightError

        try:
            response = self.page.goto(url, wait_until="load", timeout=timeout_s * 1000)
            self.visit.status = response.status if response else None
            if response is None:
                self.visit.error = "no response to the navigation"
        except PlaywrightError as exc:
            self.visit.error = str(exc).splitlines()[0]
        self.settle()

    def settle(self) -> None:
        """Let the page finish what it loads, then note where it ended and its cookies."""
        from playwright.sync_api import Error as PlaywrightError

        with suppress(PlaywrightError):  # still busy: what it asked for so far is recorded
            self.page.wait_for_load_state("networkidle", timeout=NETWORK_IDLE_S * 1000)
        self.visit.final_url = self.page.url
        self.visit.cookies = [
            Cookie(c.get("name", ""), c.get("domain", ""), bool(c.get("secure")))
            for c in self.context.cookies()
        ]

    def sign_in(self, login_url: str, username: str, password: str, timeout_s: float) -> None:
        """Fill the identity provider's login form the page shows; wait until it leaves
        the login pages for `login_url` again."""
        from playwright.sync_api import Error as PlaywrightError

        page = self.page
        try:
            page.fill("input[name=username]", username, timeout=timeout_s * 1000)
            page.fill("input[name=password]", password, timeout=timeout_s * 1000)
            page.press("input[name=password]", "Enter")
            page.wait_for_url(
                lambda url: url.startswith(login_url) and "login-actions" not in url,
                timeout=timeout_s * 1000,
            )
        except PlaywrightError as exc:
            # What the identity provider shows instead: its page title, heading and message.
            shown = [page.url]
            for selector in ("title", "#kc-page-title", "[id^=input-error], .kc-feedback-text"):
                with suppress(PlaywrightError):
                    text = page.locator(selector).first.text_content(timeout=1000) or ""
                    shown.append(" ".join(text.split()))
            raise EducloudError(
                f"sign-in as {username} did not come back to {login_url}: "
                + " | ".join(s for s in shown if s)
                + f" ({str(exc).splitlines()[0]})"
            ) from exc
        self.settle()

    def close(self) -> None:
        self.context.close()


def visit_pages(
    urls: Iterable[str], pins: Mapping[str, str], timeout_s: float = 30
) -> list[PageVisit]:
    """Load each URL (following redirects) in a fresh context, with every name outside
    `pins` unreachable."""
    names = frozenset(n.lower() for n in pins)
    visits = []
    with _chromium(pins) as browser:
        for url in urls:
            recorder = _Recorder(browser, names)
            try:
                visits.append(recorder.load(url, timeout_s))
            finally:
                recorder.close()
    return visits


def visit_signed_in(
    login_url: str,
    username: str,
    password: str,
    then: Iterable[str],
    pins: Mapping[str, str],
    timeout_s: float = 30,
) -> list[PageVisit]:
    """Sign in at `login_url` (a page that sends to the login form), then load it again
    and each of `then` in the same context, as a signed-in user would. The first visit
    is the sign-in itself (login form and redirects)."""
    names = frozenset(n.lower() for n in pins)
    with _chromium(pins) as browser:
        recorder = _Recorder(browser, names)
        try:
            sign_in = recorder.load(login_url, timeout_s)
            if status_problems(sign_in):
                return [sign_in]
            recorder.sign_in(login_url, username, password, timeout_s)
            visits = [sign_in, recorder.load(login_url, timeout_s)]
            visits += [recorder.load(url, timeout_s) for url in then]
        finally:
            recorder.close()
    return visits
