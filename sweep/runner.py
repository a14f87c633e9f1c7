"""Run a sweep's pending points and append each result to the journal as it finishes.

Engines (all run :func:`sweep.job.run_point`; none schedules by itself):

* ``local`` with ``jobs=1``: in this process, in spec order;
* ``local`` with ``jobs=N``: a ``multiprocessing`` pool of N spawned
  processes (torch threads split between them), results in finishing order;
* ``ray``: one Ray task per point (``num_cpus=1``) on the cluster at
  ``address`` (``ray.init(address)``; an already initialised Ray is used as
  it is). The driver appends the rows, so the journal is written in one
  place by one writer as with the other engines.

Progress: a tqdm bar (points done, ETA) on a terminal, else one status line
per point. An interrupt (Ctrl-C, or SIGTERM turned into ``KeyboardInterrupt``
by the command) stops the workers and cancels the Ray tasks; rows already
appended stay, and the next run does only what is missing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from sweep.job import error_line, failed_row, run_point
from sweep.journal import Journal

__all__ = ["ENGINES", "RunStats", "run"]

ENGINES = ("local", "ray")


@dataclass
class RunStats:
    ran: int = 0
    failed: int = 0
    seconds: float = 0.0


def _worker_init(threads: int) -> None:
    """Pool worker: its share of the cores; Ctrl-C is the parent's to handle."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _local_pool(jobs: list[dict], workers: int) -> Iterable[dict]:
    import multiprocessing

    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init,
                                                     initargs=(threads,))
    try:
        yield from pool.imap_unordered(run_point, jobs, chunksize=1)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _ray_tasks(jobs: list[dict], address: str | None) -> Iterable[dict]:
    try:
        import ray
    except ModuleNotFoundError:
        raise ValueError("engine ray needs the ray package (pip install ray); not installed") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    task = ray.remote(num_cpus=1, max_retries=0)(run_point)
    pending = {task.remote(job): job for job in jobs}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # a crashed worker or task: that point fails
                    yield failed_row(job, error_line(exc))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def _results(jobs: list[dict], engine: str, workers: int, address: str | None) -> Iterable[dict]:
    if engine == "ray":
        return _ray_tasks(jobs, address)
    if workers == 1 or len(jobs) == 1:
        return (run_point(job) for job in jobs)
    return _local_pool(jobs, min(workers, len(jobs)))


def run(jobs: list[dict], journal: Journal, *, engine: str = "local", workers: int = 1,
        address: str | None = None, total: int | None = None, done_before: int = 0,
        status: Callable[[str], None] | None = None) -> RunStats:
    """Run ``jobs`` and append each row to ``journal``; returns counts and wall time.

    ``total`` / ``done_before``: the sweep's size and the points done by an earlier run
    (the progress shows the whole sweep).
    """
    from tqdm import tqdm

    stats = RunStats()
    started = time.perf_counter()
    total = len(jobs) + done_before if total is None else total
    tty = sys.stderr.isatty()
    bar = tqdm(total=total, initial=done_before, desc="sweep", unit="point", disable=not tty,
               dynamic_ncols=True)
    try:
        with contextlib.closing(_results(jobs, engine, workers, address)) as results:
            for row in results:
                _record(row, journal, stats, bar, tty, status, done_before, total)
    finally:
        bar.close()
        stats.seconds = time.perf_counter() - started
    return stats


def _record(row, journal, stats, bar, tty, status, done_before, total) -> None:
    """Append one row; count it; advance the bar or print a status line."""
    journal.append(row)
    stats.ran += 1
    stats.failed += row["status"] != "ok"
    bar.update(1)
    if not tty and status is not None:
        what = (f"perplexity {row['perplexity']:.4f}" if row["status"] == "ok"
                else f"failed: {row['error']}")
        status(f"point {done_before + stats.ran}/{total} {row['label']}: {what}")
