"""Streaming past memory: taps spilled to disk, split by user, counted one part at a time.

An exact partial holds one entry per distinct (layer, cell, user), and with many users
that is about one entry per tap, so it grows with the input. Every figure heatengine
publishes under k-anonymity adds up across *disjoint sets of users*: distinct users and
capped taps per cell, distinct users per layer. So a streaming run writes each batch's
taps to disk grouped into ``2**BUCKET_BITS`` buckets by a hash of the user, and later
reads a run of buckets at a time: every user's taps, from every batch, are in one part,
and memory is bounded by one part (:data:`PART_TAPS`) rather than by the input.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import polars as pl

from heatengine.config import GridSpec
from heatengine.kernels import renumber_key_layers, split_by_user_bucket
from heatengine.partial import TapPartial, cell_keys

#: Users are hashed into 2**BUCKET_BITS buckets; a part is a run of whole buckets.
BUCKET_BITS = 10
#: Taps read and counted at once (about 60 bytes each while counting): a part's size,
#: unless a single bucket is larger (beyond about 2**32 taps in all).
PART_TAPS = 4 * 2**20
_INT32_MAX = np.iinfo(np.int32).max


class _SpilledBatch(NamedTuple):
    """Where one batch lies in the spill files, bucket by bucket."""

    key_offset: int  # byte offset of its keys in the keys file
    user_offset: int  # byte offset of its users in the users file
    starts: np.ndarray  # where each bucket's rows start, plus the number of rows
    key_type: np.dtype


class _SpillFiles(NamedTuple):
    keys: BinaryIO
    users: BinaryIO
    aside: BinaryIO  # rows set aside (quarantined), one Arrow IPC stream per batch


def _unlinked_file(path: Path) -> BinaryIO:
    """A file that is removed from its folder as soon as it is open: the system frees it
    when the handle closes, also when the process is killed."""
    handle = open(path, "w+b")  # noqa: SIM115 - the spill closes it
    # Where open files cannot be removed, the folder's cleanup removes them.
    with contextlib.suppress(OSError):
        os.unlink(path)
    return handle


def _buffer(buffer: np.ndarray | None, size: int, dtype: type[np.generic]) -> np.ndarray:
    """``buffer`` if it holds ``size`` values of ``dtype``, else a new one: reused
    memory costs no page faults."""
    if buffer is None or buffer.size < size or buffer.dtype != dtype:
        return np.empty(size, dtype)
    return buffer


class SpilledPartial(TapPartial):
    """Taps kept on disk, read as parts of disjoint users (a run of buckets each).

    A :class:`~heatengine.partial.TapPartial` whose parts are read one at a time, so
    memory holds one part. Made by :meth:`UserSpill.finish`; readable until the spill is
    closed.
    """

    def __init__(
        self,
        grid: GridSpec,
        layers: pl.DataFrame,
        files: _SpillFiles,
        batches: list[_SpilledBatch],
        layer_order: np.ndarray,
        chunks: int | None,
    ) -> None:
        super().__init__(grid, layers, chunks=chunks)
        self._files = files
        self._batches = batches
        self._layer_order = layer_order  # spill numbering -> position in ``layers``
        self._runs = _bucket_runs(batches)
        self._keys_read: np.ndarray | None = None  # read buffers, reused part after part
        self._users_read: np.ndarray | None = None

    @property
    def n_parts(self) -> int:
        """Number of parts (runs of buckets) the taps are read in."""
        return len(self._runs)

    def user_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each part's taps as ``(keys, users)``, one entry per tap (pairs repeat), in
        buffers that the next part overwrites."""
        largest = max((_run_size(self._batches, *run) for run in self._runs), default=0)
        self._keys_read = _buffer(self._keys_read, largest, np.int64)
        self._users_read = _buffer(self._users_read, largest, np.uint64)
        for first, stop in self._runs:
            keys, users = _read_buckets(
                self._files, self._batches, first, stop, self._keys_read, self._users_read
            )
            renumber_key_layers(keys, self._layer_order, self.grid.cells)
            yield keys, users


class UserSpill:
    """Taps written to disk batch by batch, grouped by user bucket.

    The spill lives in a new private folder inside ``parent`` (default: the system's
    temporary folder), in three files (keys, users, rows set aside) removed from it as
    soon as they are open; closing
    the spill (it is a context manager) frees them and removes the folder. Layers are
    numbered in order of first appearance while spilling, and renumbered in sorted
    order when the spill is read (:meth:`finish`).
    """

    def __init__(self, grid: GridSpec, parent: str | os.PathLike[str] | None = None) -> None:
        self.grid = grid
        with contextlib.ExitStack() as undo:  # a failed start leaves nothing behind
            self._folder = tempfile.TemporaryDirectory(prefix="heatengine-spill-", dir=parent)
            undo.callback(self._folder.cleanup)
            self.directory = Path(self._folder.name)  # made private (0700) by tempfile
            handles = []
            for name in ("keys", "users", "aside"):
                handles.append(undo.enter_context(_unlinked_file(self.directory / name)))
            self._files = _SpillFiles(*handles)
            undo.pop_all()
        self._closed = False
        self._aside: list[tuple[int, int]] = []  # (offset, length) of each stream
        self._aside_schema: pl.DataFrame | None = None
        self._layers: pl.DataFrame | None = None  # every layer seen, in first-seen order
        self._batches: list[_SpilledBatch] = []
        self._keys_out: np.ndarray | None = None  # write buffers, reused batch after batch
        self._users_out: np.ndarray | None = None

    def __enter__(self) -> UserSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the spill files and remove the folder (each step even if one fails)."""
        self._closed = True
        with contextlib.ExitStack() as closing:
            closing.callback(self._folder.cleanup)  # runs last
            for handle in self._files:
                closing.callback(handle.close)

    def set_aside(self, rows: pl.DataFrame) -> None:
        """Keep ``rows`` (a batch's quarantined rows) on disk until :meth:`rows_set_aside`,
        so they do not add up in memory while the input streams past."""
        if self._aside_schema is None:
            self._aside_schema = rows.clear()
        elif rows.schema != self._aside_schema.schema:  # fail now, not after the run
            msg = f"rows set aside differ in schema: {rows.schema} vs {self._aside_schema.schema}"
            raise ValueError(msg)
        if rows.height:
            start = self._files.aside.seek(0, os.SEEK_END)
            rows.write_ipc_stream(self._files.aside)
            self._aside.append((start, self._files.aside.tell() - start))

    def rows_set_aside(self) -> pl.DataFrame:
        """Every row :meth:`set_aside` kept, in order, as one frame (before closing)."""
        if self._closed:
            msg = "the spill is closed: its rows set aside are gone"
            raise ValueError(msg)
        frames = [self._aside_schema if self._aside_schema is not None else pl.DataFrame()]
        for start, length in self._aside:
            self._files.aside.seek(start)
            frames.append(pl.read_ipc_stream(io.BytesIO(self._files.aside.read(length))))
        return pl.concat(frames, how="vertical")

    def add(
        self,
        layers: pl.DataFrame,
        layer: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        users: np.ndarray,
    ) -> None:
        """Spill one batch of validated taps (arguments as for
        :func:`~heatengine.partial.partial_from_taps`)."""
        numbering = self._spill_numbering(layers)
        keys = cell_keys(self.grid, layers.height, layer, x, y, users)
        renumber_key_layers(keys, numbering, self.grid.cells)
        # int32 keys when every key of the spill so far fits: a third less to write.
        fits = self._layers.height * self.grid.cells - 1 <= _INT32_MAX
        key_type = np.int32 if fits else np.int64
        self._keys_out = _buffer(self._keys_out, keys.size, key_type)
        self._users_out = _buffer(self._users_out, users.size, np.uint64)
        starts = split_by_user_bucket(keys, users, BUCKET_BITS, self._keys_out, self._users_out)
        offsets = self._files.keys.tell(), self._files.users.tell()
        self._keys_out[: keys.size].tofile(self._files.keys)
        self._users_out[: users.size].tofile(self._files.users)
        self._batches.append(_SpilledBatch(*offsets, starts, np.dtype(key_type)))

    def _spill_numbering(self, layers: pl.DataFrame) -> np.ndarray:
        """Each of ``layers``' rows' number in the spill, new rows numbered after the rest."""
        columns = layers.columns
        known = layers.clear() if self._layers is None else self._layers
        new = layers.join(known, on=columns, how="anti", nulls_equal=True)
        self._layers = pl.concat([known, new], how="vertical")
        numbered = self._layers.with_row_index("spilled")
        joined = layers.join(
            numbered, on=columns, how="left", nulls_equal=True, maintain_order="left"
        )
        return joined["spilled"].to_numpy().astype(np.int64)

    def finish(self, layer_columns: list[str], chunks: int | None = None) -> SpilledPartial:
        """The spill as a :class:`SpilledPartial`, layers sorted.

        ``layer_columns`` names the layer columns, for a run that spilled no batch.
        """
        spilled = self._layers
        if spilled is None:
            spilled = pl.DataFrame(schema=dict.fromkeys(layer_columns, pl.String))
        layers = spilled.sort(spilled.columns)
        order = (
            spilled.with_row_index("spilled")
            .join(layers.with_row_index("sorted"), on=layers.columns, nulls_equal=True)
            .sort("spilled")["sorted"]
            .to_numpy()
            .astype(np.int64)
        )
        self._files.keys.flush()
        self._files.users.flush()
        return SpilledPartial(self.grid, layers, self._files, self._batches, order, chunks)


def _run_size(batches: list[_SpilledBatch], first: int, stop: int) -> int:
    return sum(int(batch.starts[stop] - batch.starts[first]) for batch in batches)


def _bucket_runs(batches: list[_SpilledBatch]) -> list[tuple[int, int]]:
    """Runs of consecutive buckets of at most :data:`PART_TAPS` taps (or one bucket
    with more), together covering every bucket with taps."""
    sizes = sum((np.diff(b.starts) for b in batches), np.zeros(1 << BUCKET_BITS, np.int64))
    runs, first, taps = [], 0, 0
    for bucket, size in enumerate(sizes.tolist()):
        if taps and taps + size > PART_TAPS:
            runs.append((first, bucket))
            first, taps = bucket, 0
        taps += size
    if taps:
        runs.append((first, sizes.size))
    return runs


def _read_buckets(
    files: _SpillFiles,
    batches: list[_SpilledBatch],
    first: int,
    stop: int,
    keys: np.ndarray,
    users: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The spilled keys and users of buckets ``first`` to ``stop - 1`` of every batch,
    read into the front of the buffers ``keys`` (int64) and ``users``."""
    at = 0
    for key_offset, user_offset, starts, key_type in batches:
        begin, size = int(starts[first]), int(starts[stop] - starts[first])
        if not size:
            continue
        files.keys.seek(key_offset + begin * key_type.itemsize)
        keys[at : at + size] = np.fromfile(files.keys, key_type, size)
        files.users.seek(user_offset + begin * 8)
        read = files.users.readinto(memoryview(users[at : at + size]).cast("B"))
        if read != size * 8:
            msg = f"the spill file ends early: {read} of {size * 8} bytes read"
            raise OSError(msg)
        at += size
    return keys[:at], users[:at]
