"""Transparency documents (C6): the privacy notice and the record of processing activities.

The notice is the reverse_proxy role's own template (roles/reverse_proxy/templates/
privacy_notice.html.j2), rendered here with the variables the role gets: its defaults,
the inventory's values, and what the playbook derives from the policies
(ansible/group_vars/all/policies.yml). So the file an operator hands out says exactly
what every site serves at /confidentialite. The record of processing (GDPR art. 30) and
the audience summaries are this package's templates (educloud/data/), from the same data.
Markdown is converted from the rendered HTML, so each document has one source of content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml
from jinja2 import (
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)

from educloud import policy as policy_mod
from educloud.errors import EducloudError
from educloud.paths import repo_root

ROLE = "reverse_proxy"
NOTICE_TEMPLATE = "privacy_notice.html.j2"
RECORD_TEMPLATE = "processing-record.html.j2"
SUMMARIES_TEMPLATE = "privacy-summaries.html.j2"
MANAGED = "Produit par educloud docs à partir de l'inventaire et de policies/ : ne pas modifier"
# What reverse_proxy's validate.yml requires of reverse_proxy_privacy_notice.
NOTICE_KEYS = (
    "controller_name",
    "controller_address",
    "dpo_email",
    "reporting_email",
    "processing_purposes",
    "data_subjects",
    "recipients",
)
COUNTRY_NAMES = {"FR": "France"}
SECURITY_GUARANTEE = "C10"


@dataclass(frozen=True)
class Document:
    """One rendered document: its file stem and its content in each format."""

    stem: str
    title: str
    html: str
    markdown: str


def _role_defaults() -> dict[str, Any]:
    path = repo_root() / "roles" / ROLE / "defaults" / "main.yml"
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data


def notice_variables(inventory: Path) -> tuple[dict[str, Any], policy_mod.Policies]:
    """The variables the role's notice template reads, as a deployment of `inventory` has them.

    Raises EducloudError naming the inventory value to set when one is missing.
    """
    from educloud.deployment import model as deployment

    found = deployment.load(inventory)
    proxies = found.in_group(ROLE)
    if not proxies:
        raise EducloudError(
            f"inventory {inventory} has no host in the {ROLE} group: the notice is what its "
            "sites serve"
        )
    policies = policy_mod.load(found.policies_dir)
    variables = _role_defaults()
    variables.update({k: v for k, v in proxies[0].variables.items() if k.startswith(f"{ROLE}_")})
    notice = variables.get("reverse_proxy_privacy_notice") or {}
    missing = [key for key in NOTICE_KEYS if not notice.get(key)]
    if missing:
        raise EducloudError(
            f"inventory {inventory}: reverse_proxy_privacy_notice lacks {', '.join(missing)} "
            "(set them in the reverse_proxy group's variables; the example is in "
            "roles/reverse_proxy/defaults/main.yml)"
        )
    declarations = []
    for host in found.hosts:
        declared = host.variables.get("educloud_hosting")
        if isinstance(declared, Mapping) and declared not in declarations:
            declarations.append(dict(declared))
    # What ansible/group_vars/all/policies.yml passes to the role, computed the same way.
    variables.update(
        {
            name: value
            for name, value in policy_mod.policy_role_variables(policies).items()
            if name.startswith(f"{ROLE}_")
        }
    )
    variables["reverse_proxy_privacy_hosting_declarations"] = declarations
    variables["ansible_managed"] = MANAGED
    return variables, policies


def _comment(text: str, style: str = "plain") -> str:
    """Ansible's `comment` filter, for the styles the role's templates use."""
    if style == "xml":
        return "<!--\n - " + "\n - ".join(text.splitlines()) + "\n-->"
    return "\n".join(f"# {line}" for line in text.splitlines())


def _role_environment() -> Environment:
    # As Ansible's template module renders: trim_blocks, no autoescape (the template
    # escapes with `| e` itself).
    env = Environment(  # noqa: S701 - the role's template escapes every value itself
        loader=FileSystemLoader(repo_root() / "roles" / ROLE / "templates"),
        trim_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = _comment
    return env


def _package_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("educloud", "data"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )
    env.filters["country"] = lambda code: COUNTRY_NAMES.get(code, code)
    return env


def _render(env: Environment, template: str, variables: Mapping[str, Any]) -> str:
    try:
        return env.get_template(template).render(**variables)
    except TemplateError as exc:
        raise EducloudError(
            f"rendering {template}: {exc} (a value is missing from the inventory or the policies)"
        ) from None


def _countries(variables: Mapping[str, Any]) -> list[str]:
    declared = variables["reverse_proxy_privacy_hosting_declarations"]
    source = declared or variables["reverse_proxy_privacy_hosting_providers"]
    return sorted({str(entry["country"]) for entry in source})


def build(inventory: Path, *, today: date | None = None) -> list[Document]:
    """The notice, the audience summaries and the record of processing of a deployment."""
    variables, policies = notice_variables(inventory)
    notice_html = _render(_role_environment(), NOTICE_TEMPLATE, variables)
    security = policies.guarantee(SECURITY_GUARANTEE)
    context = {
        "notice": variables["reverse_proxy_privacy_notice"],
        "categories": variables["reverse_proxy_privacy_retention_categories"],
        "countries": _countries(variables),
        "destinations": policies.destinations,
        "security": security,
        "ssl_protocols": variables.get("reverse_proxy_ssl_protocols") or [],
        "notice_path": variables.get("reverse_proxy_privacy_notice_path", "/confidentialite"),
        "today": (today or date.today()).strftime("%d/%m/%Y"),
        "managed": MANAGED,
    }
    package = _package_environment()
    documents = [
        Document("notice-confidentialite", "Notice d'information", notice_html, ""),
        Document(
            "resumes-par-public",
            "Résumés pour les élèves, les parents et les personnels",
            _render(package, SUMMARIES_TEMPLATE, context),
            "",
        ),
        Document(
            "registre-des-traitements",
            "Registre des activités de traitement",
            _render(package, RECORD_TEMPLATE, context),
            "",
        ),
    ]
    return [Document(d.stem, d.title, d.html, html_to_markdown(d.html)) for d in documents]


def write(documents: list[Document], output: Path, *, pdf: bool = False) -> list[Path]:
    """Write each document as .html and .md (and .pdf); the paths written, in order."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for document in documents:
        for suffix, content in ((".html", document.html), (".md", document.markdown)):
            path = output / f"{document.stem}{suffix}"
            path.write_text(content, encoding="utf-8")
            written.append(path)
        if pdf:
            from educloud.pdf import print_pdf

            path = output / f"{document.stem}.pdf"
            print_pdf(output / f"{document.stem}.html", path, document=document.title)
            path.chmod(0o644)  # public documents, unlike the credential sheets print_pdf was for
            written.append(path)
    return written


# -- Markdown ---------------------------------------------------------------------------


class _MarkdownWriter(HTMLParser):
    """HTML of the templates above (headings, paragraphs, lists, tables, definition lists,
    links) to CommonMark with GFM tables. Anything else keeps only its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []  # (Markdown, kind: li, dt or block)
        self.kind = "block"
        self.text: list[str] = []
        self.prefix = ""
        self.skip = 0  # inside <head>, <style>, <nav>: not content
        self.link: str | None = None
        self.row: list[str] | None = None
        self.rows: list[list[str]] = []
        self.header_rows = 0
        self.list_depth = 0
        self.in_code = False

    def _flush(self) -> None:
        line = re.sub(r"[ \t\r\n]+", " ", "".join(self.text)).strip()
        line = re.sub(r" *\u2028 *", "  \n", line)
        self.text = []
        if line:
            self.blocks.append((self.prefix + line, self.kind))
        self.prefix = ""
        self.kind = "block"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("head", "style", "script", "nav", "title"):
            self.skip += 1
            return
        if self.skip:
            return
        if tag in ("h1", "h2", "h3", "h4"):
            self._flush()
            self.prefix = "#" * int(tag[1]) + " "
        elif tag in ("p", "dd", "dt", "div", "section"):
            self._flush()
            if tag == "dt":
                self.prefix, self.kind = "**", "dt"
            elif tag == "dd":
                self.prefix, self.kind = "- ", "li"
        elif tag in ("ul", "ol"):
            self._flush()
            self.list_depth += 1
        elif tag == "li":
            self._flush()
            self.prefix = "  " * (self.list_depth - 1) + "- "
            self.kind = "li"
        elif tag == "br":
            self.text.append("\u2028")
        elif tag == "a":
            self.link = dict(attrs).get("href")
            self.text.append("[")
        elif tag in ("strong", "b"):
            self.text.append("**")
        elif tag == "em":
            self.text.append("*")
        elif tag == "code":
            self.text.append("`")
            self.in_code = True
        elif tag == "table":
            self._flush()
            self.rows, self.header_rows = [], 0
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.text = []
            if tag == "th" and self.row == [] and not self.rows:
                self.header_rows = 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "style", "script", "nav", "title"):
            self.skip = max(self.skip - 1, 0)
            return
        if self.skip:
            return
        if tag == "dt":
            self.text.append("**")
            self._flush()
        elif tag in ("h1", "h2", "h3", "h4", "p", "li", "dd", "div", "section"):
            self._flush()
        elif tag in ("ul", "ol"):
            self._flush()
            self.list_depth = max(self.list_depth - 1, 0)
        elif tag == "a":
            href = self.link or ""
            self.text.append(f"]({href})" if href else "]")
            self.link = None
        elif tag in ("strong", "b"):
            self.text.append("**")
        elif tag == "em":
            self.text.append("*")
        elif tag == "code":
            self.text.append("`")
            self.in_code = False
        elif tag in ("td", "th") and self.row is not None:
            cell = re.sub(r"\s+", " ", "".join(self.text).replace("\u2028", " ")).strip()
            self.row.append(cell.replace("|", "\\|"))
            self.text = []
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None
        elif tag == "table":
            self._table()

    def _table(self) -> None:
        if not self.rows:
            return
        width = max(len(r) for r in self.rows)
        rows = [r + [""] * (width - len(r)) for r in self.rows]
        head = rows[0] if self.header_rows else [""] * width
        body = rows[1:] if self.header_rows else rows
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * width]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        self.blocks.append(("\n".join(lines), "block"))
        self.rows = []

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.text.append(data.replace("`", "'") if self.in_code else _escape_markdown(data))

    def handle_comment(self, data: str) -> None:
        return  # the template's header comment is not content

    def result(self) -> str:
        self._flush()
        out = ""
        previous = ""
        for text, kind in self.blocks:
            # Items of one list (and a term's definitions) stay together: a tight list.
            tight = kind == "li" and previous in ("li", "dt")
            out += ("\n" if tight else "\n\n") + text if out else text
            previous = kind
        return out + "\n"


def _escape_markdown(text: str) -> str:
    """Characters that would start Markdown syntax or raw HTML in running text."""
    return re.sub(r"([\\`*_<>\[\]])", r"\\\1", text)


def html_to_markdown(document: str) -> str:
    writer = _MarkdownWriter()
    writer.feed(document)
    writer.close()
    return writer.result()
