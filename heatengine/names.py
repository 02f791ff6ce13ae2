"""Safe file names from screen and segment names."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(text: str) -> str:
    """A file name stem with no separators, no ``..``, no control characters.

    Examples
    --------
    >>> safe_stem("../etc/passwd")
    'etc_passwd'
    >>> safe_stem("Home Screen / iOS")
    'Home_Screen_iOS'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    stem = _UNSAFE.sub("_", ascii_text)
    stem = re.sub(r"\.{2,}", "_", stem)
    stem = re.sub(r"_+", "_", stem).strip("._-")
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    if len(stem) > MAX_STEM:
        stem = f"{stem[: MAX_STEM - 9]}-{digest}"
    return stem or f"layer-{digest}"  # nothing ASCII left (e.g. 画面): still stable


def unique_stems(texts: Iterable[str]) -> list[str]:
    """:func:`safe_stem` of each text, with ``-2``, ``-3`` … added where stems collide."""
    used: set[str] = set()
    stems = []
    for text in texts:
        base = safe_stem(text)
        stem, n = base, 1
        while stem.lower() in used:  # case-insensitive: some file systems are
            n += 1
            stem = f"{base}-{n}"
        used.add(stem.lower())
        stems.append(stem)
    return stems
