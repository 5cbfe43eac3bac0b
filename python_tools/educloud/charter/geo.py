"""Which country an address is in, from Debian's offline GeoIP database (C1).

No network: `geoiplookup` (package geoip-bin) reads /usr/share/GeoIP (geoip-database).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess

from educloud.errors import EducloudError

_ANSWER = re.compile(r"GeoIP(?: IPv6)? Country(?: V6)? Edition: ([A-Z0-9]{2}),")


def country_of(address: str) -> str | None:
    """ISO code of the address's country, None when the database does not know it."""
    parsed = ipaddress.ip_address(address)
    tool = shutil.which("geoiplookup6" if parsed.version == 6 else "geoiplookup")
    if tool is None:
        raise EducloudError("geoiplookup is missing: apt-get install geoip-bin geoip-database")
    result = subprocess.run([tool, address], capture_output=True, text=True, check=False)
    match = _ANSWER.search(result.stdout)
    return match.group(1) if match and match.group(1) not in {"IP", "--"} else None
