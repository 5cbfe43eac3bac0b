"""The lab's verbs: up, status, down, destroy. Each is idempotent and returns data."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from educloud.errors import EducloudError
from educloud.keycloak_provider import build as provider_build
from educloud.lab import (
    artifacts,
    image,
    inventory,
    machine,
    network,
    preflight,
    secrets,
    services,
)
from educloud.lab.mirror import host_debian_mirror
from educloud.lab.settings import (
    HostSpec,
    LabPaths,
    check_host_name,
    check_variant,
    load_topology,
    topology_file,
)
from educloud.lab.state import HostRecord, LabState

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _still_running(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


@contextmanager
def _locked(paths: LabPaths) -> Iterator[None]:
    """One lab operation at a time: molecule scenarios may run beside a deploy."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with (paths.root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    groups: tuple[str, ...]
    running: bool
    dynamic: bool
    created: bool
    variant: str = "single"


@dataclass(frozen=True)
class UpResult:
    hosts: list[HostStatus]
    image: Path
    image_built: bool
    inventory: Path
    ssh_key: Path
    boot_seconds: dict[str, float]


def _specs_for(
    state: LabState, names: Sequence[str] | None, variant: str
) -> list[tuple[HostSpec, bool]]:
    """The hosts to act on: the topology's, or the named ones (new names become dynamic)."""
    topology = {spec.name: spec for spec in load_topology(topology_file(variant))}
    _check_no_clash(state, topology, variant)
    if not names:
        return [(spec, False) for spec in topology.values()]
    chosen: list[tuple[HostSpec, bool]] = []
    for name in names:
        check_host_name(name)
        if name in topology:
            chosen.append((topology[name], False))
        elif name in state.hosts:
            chosen.append((state.hosts[name].spec(), True))
        else:
            address = state.allocate_dynamic()
            spec = HostSpec(name, address, ())
            state.hosts[name] = HostRecord(name, str(address), [], None, True)
            chosen.append((spec, True))
    return chosen


def _check_no_clash(state: LabState, topology: dict[str, HostSpec], variant: str) -> None:
    """Refuse a topology whose names or addresses another topology's hosts already hold."""
    for record in state.hosts.values():
        if record.variant == variant and not record.dynamic:
            continue
        for spec in topology.values():
            if record.name == spec.name or record.address == str(spec.address):
                raise EducloudError(
                    f"lab host {spec.name} ({spec.address}) of the {variant} topology clashes "
                    f"with {record.name} ({record.address}), already in the lab: destroy it "
                    f"first ('educloud lab destroy --host {record.name}')"
                )


def up(
    names: Sequence[str] | None = None, progress: Progress = _quiet, variant: str = "single"
) -> UpResult:
    """Boot the lab (or the named hosts), starting what is missing; idempotent."""
    check_variant(variant)
    preflight.require_lab_prerequisites()
    paths = LabPaths.default()
    with _locked(paths):
        return _up(paths, names, progress, variant)


def _up(paths: LabPaths, names: Sequence[str] | None, progress: Progress, variant: str) -> UpResult:
    paths.root.chmod(0o700)
    state = LabState.load(paths)
    chosen = _specs_for(state, names, variant)  # validates the topology before changing anything
    mirror = host_debian_mirror()
    progress("network: bridge and safety rules")
    network.up()
    progress(f"services: apt proxy (to {mirror}), artifacts, SMTP sink, decoy, backups (SFTP, S3)")
    services.start_all(paths, mirror)
    created_secrets = secrets.ensure(paths)
    if created_secrets:
        progress(f"secrets: generated {len(created_secrets)} lab secrets into the lab vault")
    wanted = artifacts.load_manifest()
    if any(not (paths.artifacts / a.file).exists() for a in wanted):
        progress("artifacts: fetching release archives on the host (Maven Central)")
    artifacts.fetch_all(paths, wanted)
    for dist in (a for a in wanted if a.file.startswith("keycloak-quarkus-dist-")):
        # The accounts tool's provider, compiled against that very release (reproducible:
        # an unchanged source rewrites nothing, and the deploy changes nothing).
        provider_build.build(paths.artifacts / dist.file, paths.artifacts)
    recipe = image.default_recipe(mirror)
    built = not image.is_built(paths, recipe)
    if built:
        progress("image: building Debian 12 with debootstrap (first time, a few minutes)")
    image_dir = image.build(paths, recipe)
    machine.ensure_lab_key(paths)
    boot_seconds: dict[str, float] = {}
    created: dict[str, bool] = {}
    for spec, dynamic in chosen:
        record = state.hosts.get(spec.name)
        if record is None:
            record = HostRecord(spec.name, str(spec.address), list(spec.groups), None, dynamic)
            state.hosts[spec.name] = record
        if not dynamic:
            record.variant = variant
        record.address, record.groups = str(spec.address), list(spec.groups)
        created[spec.name] = machine.create(paths, image_dir, spec)
        if record.pid is None or not machine.is_alive(record.pid):
            progress(f"host {spec.name}: booting at {spec.address}")
            process = machine.boot(paths, spec)
            record.pid = process.pid
            state.save(paths)  # a kill from here on still knows the pid to stop
            boot_seconds[spec.name] = machine.wait_ready(
                paths, spec, partial(_still_running, process)
            )
        else:
            progress(f"host {spec.name}: already running at {spec.address}")
            pid = record.pid
            machine.wait_ready(paths, spec, partial(machine.is_alive, pid))
    state.save(paths)
    inv = inventory.write_all(paths, list(state.hosts.values()))[variant]
    statuses = [_status(state.hosts[spec.name], created[spec.name]) for spec, _ in chosen]
    return UpResult(statuses, image_dir, built, inv, paths.ssh_key, boot_seconds)


def _status(record: HostRecord, created: bool = False) -> HostStatus:
    return HostStatus(
        record.name,
        record.address,
        tuple(record.groups),
        machine.is_alive(record.pid),
        record.dynamic,
        created,
        record.variant,
    )


def status() -> list[HostStatus]:
    paths = LabPaths.default()
    state = LabState.load(paths)
    return [_status(rec) for rec in sorted(state.hosts.values(), key=lambda r: r.name)]


def services_status() -> dict[str, bool]:
    paths = LabPaths.default()
    result = {svc.name: services.is_running(svc, paths) for svc in services.ALL_SERVICES}
    result["network"] = network.is_up()
    return result


def down(
    names: Sequence[str] | None = None, progress: Progress = _quiet, power_cut: bool = False
) -> list[str]:
    """Stop the named hosts (default: all); with none left running, stop services and links.
    `power_cut` kills them at once instead of an orderly shutdown (failure drills)."""
    preflight.require_lab_prerequisites()
    paths = LabPaths.default()
    with _locked(paths):
        return _down(paths, names, progress, power_cut)


def _down(
    paths: LabPaths, names: Sequence[str] | None, progress: Progress, power_cut: bool = False
) -> list[str]:
    state = LabState.load(paths)
    targets = list(names) if names is not None else list(state.hosts)
    stopped: list[str] = []
    for name in targets:
        record = state.hosts.get(name)
        if record is None:
            continue
        if machine.is_alive(record.pid):
            progress(f"host {name}: {'power cut' if power_cut else 'stopping'}")
            (machine.power_cut if power_cut else machine.stop)(record.pid)
            stopped.append(name)
        record.pid = None
    state.save(paths)
    if not any(machine.is_alive(r.pid) for r in state.hosts.values()):
        progress("services and network: stopping")
        services.stop_all(paths)
        network.down()
    return stopped


def destroy(
    names: Sequence[str] | None = None, progress: Progress = _quiet, keep_cache: bool = True
) -> list[str]:
    """Stop and delete hosts (default: all, plus keys and state; the image and apt cache stay)."""
    preflight.require_lab_prerequisites()
    paths = LabPaths.default()
    with _locked(paths):
        # A power cut, not an orderly shutdown: the disk is deleted next, nothing on it needs
        # flushing (a molecule host running Keycloak took up to 50 s to power off).
        _down(paths, names, progress, power_cut=True)
        destroyed = _destroy(paths, names, progress, keep_cache)
    machine.purge_discarded(paths)
    return destroyed


def _destroy(
    paths: LabPaths, names: Sequence[str] | None, progress: Progress, keep_cache: bool
) -> list[str]:
    state = LabState.load(paths)
    targets = list(names) if names is not None else list(state.hosts)
    for name in targets:
        progress(f"host {name}: deleting its disk")
        machine.discard(paths, name)
        state.hosts.pop(name, None)
    state.save(paths)
    if names is None:
        shutil.rmtree(paths.machines, ignore_errors=True)
        if not keep_cache:
            shutil.rmtree(paths.root, ignore_errors=True)
            # The backup provider's storage (its servers were stopped with the services).
            shutil.rmtree(paths.provider, ignore_errors=True)
    inventory.write_all(paths, list(state.hosts.values()))
    return targets


def ssh_command(name: str) -> list[str]:
    """The ssh argv to open a shell on a lab host."""
    paths = LabPaths.default()
    state = LabState.load(paths)
    record = state.hosts.get(name)
    if record is None or not machine.is_alive(record.pid):
        known = ", ".join(sorted(state.hosts)) or "none"
        raise EducloudError(
            f"lab host {name!r} is not running (known hosts: {known}); "
            "start it with 'educloud lab up'"
        )
    return machine.ssh_base(paths, record.address)
