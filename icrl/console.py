"""What the user sees while a stage runs: one-line messages and progress."""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def say(message: str) -> None:
    """Prints `message` to stderr at once."""
    print(message, file=sys.stderr, flush=True)


def progress(items: Iterable[T], *, total: int, desc: str, unit: str = "it", initial: int = 0) -> Iterator[T]:
    """Yields `items`, showing a progress bar on a terminal, or a line per ~10% otherwise."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
        return
    start, done, next_report = time.monotonic(), initial, initial
    step = max(total // 10, 1)
    for item in items:
        yield item
        done += 1
        if done >= next_report + step or done == total:
            next_report = done
            say(f"{desc}: {done}/{total} {unit} ({time.monotonic() - start:.0f}s)")
