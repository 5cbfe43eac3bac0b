"""Retention periods of policies/retention.yml in force on every server (C7)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import hostconfig, retention_runs
from educloud.deployment.model import Deployment
from educloud.policy import Policies


@pytest.mark.charter("C7")
def test_journald_retention(
    host_name: str,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    days = int(policies.retention["system_logs"]["retention_days"])
    config = connect(host_name).check_output("systemd-analyze cat-config systemd/journald.conf")
    settings = [
        line
        for line in config.splitlines()
        if ("MaxRetentionSec" in line or "MaxFileSec" in line) and not line.startswith("#")
    ]
    evidence(
        f"{host_name} : {' ; '.join(settings) if settings else 'MaxRetentionSec absent'} "
        f"(politique : {days} jours)"
    )
    problems = hostconfig.journald_retention_problems(config, days)
    assert not problems, "; ".join(problems)


def _logrotate_files(target: Any) -> dict[str, str]:
    """/etc/logrotate.conf, then every file it includes from /etc/logrotate.d, by name."""
    listing = target.check_output(
        "for f in /etc/logrotate.conf /etc/logrotate.d/*; do "
        '[ -f "$f" ] && printf "==> %s\\n" "$f" && cat "$f"; done'
    )
    files: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        if line.startswith("==> "):
            name = line[4:]
            files[name] = ""
        elif name:
            files[name] += line + "\n"
    return files


@pytest.mark.charter("C7")
def test_log_rotation_age(
    host_name: str,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    """Every logrotate stanza (the main file's and each package's in /etc/logrotate.d),
    with the global settings it inherits, keeps no line past the web logs' period."""
    days = int(policies.retention["web_logs"]["retention_days"])
    files = _logrotate_files(connect(host_name))
    rules = hostconfig.logrotate_rules(files)
    evidence(
        f"{host_name} : {len(rules)} règles logrotate ; "
        + " ; ".join(
            f"{r.where.split(': ', 1)[-1]} {r.frequency} rotate {r.rotate} maxage {r.maxage}"
            for r in rules
        )
        + f" (politique : {days} jours)"
    )
    problems = hostconfig.logrotate_problems(files, days)
    assert not problems, "; ".join(problems)


# A daily run, its timer's random delay (1 h) and an hour of grace.
RUN_EVERY_HOURS = 26
# Files under /var/log are web logs under the reverse proxy's directory, system logs
# elsewhere; a day of grace for the daily rotation and journald's daily file.
WEB_LOG_DIRS = ("/var/log/nginx/",)


@pytest.mark.charter("C7")
def test_no_log_older_than_its_period(
    host_name: str,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    """Observed on disk: no file under /var/log last written before its category's period
    (plus a day), and no journal entry older than the system logs' period (plus a day)."""
    target = connect(host_name)
    system_days = int(policies.retention["system_logs"]["retention_days"])
    web_days = int(policies.retention["web_logs"]["retention_days"])
    now = time.time()
    listing = target.check_output("find /var/log -xdev -type f -printf '%T@ %p\\n'")
    too_old = []
    for line in listing.splitlines():
        stamp, _, path = line.partition(" ")
        days = web_days if path.startswith(WEB_LOG_DIRS) else system_days
        age = (now - float(stamp)) / 86400
        if age > days + 1:
            too_old.append(f"{path} ({age:.0f} days, the policy says {days})")
    oldest = target.run("journalctl -q -o short-unix --no-pager | head -n 1").stdout.split()
    journal_age = (now - float(oldest[0])) / 86400 if oldest else 0.0
    evidence(
        f"{host_name} : {len(listing.splitlines())} fichiers sous /var/log, "
        f"{len(too_old)} plus anciens que leur durée ; plus ancienne entrée du journal : "
        f"{journal_age:.1f} jours (politique : journaux système {system_days} jours, "
        f"journaux web {web_days} jours)"
    )
    if journal_age > system_days + 1:
        too_old.append(f"journal entries {journal_age:.0f} days old")
    assert not too_old, "kept past their period: " + "; ".join(too_old[:10])


@pytest.mark.charter("C7")
def test_retention_applied_daily_and_journaled(
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """The retention role's timer applies retention.yml every day; its last run did not
    fail, and its hash-chained journal verifies (`educloud retention journal verify`)."""
    hosts = deployment.in_group("data_rights")
    if not hosts:
        pytest.fail("no host in the data_rights group: nothing applies the retention periods")
    problems = []
    for host in hosts:
        target = connect(host.name)
        config = str(host.variables.get("retention_config_dir", "/etc/educloud"))
        venv = str(host.variables.get("retention_tool_venv", "/opt/educloud/venv"))
        timer = target.service("educloud-retention.timer")
        # Observed in the system journal (systemd forgets a finished oneshot unit's
        # timestamps once it unloads it): the runs of the last day, their outcome.
        since = int(time.time() - RUN_EVERY_HOURS * 3600)
        lines = target.run(
            "journalctl -q -u educloud-retention.service -o short-unix --no-pager --since @%s",
            str(since),
        ).stdout.splitlines()
        run = retention_runs.last_run(lines)
        hours = (time.time() - run.finished) / 3600 if run else None
        journal = target.run(
            "%s/bin/educloud retention journal verify --config %s/retention.yml",
            venv,
            config,
        )
        said = " ".join((journal.stdout + journal.stderr).split())[-200:]
        evidence(
            f"{host.name} : educloud-retention.timer "
            f"{'activé' if timer.is_enabled else 'désactivé'}, "
            f"{'en attente' if timer.is_running else 'arrêté'} ; dernier passage : "
            + (
                f"il y a {hours:.1f} h, {run.outcome}"
                + (f" ({run.applied})" if run.applied else "")
                if run and hours is not None
                else f"aucun dans les {RUN_EVERY_HOURS} dernières heures"
            )
            + f" ; journal des actions : {said}"
        )
        if not (timer.is_enabled and timer.is_running):
            problems.append(f"{host.name}: educloud-retention.timer is not enabled and waiting")
        problems += [f"{host.name}: {p}" for p in retention_runs.run_problems(run, RUN_EVERY_HOURS)]
        if journal.rc == 1:
            problems.append(f"{host.name}: the retention journal does not verify: {said}")
        elif journal.rc not in (0, 2) or (journal.rc == 2 and "no journal here" not in said):
            problems.append(f"{host.name}: cannot check the retention journal: {said}")
    assert not problems, "; ".join(problems)
