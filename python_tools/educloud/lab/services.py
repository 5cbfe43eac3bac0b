"""Host-side services on the lab bridge: apt proxy, artifact server, SMTP sink, and the decoy.

- apt-cacher-ng forwards Debian package requests to the host's own mirror and caches them;
- a read-only HTTP server publishes the artifact directory (release archives such as
  Keycloak's, fetched on the host from a registry this machine reaches);
- the SMTP sink is the lab's mail relay (policies/egress.yml, purpose mail_relay): it files
  every message in a maildir under the lab directory and delivers nothing (smtp_sink.py);
- the decoy is a lab address that answers HTTP but that no egress policy lists, so the
  charter checks can prove that egress filtering refuses it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from educloud.commands import run
from educloud.errors import EducloudError
from educloud.lab.machine import process_matches
from educloud.lab.preflight import find_tool
from educloud.lab.settings import (
    APT_PROXY_PORT,
    ARTIFACT_PORT,
    BRIDGE_ADDRESS,
    DECOY_ADDRESS,
    DECOY_PORT,
    SMTP_SINK_PORT,
    LabPaths,
)


@dataclass(frozen=True)
class Service:
    name: str
    address: str
    port: int

    def pidfile(self, paths: LabPaths) -> Path:
        return paths.run / f"{self.name}.pid"

    @property
    def marker(self) -> str:
        """What its command line contains: the program, or the address it serves."""
        if self.name in MARKERS:
            return MARKERS[self.name]
        return self.address


# Services sharing an address are told apart by their program.
MARKERS = {"apt-cacher-ng": "apt-cacher-ng", "smtp-sink": "educloud.lab.smtp_sink"}


APT_PROXY = Service("apt-cacher-ng", str(BRIDGE_ADDRESS), APT_PROXY_PORT)
ARTIFACTS = Service("artifacts", str(BRIDGE_ADDRESS), ARTIFACT_PORT)
SMTP_SINK = Service("smtp-sink", str(BRIDGE_ADDRESS), SMTP_SINK_PORT)
DECOY = Service("decoy", str(DECOY_ADDRESS), DECOY_PORT)
ALL_SERVICES = (APT_PROXY, ARTIFACTS, SMTP_SINK, DECOY)


def read_pid(pidfile: Path, marker: str) -> int | None:
    """The service's pid if it is still that service (pids of old sessions get reused)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_matches(pid, marker) else None


def is_running(service: Service, paths: LabPaths) -> bool:
    return read_pid(service.pidfile(paths), service.marker) is not None


def _wait_port(service: Service, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((service.address, service.port)) == 0:
                return
        time.sleep(0.1)
    raise EducloudError(
        f"lab service {service.name} did not answer on {service.address}:{service.port} "
        f"within {timeout:.0f} s; see {LabPaths.default().logs}/{service.name}.log"
    )


def _acng_config(paths: LabPaths, mirror: str) -> Path:
    conf = paths.apt_cache / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (paths.apt_cache / "cache").mkdir(exist_ok=True)
    (paths.apt_cache / "log").mkdir(exist_ok=True)
    (conf / "backends_debian").write_text(mirror + "\n")
    (conf / "acng.conf").write_text(
        "# managed by educloud lab\n"
        f"CacheDir: {paths.apt_cache / 'cache'}\n"
        f"LogDir: {paths.apt_cache / 'log'}\n"
        "SupportDir: /usr/lib/apt-cacher-ng\n"
        f"Port: {APT_PROXY_PORT}\n"
        f"BindAddress: {BRIDGE_ADDRESS}\n"
        f"PidFile: {APT_PROXY.pidfile(paths)}\n"
        "ForeGround: 0\n"
        # Only Debian's archives, forwarded to the host's own mirror.
        f"Remap-debrep: file:deb_mirror*.gz /debian ; file:{conf / 'backends_debian'}\n"
        "Remap-secdeb: security.debian.org security.debian.org/debian-security "
        "deb.debian.org/debian-security /debian-security ; "
        "deb.debian.org/debian-security security.debian.org\n"
        "ReportPage: acng-report.html\n"
        "ExThreshold: 4\n"
        "PassThroughPattern: ^$\n"
    )
    return conf


def _start_python_server(service: Service, paths: LabPaths, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arguments = ["--bind", service.address, "--directory", str(directory)]
    _start_python_module(service, paths, ["http.server", str(service.port), *arguments])


def _start_python_module(service: Service, paths: LabPaths, module_args: list[str]) -> None:
    log = (paths.logs / f"{service.name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", *module_args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    service.pidfile(paths).write_text(f"{process.pid}\n")


def start_all(paths: LabPaths, mirror: str) -> None:
    """Start each service that is not running yet (idempotent)."""
    paths.run.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    if not is_running(APT_PROXY, paths):
        conf = _acng_config(paths, mirror)
        binary = find_tool("apt-cacher-ng") or "apt-cacher-ng"
        run([binary, "-c", str(conf)], what="starting apt-cacher-ng for the lab")
    _wait_port(APT_PROXY)
    if not is_running(ARTIFACTS, paths):
        _start_python_server(ARTIFACTS, paths, paths.artifacts)
    _wait_port(ARTIFACTS)
    if not is_running(SMTP_SINK, paths):
        arguments = ["--bind", SMTP_SINK.address, "--port", str(SMTP_SINK.port)]
        arguments += ["--maildir", str(paths.mail)]
        _start_python_module(SMTP_SINK, paths, ["educloud.lab.smtp_sink", *arguments])
    _wait_port(SMTP_SINK)
    if not is_running(DECOY, paths):
        decoy_dir = paths.run / "decoy"
        decoy_dir.mkdir(exist_ok=True)
        (decoy_dir / "index.html").write_text("educloud lab decoy: no server may reach this\n")
        _start_python_server(DECOY, paths, decoy_dir)
    _wait_port(DECOY)


def stop_all(paths: LabPaths, timeout: float = 10.0) -> None:
    for service in ALL_SERVICES:
        pidfile = service.pidfile(paths)
        pid = read_pid(pidfile, service.marker)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and read_pid(pidfile, service.marker) is not None:
                time.sleep(0.1)
            if read_pid(pidfile, service.marker) is not None:
                os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
