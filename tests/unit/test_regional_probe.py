"""The regional drills' probe and load loops: bounded, and they count what fails."""

from __future__ import annotations

import threading
import time

from educloud.regional import haproxy, patroni
from educloud.regional.probe import Probe, run_load


def test_probe_counts_failures_and_when_they_happened() -> None:
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if 3 <= calls["n"] <= 5:
            raise ConnectionError("refused")

    before = time.monotonic()
    with Probe(flaky, interval=0.01, max_requests=10, max_seconds=5) as probe:
        while probe.result.requests < 10:
            time.sleep(0.01)
    result = probe.result
    assert (result.requests, result.failures) == (10, 3)
    assert result.reasons == {"ConnectionError: refused": 3}
    assert result.first_failure is not None and result.last_failure is not None
    assert before <= result.first_failure <= result.last_failure <= time.monotonic()
    assert result.outage_seconds >= 0
    assert result.quiet_for(time.monotonic()) >= 0


def test_probe_stops_by_itself_at_its_bounds() -> None:
    with Probe(lambda: None, interval=0.0, max_requests=25, max_seconds=5) as probe:
        time.sleep(0.5)
    assert probe.result.requests == 25 and probe.result.failures == 0


def test_load_sends_at_most_the_total_and_measures_a_rate() -> None:
    lock = threading.Lock()
    sent = {"n": 0}

    def request() -> None:
        with lock:
            sent["n"] += 1
            n = sent["n"]
        time.sleep(0.01)
        if n % 10 == 0:
            raise TimeoutError("slow")

    result = run_load(request, total=50, concurrency=4, max_seconds=30)
    assert sent["n"] == 50
    assert (result.completed, result.failed) == (45, 5)
    assert result.rate > 0 and result.median > 0
    assert result.percentile(0.95) >= result.median
    assert result.reasons == (("TimeoutError: slow", 5),)


def test_load_stops_at_its_deadline() -> None:
    result = run_load(lambda: time.sleep(0.05), total=10_000, concurrency=2, max_seconds=0.3)
    assert result.completed < 100


def test_haproxy_stat_csv_is_read_per_server() -> None:
    text = (
        "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
        "wretr,wredis,status,weight\n"
        "keycloak,FRONTEND,,,0,1,4096,7,0,0,0,0,0,,,,,OPEN,\n"
        "keycloak,rkc1,0,0,0,1,,4,0,0,,0,,0,0,0,0,UP,1\n"
        "keycloak,rkc2,0,0,0,1,,3,0,0,,0,,0,0,0,0,DOWN,1\n"
        "keycloak,BACKEND,0,0,0,1,410,7,0,0,0,0,,0,0,0,0,UP,1\n"
    )
    states = {s.server: s for s in haproxy.parse_stat(text)}
    assert set(states) == {"rkc1", "rkc2"}
    assert states["rkc1"].up and states["rkc1"].sessions_total == 4
    assert not states["rkc2"].up


def test_patroni_cluster_has_one_leader() -> None:
    members = patroni.parse_cluster(
        {
            "members": [
                {"name": "rdb1", "role": "leader", "state": "running", "host": "a", "timeline": 3},
                {"name": "rdb2", "role": "replica", "state": "streaming", "host": "b", "lag": 0},
                {
                    "name": "rdb3",
                    "role": "replica",
                    "state": "stopped",
                    "host": "c",
                    "lag": "unknown",
                },
            ]
        }
    )
    leader = patroni.leader(members)
    assert leader is not None and leader.name == "rdb1" and leader.timeline == 3
    assert members[2].lag is None
    assert patroni.leader(members[1:]) is None
