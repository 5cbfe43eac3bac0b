"""Bounded request loops: a probe that counts failures while a drill breaks something, and a
load run that measures a rate. Both stop by themselves (a request count and a deadline)."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

Request = Callable[[], None]  # raises on failure


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


@dataclass
class ProbeResult:
    requests: int = 0
    failures: int = 0
    seconds: float = 0.0
    # time.monotonic() of the first and of the last failed request.
    first_failure: float | None = None
    last_failure: float | None = None
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def outage_seconds(self) -> float:
        """From the first failure to the last one (0 without failures)."""
        if self.first_failure is None or self.last_failure is None:
            return 0.0
        return self.last_failure - self.first_failure

    def quiet_for(self, now: float) -> float:
        """Seconds since the last failure (since ever: infinity)."""
        return now - self.last_failure if self.last_failure is not None else float("inf")


class Probe:
    """Sends one request every `interval` seconds in a thread until stopped, or until
    `max_requests` or `max_seconds` is reached, counting the failures."""

    def __init__(
        self, request: Request, *, interval: float, max_requests: int, max_seconds: float
    ) -> None:
        self._request = request
        self._interval = interval
        self._max_requests = max_requests
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self.result = ProbeResult()

    def _run(self) -> None:
        start = time.monotonic()
        result = self.result
        while not self._stop.is_set() and result.requests < self._max_requests:
            elapsed = time.monotonic() - start
            if elapsed > self._max_seconds:
                break
            result.requests += 1
            try:
                self._request()
            except Exception as exc:
                now = time.monotonic()
                result.failures += 1
                result.reasons[_reason(exc)] += 1
                result.first_failure = now if result.first_failure is None else result.first_failure
                result.last_failure = now
            self._stop.wait(self._interval)
        result.seconds = time.monotonic() - start

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class LoadResult:
    completed: int
    failed: int
    seconds: float
    latencies: tuple[float, ...]
    reasons: tuple[tuple[str, int], ...]

    @property
    def rate(self) -> float:
        """Successful requests per second of wall time."""
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else 0.0


def run_load(request: Request, *, total: int, concurrency: int, max_seconds: float) -> LoadResult:
    """`total` requests from `concurrency` threads; requests not started by the deadline are
    not sent (the result says how many completed)."""
    deadline = time.monotonic() + max_seconds
    lock = threading.Lock()
    latencies: list[float] = []
    reasons: Counter[str] = Counter()
    counts = {"started": 0, "failed": 0}

    def worker() -> None:
        while True:
            with lock:
                if counts["started"] >= total or time.monotonic() > deadline:
                    return
                counts["started"] += 1
            began = time.monotonic()
            try:
                request()
            except Exception as exc:
                with lock:
                    counts["failed"] += 1
                    reasons[_reason(exc)] += 1
                continue
            with lock:
                latencies.append(time.monotonic() - began)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    seconds = time.monotonic() - start
    return LoadResult(
        completed=len(latencies),
        failed=counts["failed"],
        seconds=seconds,
        latencies=tuple(latencies),
        reasons=tuple(reasons.most_common()),
    )
