"""CPU threads: the cores this process may use, a worker's share of them, and a warning when
other processes keep them busy.

Torch's intra-op threads wait for each other at every parallel operation, so a thread without a
core of its own slows all of them: ``Trainer(threads=2)`` on busy cores made an epoch 17 times
slower than one thread. Hence the rules of the executors: by default ``workers x threads`` never
exceeds the cores (a worker gets ``cores // workers`` threads); a worker's trainer cannot take
more threads than its worker was given (:func:`trainer_threads` caps it, with an info log); and
one warning per search says when the cores are busy before it starts (:func:`busy_cores`).
"""

from __future__ import annotations

import logging
import os

__all__ = ["WORKER_THREADS", "busy_cores", "cores", "thread_limit", "trainer_threads",
           "warn_if_busy"]

log = logging.getLogger("torchnas")

#: The environment variable in which a worker process records the threads it was given.
WORKER_THREADS = "TORCHNAS_WORKER_THREADS"


def cores() -> int:
    """The CPU cores this process may run on (its affinity, which containers and ``taskset``
    restrict; ``os.cpu_count()`` where there is no affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_limit() -> int:
    """The most torch threads a trial of this process should use: what its worker was given
    (:data:`WORKER_THREADS`, set by the process and Ray executors), else the cores."""
    given = os.environ.get(WORKER_THREADS, "")
    return int(given) if given.isdigit() and int(given) >= 1 else cores()


def trainer_threads(requested: int) -> int:
    """``requested`` threads capped at :func:`thread_limit`, with an info log when capped."""
    limit = thread_limit()
    if requested <= limit:
        return requested
    given = os.environ.get(WORKER_THREADS)
    owner = f"its worker was given {limit}" if given else f"this process has {limit} cores"
    log.info("Trainer(threads=%d): training with %d threads, as %s (more threads than cores "
             "slow every one of them down)", requested, limit, owner)
    return limit


def busy_cores(load: float, cores: int, threads: int) -> bool:
    """Whether ``threads`` new threads will find the cores busy: the 1-minute ``load`` average
    leaves free fewer than half as many cores as threads (``cores - load < threads / 2``)."""
    return cores - load < threads / 2


def warn_if_busy(threads: int, workers: int = 1) -> bool:
    """Logs a warning when :func:`busy_cores` says the cores are busy before ``workers``
    trials start with ``threads`` threads in all; returns whether it warned."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return False
    n = cores()
    if not busy_cores(load, n, threads):
        return False
    log.warning("the cores are busy: the load average of the last minute is %.1f on %d cores, "
                "before %d trial(s) at once start with %d thread(s) in all; trials will run "
                "slower than on idle cores and timing metrics (latency_ms, train_seconds) will "
                "be noisy", load, n, workers, threads)
    return True
