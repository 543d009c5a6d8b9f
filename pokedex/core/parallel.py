"""Process pools sized to the machine, with a progress bar: shared by ingest and preprocess."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def worker_count(requested: int | None) -> int:
    """`None` or 0 means every core this process may use."""
    if requested:
        return max(1, int(requested))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _worker_signals() -> None:
    """A worker leaves interruptions to the stage process: Ctrl-C (sent to the whole process group) is ignored,
    and the SIGTERM with which the pool is shut down ends it silently instead of raising the stage's Stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def parallel_map(
    func: Callable[[T], R], items: Iterable[T], total: int, workers: int | None, desc: str
) -> Iterator[R]:
    """Yield func(item) for every item (order not kept) over a pool, showing a progress bar on stderr."""
    n = worker_count(workers)
    chunksize = max(1, min(64, total // (n * 8) or 1))
    bar = tqdm(total=total, desc=desc, unit="img", mininterval=1.0, disable=total == 0)
    if n == 1:
        for item in items:
            yield func(item)
            bar.update()
    else:
        # fork keeps start-up cheap; workers only touch Pillow/numpy, which are fork-safe
        with mp.get_context("fork").Pool(n, initializer=_worker_signals) as pool:
            for result in pool.imap_unordered(func, items, chunksize=chunksize):
                yield result
                bar.update()
    bar.close()
