"""Security headers (C10) and a Content-Security-Policy closed to third parties (C3).

Two views of the same headers: what a site answers (`security_header_problems`,
`csp_problems`) and what nginx would send from every server and location of its
configuration (`location_header_problems`, read from `nginx -T`). The second matters
because of nginx's inheritance of add_header: a location with one add_header of its own
sends none of the server's (https://nginx.org/en/docs/http/ngx_http_headers_module.html).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

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
# Every fetch directive of CSP Level 3 (and prefetch-src, still read by some browsers),
# each with the directives it falls back to when absent, nearest first
# (https://www.w3.org/TR/CSP3/#directive-fallback-list).
FETCH_DIRECTIVES: dict[str, tuple[str, ...]] = {
    "default-src": (),
    "script-src": ("default-src",),
    "script-src-elem": ("script-src", "default-src"),
    "script-src-attr": ("script-src", "default-src"),
    "style-src": ("default-src",),
    "style-src-elem": ("style-src", "default-src"),
    "style-src-attr": ("style-src", "default-src"),
    "img-src": ("default-src",),
    "font-src": ("default-src",),
    "connect-src": ("default-src",),
    "media-src": ("default-src",),
    "object-src": ("default-src",),
    "manifest-src": ("default-src",),
    "prefetch-src": ("default-src",),
    "child-src": ("default-src",),
    "frame-src": ("child-src", "default-src"),
    "fenced-frame-src": ("frame-src", "child-src", "default-src"),
    "worker-src": ("child-src", "script-src", "default-src"),
}
# Directives that are not fetch directives and have no fallback: absent, they allow any
# origin (a form posting the user's input elsewhere, a <base> rewriting every relative URL).
NAVIGATION_DIRECTIVES = ("base-uri", "form-action")
# Referrer policies that never send a page's path to another site.
SAFE_REFERRER_POLICIES = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}
# Headers that name where the browser sends reports (CSP violations, network errors).
REPORTING_HEADERS = ("reporting-endpoints", "report-to", "nel")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def parse_csp(value: str) -> dict[str, list[str]]:
    """One policy's directives (the first of a repeated directive wins, as in browsers)."""
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            directives.setdefault(tokens[0].lower(), tokens[1:])
    return directives


def parse_csp_policies(value: str) -> list[dict[str, list[str]]]:
    """Every policy of a header (several headers arrive joined by commas); browsers
    enforce each of them, so a load happens only if every policy allows it."""
    return [parse_csp(policy) for policy in value.split(",") if policy.strip()]


def _source_host(source: str) -> str:
    """The host of a host-source ("https://a.example:443/x", "a.example", "*.example")."""
    return (urlsplit(source if "://" in source else f"//{source}").hostname or "").lower()


def _source_problem(directive: str, source: str, own_names: frozenset[str]) -> str | None:
    if source.startswith("'"):
        return None  # keywords, nonces and hashes: nothing from another origin
    if source in LOCAL_CONTENT_SOURCES.get(directive, ()):
        return None
    if source in OPEN_SOURCES or (source.endswith(":") and "/" not in source):
        return f"allows {source}"
    if _source_host(source) in own_names:
        return None
    return f"allows another origin: {source}"


def _effective(policy: Mapping[str, list[str]], directive: str) -> tuple[str, list[str]] | None:
    """The directive that governs `directive` in this policy and its sources (None: open)."""
    for name in (directive, *FETCH_DIRECTIVES.get(directive, ())):
        if name in policy:
            return name, policy[name]
    return None


def _directive_problems(
    policy: Mapping[str, list[str]], directive: str, own_names: frozenset[str]
) -> list[str] | None:
    """What lets `directive` load from another origin in this policy; None when the
    policy does not restrict it at all."""
    effective = _effective(policy, directive)
    if effective is None:
        return None
    governing, sources = effective
    found = (_source_problem(directive, source, own_names) for source in sources)
    return [f"{governing} {problem}" for problem in found if problem]


def csp_problems(headers: Mapping[str, str], own_names: Iterable[str] = ()) -> list[str]:
    """Empty when the page may only load from its own origin or the deployment's names."""
    h = _lower(headers)
    names = frozenset(n.lower() for n in own_names)
    policies = parse_csp_policies(h.get("content-security-policy", ""))
    if not policies:
        return ["no Content-Security-Policy"]
    problems: list[str] = []
    if not any("default-src" in policy for policy in policies):
        problems.append("Content-Security-Policy has no default-src")
    for directive in (*FETCH_DIRECTIVES, *NAVIGATION_DIRECTIVES):
        per_policy = [_directive_problems(policy, directive, names) for policy in policies]
        if any(found == [] for found in per_policy):
            continue  # one policy keeps this directive to the deployment: browsers obey it
        if all(found is None for found in per_policy):
            if directive in NAVIGATION_DIRECTIVES:
                problems.append(f"{directive} is not set: it allows every origin")
            continue  # a fetch directive with no default-src: reported once above
        for found in per_policy:
            problems += [p for p in found or [] if p not in problems]
    for policy in policies:
        for url in policy.get("report-uri", []):
            if _source_host(url) and _source_host(url) not in names:
                problems.append(f"report-uri sends reports to another origin: {url}")
    problems += reporting_problems(headers, names)
    return problems


def reporting_problems(headers: Mapping[str, str], own_names: Iterable[str]) -> list[str]:
    """Reporting endpoints (Reporting-Endpoints, Report-To, NEL) outside the deployment."""
    names = frozenset(n.lower() for n in own_names)
    h = _lower(headers)
    problems = []
    for header in REPORTING_HEADERS:
        for url in re.findall(r"https?://[^\s\"',;>]+", h.get(header, "")):
            if _source_host(url) not in names:
                problems.append(f"{header} sends reports to another origin: {url}")
    return problems


def _hsts_problem(value: str) -> str | None:
    max_age = next(
        (
            p.split("=", 1)[1].strip('"')
            for p in value.replace(" ", "").split(";")
            if p.lower().startswith("max-age=")
        ),
        "",
    )
    if not max_age.isdigit() or int(max_age) < MIN_HSTS_SECONDS:
        return f"Strict-Transport-Security max-age under one year: {value!r}"
    return None


def security_header_problems(headers: Mapping[str, str], *, https: bool = True) -> list[str]:
    """What a response misses of the strict headers (HSTS only over https)."""
    h = _lower(headers)
    problems = []
    if https:
        hsts = _hsts_problem(h.get("strict-transport-security", ""))
        if hsts:
            problems.append(hsts)
    if h.get("x-content-type-options", "").lower() != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    if not _framing_refused(h):
        problems.append("framing by other sites is not refused (frame-ancestors / X-Frame-Options)")
    if h.get("referrer-policy", "").lower() not in SAFE_REFERRER_POLICIES:
        problems.append(f"Referrer-Policy leaks addresses: {h.get('referrer-policy')!r}")
    server = h.get("server", "")
    if any(ch.isdigit() for ch in server):
        problems.append(f"Server header discloses a version: {server!r}")
    return problems


def _framing_refused(h: Mapping[str, str]) -> bool:
    policies = parse_csp_policies(h.get("content-security-policy", ""))
    if any(p.get("frame-ancestors") in (["'self'"], ["'none'"]) for p in policies):
        return True
    return h.get("x-frame-options", "").upper() in {"DENY", "SAMEORIGIN"}


# --- nginx configuration (nginx -T) -------------------------------------------------------

_DUMP_FILE = re.compile(r"^# configuration file (.+):$", re.MULTILINE)
_LOOPBACK = re.compile(r"^(127\.[0-9.]+|\[::1\]|localhost|unix:)")


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Directive, ...] | None = None


@dataclass(frozen=True)
class AddHeader:
    name: str
    value: str
    always: bool
    file: str
    line: int


@dataclass(frozen=True)
class HeaderScope:
    """Where nginx answers a request: a server's own level or one of its locations."""

    file: str
    line: int
    server_names: tuple[str, ...]
    location: str  # "" for the server's own level, else "location = /x", "... > if (...)"
    https: bool
    headers: tuple[AddHeader, ...]

    @property
    def where(self) -> str:
        server = " ".join(self.server_names) or "_"
        place = self.location or "server level"
        return f"{self.file}:{self.line} server {server} {place}"


def split_dump(text: str) -> dict[str, str]:
    """The files of an `nginx -T` output, by path, in the order nginx read them."""
    files: dict[str, str] = {}
    matches = list(_DUMP_FILE.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        files.setdefault(match.group(1), text[match.end() + 1 : end])
    return files


def _tokens(text: str) -> Iterator[tuple[str, int, bool]]:
    """(token, line, quoted) of an nginx configuration file."""
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};":
            yield ch, line, False
            i += 1
        elif ch in "\"'":
            start_line, i, value = line, i + 1, []
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                line += text[i] == "\n"
                value.append(text[i])
                i += 1
            i += 1
            yield "".join(value), start_line, True
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in ";":
                if text[i] == "{" and not (i > start and text[i - 1] == "$"):
                    break
                if text[i] == "}" and "${" not in text[start:i]:
                    break
                i += 1
            yield text[start:i], line, False


def parse_nginx(text: str, file: str) -> tuple[Directive, ...]:
    """The directives of one configuration file (includes are not followed here)."""
    stack: list[list[Directive]] = [[]]
    heads: list[tuple[str, tuple[str, ...], int]] = []
    words: list[str] = []
    first_line = 0
    for piece, line, quoted in _tokens(text):
        if quoted or piece not in {"{", "}", ";"}:
            if not words:
                first_line = line
            words.append(piece)
        elif piece == ";":
            if words:
                stack[-1].append(Directive(words[0], tuple(words[1:]), file, first_line))
            words = []
        elif piece == "{":
            heads.append((words[0] if words else "", tuple(words[1:]), first_line))
            stack.append([])
            words = []
        elif len(stack) > 1:  # "}"
            name, args, at = heads.pop()
            children = tuple(stack.pop())
            stack[-1].append(Directive(name, args, file, at, children))
            words = []
    return tuple(stack[0])


def _expand(
    directives: Iterable[Directive], files: Mapping[str, str], prefix: str, seen: frozenset[str]
) -> tuple[Directive, ...]:
    expanded: list[Directive] = []
    for directive in directives:
        if directive.name == "include" and directive.args:
            pattern = directive.args[0]
            if not pattern.startswith("/"):
                pattern = f"{prefix}/{pattern}"
            for path in sorted(p for p in files if PurePosixPath(p).match(pattern)):
                if path not in seen:
                    parsed = parse_nginx(files[path], path)
                    expanded += _expand(parsed, files, prefix, seen | {path})
        elif directive.block is not None:
            block = _expand(directive.block, files, prefix, seen)
            expanded.append(Directive(directive.name, directive.args, directive.file,
                                      directive.line, block))  # fmt: skip
        else:
            expanded.append(directive)
    return tuple(expanded)


def load_dump(text: str) -> tuple[Directive, ...]:
    """The main configuration of an `nginx -T` output with every include in place."""
    files = split_dump(text)
    if not files:
        return ()
    main = next(iter(files))
    prefix = str(PurePosixPath(main).parent)
    return _expand(parse_nginx(files[main], main), files, prefix, frozenset({main}))


def _add_headers(block: Iterable[Directive]) -> list[AddHeader]:
    return [
        AddHeader(d.args[0], d.args[1], "always" in d.args[2:], d.file, d.line)
        for d in block
        if d.name == "add_header" and len(d.args) >= 2
    ]


def _level(
    block: tuple[Directive, ...], inherited: tuple[AddHeader, ...], mode: str
) -> tuple[tuple[AddHeader, ...], str]:
    """The add_header set of a level: inherited only when it has none of its own, unless
    add_header_inherit (nginx >= 1.29.3) says merge or off; the mode itself is inherited."""
    for directive in block:
        if directive.name == "add_header_inherit" and directive.args:
            mode = directive.args[0]
    own = tuple(_add_headers(block))
    if mode == "merge":
        return inherited + own, mode
    if mode == "off":
        return own, mode
    return (own or inherited), mode


def _serves_public(server: tuple[Directive, ...]) -> tuple[bool, bool]:
    """(answers other hosts than this one, over TLS) from the server's listen directives."""
    if any(d.name == "ssl_reject_handshake" and d.args[:1] == ("on",) for d in server):
        return False, True  # refuses every TLS handshake: answers nothing
    listens = [d.args for d in server if d.name == "listen" and d.args]
    https = any("ssl" in args[1:] or "quic" in args[1:] for args in listens) or any(
        d.name == "ssl" and d.args[:1] == ("on",) for d in server
    )
    if not listens:
        return True, https  # nginx's default: *:80
    return any(not _LOOPBACK.match(args[0]) for args in listens), https


def _locations(
    block: tuple[Directive, ...],
    inherited: tuple[AddHeader, ...],
    mode: str,
    path: str,
) -> Iterator[tuple[Directive, str, tuple[AddHeader, ...]]]:
    for directive in block:
        if directive.block is None or directive.name not in {"location", "if"}:
            continue
        label = f"{directive.name} {' '.join(directive.args)}".strip()
        label = f"{path} > {label}" if path else label
        headers, child_mode = _level(directive.block, inherited, mode)
        yield directive, label, headers
        yield from _locations(directive.block, headers, child_mode, label)


def header_scopes(dump: str) -> list[HeaderScope]:
    """Every place of the HTTP configuration that answers clients on a non-loopback
    address, with the add_header set nginx applies there."""
    scopes: list[HeaderScope] = []
    for http in (d for d in load_dump(dump) if d.name == "http" and d.block is not None):
        assert http.block is not None
        http_headers, http_mode = _level(http.block, (), "on")
        for server in (d for d in http.block if d.name == "server" and d.block is not None):
            assert server.block is not None
            public, https = _serves_public(server.block)
            if not public:
                continue
            names = tuple(name for d in server.block if d.name == "server_name" for name in d.args)
            headers, mode = _level(server.block, http_headers, http_mode)
            scopes.append(HeaderScope(server.file, server.line, names, "", https, headers))
            for location, label, found in _locations(server.block, headers, mode, ""):
                scopes.append(HeaderScope(location.file, location.line, names, label, https, found))
    return scopes


def _required(https: bool) -> tuple[str, ...]:
    required = ("content-security-policy", "referrer-policy", "x-content-type-options")
    return ("strict-transport-security", *required) if https else required


def scope_problems(scope: HeaderScope) -> list[str]:
    """What responses from this place of the configuration would miss (C10)."""
    by_name: dict[str, list[AddHeader]] = {}
    for header in scope.headers:
        by_name.setdefault(header.name.lower(), []).append(header)
    values = {name: ", ".join(h.value for h in found) for name, found in by_name.items()}
    problems = security_header_problems(values, https=scope.https)
    if "content-security-policy" not in values:
        problems.append("no Content-Security-Policy")
    framing = "x-frame-options" if "x-frame-options" in by_name else "content-security-policy"
    for name in (*_required(scope.https), framing):
        for header in by_name.get(name, []):
            if not header.always:
                problems.append(f"{header.name} lacks 'always': error responses go without it")
            if "$" in header.value:
                problems.append(f"{header.name} is set from a variable: cannot be checked")
    return problems


def location_header_problems(dump: str) -> list[str]:
    """Each place of an `nginx -T` configuration that would answer without the strict
    headers, named by file, line, server_name and location."""
    return [
        f"{scope.where}: {'; '.join(problems)}"
        for scope in header_scopes(dump)
        if (problems := scope_problems(scope))
    ]


def location_csp_problems(dump: str, own_names: Iterable[str]) -> list[str]:
    """Each place of an `nginx -T` configuration whose CSP lets pages load from another
    origin than the deployment's (C3); a place without any CSP is C10's finding."""
    found = []
    for scope in header_scopes(dump):
        csp = ", ".join(
            h.value for h in scope.headers if h.name.lower() == "content-security-policy"
        )
        if not csp:
            continue
        problems = csp_problems({"Content-Security-Policy": csp}, own_names)
        if problems:
            found.append(f"{scope.where}: {'; '.join(problems)}")
    return found
