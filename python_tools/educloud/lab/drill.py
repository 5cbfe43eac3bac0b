"""The lab as the restore drill's source of fresh hosts (educloud.backup.drill.DrillHosts):
a dynamic nspawn host booted from the lab's image, destroyed afterwards."""

from __future__ import annotations

from collections.abc import Collection

from educloud.backup.drill import FreshHost, Progress
from educloud.lab import orchestrate
from educloud.lab.settings import LabPaths, check_host_name


class LabDrillHosts:
    def taken(self) -> Collection[str]:
        """The lab's own hosts (its topology's, not the temporary ones)."""
        return [h.name for h in orchestrate.status() if not h.dynamic]

    def check_name(self, name: str) -> None:
        check_host_name(name)

    def exists(self, name: str) -> bool:
        return any(h.name == name for h in orchestrate.status())

    def boot(self, name: str, progress: Progress) -> FreshHost:
        booted = orchestrate.up([name], progress=progress)
        (host,) = [h for h in booted.hosts if h.name == name]
        paths = LabPaths.default()
        return FreshHost(host.name, host.address, paths.ssh_key, paths.known_hosts)

    def destroy(self, name: str, progress: Progress) -> None:
        orchestrate.destroy([name], progress=progress)
