"""Cluster-wide concurrency and rate for Dask: a budget split across leases, one per partition.

A call's ``concurrency=C``, ``rate=N/period`` and ``burst=B`` are totals. ``LeasePlan.split``
cuts them into ``L`` equal shares; a partition holds one lease (a ``distributed.Semaphore`` of
``L`` leases on a cluster, a process-wide ``threading.Semaphore`` without one) while it runs the
pandas engine with one share. At most ``L`` partitions fetch at once, so the shares add up to
at most the totals:

- in flight: each holder runs with ``C // L`` and waits for all its answers before it lets go;
- in any window of ``period``: a lease hands over only after its holder's last answer plus one
  ``period``, so two holders of one lease never share a window and each lease carries at most
  ``N // L`` arrivals per window. This needs no clock shared between machines: the wait is
  timed on the holder's own clock, after its last answer (which comes after its last arrival).

Leases are taken per partition, not per request: a lease per request costs a scheduler round trip
each and overbooks under load (distributed#4830, #8999). The price is the hand-over wait, at most
one ``period`` per partition and lease (see the README, "Scale out: Dask").

No pandas here; ``distributed`` is imported only when a partition runs on a Dask worker.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ._options import Rate

__all__ = ["Lease", "LeasePlan", "acquire_lease", "current_task_cancelled", "on_dask_worker"]

_POLL = 0.1  # seconds between checks for a cancelled task while waiting for a lease


@dataclass(frozen=True, kw_only=True)
class LeasePlan:
    """How a call's totals are shared: ``leases`` holders, each with one share."""

    name: str  # unique per call: the semaphore's name on the scheduler
    leases: int
    concurrency: int  # per lease
    rate: Rate | None = None  # per lease
    burst: int | None = None  # per lease

    @property
    def hand_over(self) -> float:
        """Seconds a lease stays held after its holder's last answer: one rate period."""
        return 0.0 if self.rate is None else self.rate.period

    @classmethod
    def split(
        cls,
        *,
        concurrency: int,
        rate: Rate | None,
        burst: int | None,
        partitions: int,
        threads: int,
    ) -> LeasePlan:
        """The number of leases that uses most of the budgets, then the most of them.

        More leases than partitions or worker threads would never all be held. Shares are whole
        numbers, so up to ``L - 1`` of a budget may go unused: the split that leaves least unused
        wins, the larger ``L`` among equals (more partitions fetch side by side).
        """
        budgets = [concurrency]
        if rate is not None:
            budgets.append(rate.limit)
        if burst is not None:
            budgets.append(burst)
        most = max(1, min(partitions, threads, *budgets))

        def used(n: int) -> float:
            return min(n * (b // n) / b for b in budgets)

        leases = max(range(1, most + 1), key=lambda n: (used(n), n))
        return cls(
            name=f"pandas-async-{uuid.uuid4().hex}",
            leases=leases,
            concurrency=concurrency // leases,
            rate=None if rate is None else Rate(rate.limit // leases, rate.period),
            burst=None if burst is None else burst // leases,
        )


class Lease(Protocol):
    def release(self, *, after: float = 0.0) -> None:
        """Give the lease back, ``after`` seconds from now (without blocking the caller)."""


def on_dask_worker() -> Any | None:
    """The ``distributed.Worker`` running this thread's task, or None."""
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - dask without distributed
        return None
    try:
        return get_worker()
    except ValueError:
        return None


def current_task_cancelled() -> Callable[[], bool]:
    """A check that turns true once the scheduler gave up this thread's task (cancel, Ctrl-C).

    A Dask worker cannot stop a running thread; a cancelled task only changes state. The
    partition polls this and cancels its requests. Without a worker it is always false.
    """
    worker = on_dask_worker()
    if worker is None:
        return lambda: False
    key = worker.get_current_task()

    def cancelled() -> bool:
        task = worker.state.tasks.get(key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    return cancelled


def acquire_lease(plan: LeasePlan, cancelled: Callable[[], bool]) -> Lease | None:
    """Wait for one of the plan's leases; None if the task was cancelled meanwhile."""
    if on_dask_worker() is not None:
        return _ClusterLease.acquire(plan, cancelled)
    return _LocalLease.acquire(plan, cancelled)


def _release_later(release: Callable[[], Any], after: float) -> None:
    if after <= 0:
        release()
        return
    timer = threading.Timer(after, release)
    timer.daemon = True
    timer.start()


class _ClusterLease:
    """One lease of a ``distributed.Semaphore`` named after the call."""

    def __init__(self, semaphore: Any) -> None:
        self._semaphore = semaphore  # kept alive: it refreshes the lease until released

    @classmethod
    def acquire(cls, plan: LeasePlan, cancelled: Callable[[], bool]) -> _ClusterLease | None:
        import distributed

        make: Any = distributed.Semaphore
        semaphore = make(max_leases=plan.leases, name=plan.name)
        while not semaphore.acquire(timeout=_POLL * 5):
            if cancelled():
                return None
        return cls(semaphore)

    def release(self, *, after: float = 0.0) -> None:
        _release_later(self._semaphore.release, after)


_local_lock = threading.Lock()
_local: dict[str, threading.Semaphore] = {}


class _LocalLease:
    """One lease of a process-wide semaphore: the threaded and synchronous schedulers."""

    def __init__(self, semaphore: threading.Semaphore) -> None:
        self._semaphore = semaphore

    @classmethod
    def acquire(cls, plan: LeasePlan, cancelled: Callable[[], bool]) -> _LocalLease | None:
        _refuse_other_processes()
        with _local_lock:
            semaphore = _local.setdefault(plan.name, threading.Semaphore(plan.leases))
        while not semaphore.acquire(timeout=_POLL):
            if cancelled():
                return None
        return cls(semaphore)

    def release(self, *, after: float = 0.0) -> None:
        _release_later(self._semaphore.release, after)


def _refuse_other_processes() -> None:
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise RuntimeError(
            "pandas_async cannot hold concurrency= and rate= across the processes of Dask's "
            "multiprocessing scheduler; use the threaded scheduler (the default for dask "
            "DataFrames) or a distributed cluster (distributed.Client / LocalCluster)"
        )
