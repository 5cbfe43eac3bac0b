"""Patroni's automatic failover under Keycloak (issue #9): the leader's machine loses its
power, a replica is promoted within the configured time while Keycloak keeps being asked
(failed requests counted), and the old leader comes back as a replica."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from tests.keycloak_lab import LabKeycloak

from educloud.errors import EducloudError
from educloud.lab import orchestrate
from educloud.lab import secrets as lab_secrets
from educloud.lab.settings import LabPaths
from educloud.paths import repo_root
from educloud.regional import patroni
from educloud.regional.probe import Probe, ProbeResult
from educloud.regional.topology import Regional

pytestmark = pytest.mark.regional
# The service client the accounts tool uses (inventories/lab/group_vars/keycloak.yml): its
# users/count request reads the database on every call (no cache in between).
PROBE_CLIENT = "educloud-accounts"
PROBE_INTERVAL = 0.25


def _patroni_setting(name: str) -> int:
    defaults: dict[str, Any] = yaml.safe_load(
        Path(repo_root() / "roles/postgresql/defaults/main.yml").read_text()
    )
    return int(defaults[name])


class CountUsers:
    """GET users/count on the admin site as a service account: Keycloak reads the database."""

    def __init__(self, kc: LabKeycloak, secret: str) -> None:
        self.kc = kc
        self.secret = secret
        self.token = ""
        self.token_time = 0.0

    def _fresh_token(self) -> str:
        if time.monotonic() - self.token_time > 120 or not self.token:
            answer = requests.post(
                f"{self.kc.admin_url}/realms/{self.kc.realm}/protocol/openid-connect/token",
                data={"grant_type": "client_credentials"},
                auth=(PROBE_CLIENT, self.secret),
                verify=self.kc.ca_file,
                timeout=10,
            )
            answer.raise_for_status()
            self.token, self.token_time = answer.json()["access_token"], time.monotonic()
        return self.token

    def __call__(self) -> None:
        answer = requests.get(
            f"{self.kc.admin_url}/admin/realms/{self.kc.realm}/users/count",
            headers={"Authorization": f"Bearer {self._fresh_token()}"},
            verify=self.kc.ca_file,
            timeout=10,
        )
        answer.raise_for_status()
        int(answer.text)


@dataclass
class PrimaryLoss:
    old_leader: str
    allowed_s: int
    probe: ProbeResult
    new_leader: str | None = None
    promoted_after_s: float | None = None
    # Seconds from the stop to the last failed Keycloak request (0: none failed).
    answering_after_s: float | None = None
    rejoined_after_s: float | None = None
    rejoined_as: str | None = None


def _members(regional: Regional, skip: str) -> list[patroni.Member]:
    """The cluster as the first member that answers sees it."""
    for node in regional.database_nodes:
        if node.name == skip:
            continue
        try:
            return patroni.cluster(node)
        except EducloudError:
            continue
    return []


def _promote_after_loss(regional: Regional, kc: LabKeycloak) -> PrimaryLoss:
    leader = patroni.leader(patroni.cluster(regional.database_nodes[0]))
    assert leader is not None, "no single Patroni leader before the drill"
    allowed = _patroni_setting("postgresql_patroni_ttl") + _patroni_setting(
        "postgresql_patroni_loop_wait"
    )
    secret = lab_secrets.read(LabPaths.default())["vault_accounts_client_secret"]
    count_users = CountUsers(kc, secret)
    count_users()  # the probe works before anything breaks
    with Probe(count_users, interval=PROBE_INTERVAL, max_requests=2400, max_seconds=400) as probe:
        drill = PrimaryLoss(leader.name, allowed, probe.result)
        time.sleep(3)  # a few good requests first
        start = time.monotonic()
        # A power cut: PostgreSQL, Patroni and an etcd member vanish without a word (an
        # orderly shutdown would hand the leadership over at once).
        orchestrate.down([leader.name], power_cut=True)
        while time.monotonic() - start < allowed + 90:
            current = patroni.leader(_members(regional, leader.name))
            if current is not None and current.name != leader.name and current.state == "running":
                drill.promoted_after_s = time.monotonic() - start
                drill.new_leader = current.name
                break
            time.sleep(1)
        # Keycloak answers again: 10 s of requests in a row without a failure.
        while drill.promoted_after_s is not None and time.monotonic() - start < allowed + 240:
            if probe.result.quiet_for(time.monotonic()) > 10:
                last = probe.result.last_failure
                drill.answering_after_s = 0.0 if last is None else max(0.0, last - start)
                break
            time.sleep(1)
    return drill


def _rejoin(regional: Regional, drill: PrimaryLoss) -> None:
    start = time.monotonic()
    orchestrate.up([drill.old_leader], variant="regional")
    while time.monotonic() - start < 300:
        member = {m.name: m for m in _members(regional, "")}.get(drill.old_leader)
        if member and member.role != "leader" and member.state in ("running", "streaming"):
            drill.rejoined_after_s = time.monotonic() - start
            drill.rejoined_as = member.role
            return
        time.sleep(2)


@pytest.fixture(scope="module")
def primary_loss(
    regional: Regional, regional_keycloak: LabKeycloak, record_measurement
) -> PrimaryLoss:
    drill = _promote_after_loss(regional, regional_keycloak)
    _rejoin(regional, drill)
    record_measurement(
        "postgresql_primary_loss",
        {
            "old_leader": drill.old_leader,
            "new_leader": drill.new_leader,
            "promoted_after_s": _round(drill.promoted_after_s),
            "allowed_s": drill.allowed_s,
            "keycloak_requests": drill.probe.requests,
            "keycloak_failed_requests": drill.probe.failures,
            "keycloak_failure_window_s": round(drill.probe.outage_seconds, 1),
            "keycloak_answering_after_s": _round(drill.answering_after_s),
            "failure_reasons": dict(drill.probe.reasons.most_common(5)),
            "rejoined_after_s": _round(drill.rejoined_after_s),
            "rejoined_as": drill.rejoined_as,
        },
    )
    return drill


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def test_a_replica_is_promoted_within_the_configured_time(primary_loss: PrimaryLoss) -> None:
    assert primary_loss.new_leader is not None, "no replica was promoted"
    assert primary_loss.promoted_after_s is not None
    # ttl + loop_wait, plus the time to notice and to start accepting writes.
    assert primary_loss.promoted_after_s <= primary_loss.allowed_s + 15


def test_keycloak_answers_again_after_the_switch(primary_loss: PrimaryLoss) -> None:
    assert primary_loss.answering_after_s is not None, (
        f"Keycloak still failing after the promotion: {primary_loss.probe.reasons}"
    )
    assert primary_loss.probe.requests - primary_loss.probe.failures > 0
    # Requests failed only while there was no leader, plus the pool's reconnection.
    assert primary_loss.answering_after_s <= (primary_loss.promoted_after_s or 0) + 30


def test_the_old_leader_rejoins_as_a_replica(primary_loss: PrimaryLoss, regional: Regional) -> None:
    assert primary_loss.rejoined_as in ("replica", "sync_standby"), (
        f"{primary_loss.old_leader} did not come back as a replica in 300 s"
    )
    members = patroni.cluster(regional.database_nodes[0])
    assert len(members) == len(regional.database_nodes)
    assert patroni.leader(members) is not None
