"""Progress lines for the slow first-time steps (indexing BUSI, building the tensor cache).

Building the index decodes every image and its masks and compares all pairs for near-duplicates:
about 24 s for BUSI on a 2-core CPU, once -- and ``bcdet train`` used to print nothing meanwhile,
which looks like a hang. Plain printed lines, not a progress bar, so they read the same in a
terminal, a log file and a notebook executed by papermill.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator


def announce(items: Iterable, total: int, what: str, every: float = 5.0) -> Iterator:
    """Yield ``items``; print ``what`` with the total first, ``i/total`` every ``every`` seconds,
    and the time taken at the end."""
    t0 = last = time.perf_counter()
    print(f"{what}: {total} images (first time only; cached afterwards) ...", flush=True)
    for i, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last >= every and i < total:
            print(f"  {i}/{total} images, {now - t0:.0f} s", flush=True)
            last = now
    print(f"  done: {total} images in {time.perf_counter() - t0:.1f} s", flush=True)
