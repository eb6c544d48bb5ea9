"""Work items of one model run by a few Python threads at once, each with torch's intra-op thread count of
the process (1 by default). On a shared 2-core machine two independent threads keep both cores busy where
two intra-op threads stall on each other; the results are those of a plain loop (same items, same order)."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator


def parallel_map(fn: Callable[..., Any], items: Iterable[tuple], workers: int, name: str = "rupture") -> Iterator[Any]:
    """`fn(*item)` for each item, in order, computed by `workers` threads with at most 2 x `workers` items in
    flight (bounded memory on long recordings); a plain loop for one worker."""
    if workers <= 1:
        for item in items:
            yield fn(*item)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, *item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
