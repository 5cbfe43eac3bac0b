"""Print a self-contained HTML page to PDF with Debian's headless chromium.

Shared by the credential sheets (educloud.accounts.sheets) and the transparency documents
(educloud.transparency.documents). The pages load nothing from the network, so printing
works offline.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from educloud.commands import run
from educloud.errors import EducloudError

# Printing one class takes a few seconds; two minutes means chromium is stuck.
PDF_TIMEOUT_SECONDS = 120.0


def print_pdf(
    html: Path, pdf: Path, chromium: str = "chromium", *, document: str = "the document"
) -> None:
    """Print `html` to `pdf` (mode 0600, all or nothing); `document` names it in errors."""
    executable = shutil.which(chromium)
    if executable is None:
        raise EducloudError(
            f"printing {document} to PDF needs {chromium!r}, which is not installed: "
            "install Debian's chromium package (apt-get install chromium), or print the HTML "
            "from a browser"
        )
    # Written next to its destination, then renamed: all or nothing.
    partial = pdf.with_name(f".{pdf.name}.partial")
    partial.unlink(missing_ok=True)
    # A throw-away profile: chromium keeps nothing of the page (passwords) in the user's home.
    try:
        with tempfile.TemporaryDirectory(prefix="educloud-chromium-") as profile:
            run(
                [
                    executable,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-pdf-header-footer",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    f"--user-data-dir={profile}",
                    f"--print-to-pdf={partial}",
                    html.resolve().as_uri(),
                ],
                what=f"printing {html.name} to PDF with chromium",
                timeout=PDF_TIMEOUT_SECONDS,
            )
        if not partial.is_file() or partial.stat().st_size == 0:
            raise EducloudError(f"chromium wrote no PDF for {html}; print the HTML from a browser")
        partial.chmod(0o600)
        os.replace(partial, pdf)
    finally:
        partial.unlink(missing_ok=True)
