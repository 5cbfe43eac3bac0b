"""The lab's record of its hosts (address, groups, nspawn pid), kept in one JSON file."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field

from educloud.errors import EducloudError
from educloud.lab.settings import DYNAMIC_RANGE, LAB_NETWORK, HostSpec, LabPaths


@dataclass
class HostRecord:
    name: str
    address: str
    groups: list[str] = field(default_factory=list)
    pid: int | None = None
    # True for hosts outside the topology (molecule platforms, drill hosts).
    dynamic: bool = False
    # The topology the host belongs to (settings.VARIANTS); its inventory lists it.
    variant: str = "single"

    def spec(self) -> HostSpec:
        return HostSpec(self.name, ipaddress.IPv4Address(self.address), tuple(self.groups))


@dataclass
class LabState:
    hosts: dict[str, HostRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: LabPaths) -> LabState:
        try:
            raw = json.loads(paths.state_file.read_text())
        except FileNotFoundError:
            return cls()
        except json.JSONDecodeError as exc:
            raise EducloudError(
                f"{paths.state_file} is corrupted ({exc}); run 'educloud lab destroy' "
                "to start the lab afresh"
            ) from exc
        return cls({name: HostRecord(**body) for name, body in raw.get("hosts", {}).items()})

    def save(self, paths: LabPaths) -> None:
        paths.root.mkdir(parents=True, exist_ok=True)
        tmp = paths.state_file.with_suffix(".tmp")
        body = {"hosts": {name: asdict(rec) for name, rec in sorted(self.hosts.items())}}
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        os.replace(tmp, paths.state_file)

    def allocate_dynamic(self) -> ipaddress.IPv4Address:
        used = {record.address for record in self.hosts.values()}
        for offset in range(DYNAMIC_RANGE[0], DYNAMIC_RANGE[1] + 1):
            candidate = LAB_NETWORK.network_address + offset
            if str(candidate) not in used:
                return candidate
        raise EducloudError("no free lab address for a temporary host: run 'educloud lab destroy'")
