"""gunicorn's entry point: `gunicorn educloud_reports.wsgi:application`.

The configuration's path comes from EDUCLOUD_REPORTS_CONFIG (default
/etc/educloud/reports.yml); a wrong configuration stops the service at start with
one line saying which key, before any request is served.
"""

from __future__ import annotations

import logging
import os

from .app import ReportsApp
from .config import load

CONFIG_ENV = "EDUCLOUD_REPORTS_CONFIG"
DEFAULT_CONFIG = "/etc/educloud/reports.yml"

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
application = ReportsApp(load(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG)))
