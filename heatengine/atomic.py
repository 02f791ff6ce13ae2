"""Atomic file writes: write under a temporary name beside the target, then rename.

A reader (or a crash) never sees a half-written file: the target is either the old
file or the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path


def temporary_beside(target: Path) -> Path:
    """Create an empty, uniquely named hidden file next to ``target`` (normal permissions)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    temporary.touch(exist_ok=False)
    return temporary


def commit(temporary: Path, target: Path) -> None:
    """Flush ``temporary`` to disk and rename it over ``target``."""
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    temporary = temporary_beside(target)
    try:
        yield temporary
        commit(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call ``write(temporary_path)`` and rename the result to ``path``."""
    with atomic_path(path) as temporary:
        write(temporary)
