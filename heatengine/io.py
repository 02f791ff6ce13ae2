"""Reading tap inputs into one Polars LazyFrame.

Accepts frames, files (Parquet, CSV, NDJSON), directories searched recursively, globs,
and hive-partitioned layouts (``date=2026-12-03/part-0.parquet``), whose ``key=value``
folder names become columns. Nothing is read here beyond the schema: the pipeline
selects columns and the engine pushes that down into the scan.
"""

from __future__ import annotations

import glob as globbing
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from heatengine.errors import HeatengineError

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
CSV_SCHEMA_ROWS = 10_000

Source = pl.DataFrame | pl.LazyFrame | str | os.PathLike[str]
Sources = Source | Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class FilePlan:
    """How to scan one input file so it lines up with its siblings; picklable, so a
    worker on another machine can scan the file itself."""

    root: Path
    file: Path
    text_columns: tuple[str, ...]
    schema: pl.Schema | None = None

    def scan(self) -> pl.LazyFrame:
        """The file as a LazyFrame, aligned to the common schema when there is one."""
        frame = _scan_file(self.root, self.file, dict.fromkeys(self.text_columns, pl.String))
        return frame if self.schema is None else _aligned(frame, self.schema)


def plan_files(source: Sources, text_columns: Iterable[str] = ()) -> list[FilePlan]:
    """One :class:`FilePlan` per input file, sharing the schema the files agree on."""
    texts = tuple(text_columns)
    plans = [FilePlan(root, file, texts) for root, file in _input_files(source)]
    if len(plans) == 1:
        return plans
    union = pl.concat([p.scan() for p in plans], how="diagonal_relaxed").collect_schema()
    return [replace(p, schema=union) for p in plans]


def scan_batches(source: Sources, text_columns: Iterable[str] = ()) -> list[pl.LazyFrame]:
    """One LazyFrame per input file (or the frame given), all with the same schema.

    Stacking them gives the whole input; processing them one at a time bounds memory
    by the largest file. A column missing from a file is null there, and every column
    has the type the files agree on.
    """
    if isinstance(source, pl.DataFrame):
        return [source.lazy()]
    if isinstance(source, pl.LazyFrame):
        return [source]
    return [plan.scan() for plan in plan_files(source, text_columns)]


def scan_slices(
    source: Sources, text_columns: Iterable[str] = (), rows: int = 2**20
) -> list[pl.LazyFrame]:
    """:func:`scan_batches`, with Parquet files and in-memory frames cut into slices of
    at most ``rows`` rows (a file's slices of near-equal size), so that processing them
    one at a time bounds memory by a slice, not by the largest file.

    A Parquet slice is read from the row groups it spans (its row count comes from the
    file's metadata). CSV and NDJSON files stay whole (a slice would re-read the file
    up to it), and so does a LazyFrame given by the caller, whose row order need not be
    the same each time it is run.
    """
    if isinstance(source, pl.DataFrame):
        return [piece.lazy() for piece in source.iter_slices(rows)] or [source.lazy()]
    if isinstance(source, pl.LazyFrame):
        return [source]
    batches = []
    for plan in plan_files(source, text_columns):
        frame = plan.scan()
        if FORMATS[plan.file.suffix.lower()] != "parquet":
            batches.append(frame)
            continue
        total = pl.scan_parquet(plan.file, hive_partitioning=False).select(pl.len()).collect()
        # Near-equal slices rather than a short last one: a row group that two slices
        # share is decoded twice, and round sizes often fall on row-group boundaries
        # (a file of 2M rows in groups of 125,000: 2 x 1M shares none, 2**20 + 951,424
        # shares one; reading 100M taps in 50 such files took 5% less CPU).
        n = total.item()
        n_slices = max(1, math.ceil(n / rows))
        size = max(1, math.ceil(n / n_slices))  # an empty file: one empty slice
        batches += [frame.slice(start, size) for start in range(0, n, size)] or [frame]
    return batches


def input_files(source: Sources) -> list[Path]:
    """The files a path, glob, directory or list of them stands for (none for frames)."""
    if isinstance(source, pl.DataFrame | pl.LazyFrame):
        return []
    return [file for _, file in _input_files(source)]


def _input_files(source: Sources) -> list[tuple[Path, Path]]:
    """Sorted (root, file) pairs, each file once even when given paths overlap."""
    paths = [source] if isinstance(source, str | os.PathLike) else list(source)
    if not paths:
        msg = "no input given: pass a frame, a file, a directory or a glob"
        raise HeatengineError(msg)
    files: dict[Path, tuple[Path, Path]] = {}
    for path in paths:
        for root, file in _expand(Path(path)):
            files.setdefault(file.resolve(), (root, file))
    return sorted(files.values())


def _aligned(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    present = frame.collect_schema()
    return frame.select(
        pl.col(name).cast(dtype) if name in present else pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
    )


def _expand(path: Path) -> Iterable[tuple[Path, Path]]:
    """(root, file) pairs: the root is where hive ``key=value`` folders start."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in globbing.glob(text, recursive=True))
        files = [m for m in matches if m.is_file() and m.suffix.lower() in FORMATS]
        if not files:
            msg = f"the glob {text!r} matches no {_supported()} file"
            raise HeatengineError(msg)
        return [(_glob_root(text), f) for f in files]
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in FORMATS
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
        if not files:
            msg = f"the directory {text!r} holds no {_supported()} file"
            raise HeatengineError(msg)
        return [(path, f) for f in files]
    if path.is_file():
        if path.suffix.lower() not in FORMATS:
            msg = f"cannot read {text!r}: unsupported file type; use {_supported()}"
            raise HeatengineError(msg)
        return [(path.parent, path)]
    msg = f"input not found: {text!r}"
    raise HeatengineError(msg)


def _glob_root(pattern: str) -> Path:
    """The folder before the first wildcard of a glob."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path()


def _supported() -> str:
    return "Parquet (.parquet), CSV (.csv) or NDJSON (.ndjson, .jsonl)"


def _hive_values(root: Path, file: Path) -> dict[str, str]:
    """``key=value`` folder names between ``root`` and ``file``."""
    values = {}
    for part in file.parent.relative_to(root).parts:
        key, sep, value = part.partition("=")
        if sep and key:
            values[key] = value
    return values


def _scan_file(root: Path, file: Path, overrides: dict[str, type[pl.String]]) -> pl.LazyFrame:
    fmt = FORMATS[file.suffix.lower()]
    if fmt == "parquet":
        frame = pl.scan_parquet(file, hive_partitioning=False)
    elif fmt == "csv":
        frame = pl.scan_csv(file, infer_schema_length=CSV_SCHEMA_ROWS, schema_overrides=overrides)
    else:
        present = pl.scan_ndjson(file, infer_schema_length=CSV_SCHEMA_ROWS).collect_schema()
        frame = pl.scan_ndjson(
            file,
            infer_schema_length=CSV_SCHEMA_ROWS,
            schema_overrides={k: v for k, v in overrides.items() if k in present},
        )
    hive_columns = [pl.lit(v).alias(k) for k, v in _hive_values(root, file).items()]
    return frame.with_columns(hive_columns) if hive_columns else frame
