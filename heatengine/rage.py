"""Rage taps: one user tapping the same spot again and again within a second.

The rule, exactly (:func:`rage_taps` applies it, :func:`mark_rage_taps` is its kernel):

* Taps are compared only with taps of the **same user on the same screen**, in order of
  time. Taps at the same instant are ordered by ``x`` and then ``y``, so the result does
  not depend on the order of the input rows. Rows with a missing user, screen or time,
  or a missing or non-finite coordinate, are never rage taps and take no part.
* Times are whole microseconds, and the window is ``window_us =
  round(window_seconds * 1_000_000)`` microseconds.
* Distances are measured in the screen's width, with the vertical distance scaled by
  ``aspect = height / width``, so that the radius is a circle in pixels: tap ``j`` is
  **near** tap ``f`` when ``dx * dx + dy * dy <= radius * radius`` for
  ``dx = x[j] - x[f]`` and ``dy = (y[j] - y[f]) * aspect`` (``x``, ``y`` normalised to
  [0, 1]). The default radius 0.08 is 31 px on a 390 x 844 px phone, on both axes.
* A **candidate** starting at tap ``f`` is ``f`` and the run of taps right after it
  that are each no later than ``window_us`` after ``f`` (``ts[j] - ts[f] <= window_us``,
  inclusive: taps at 0.0, 0.5 and 1.0 s are within a 1.0 s window) and near ``f``. The
  first tap that is too late or too far **breaks** the candidate and is not part of it.
  Every tap is compared with the candidate's first tap, not with its neighbour, so a
  slow drift across the screen does not chain into one burst.
* **Greedy, left to right**: the first candidate starts at the group's first tap. A
  candidate of at least ``min_taps`` taps is a **burst**: all of its taps are rage taps,
  and the next candidate starts at the tap that broke it (bursts never overlap, so each
  can be counted once). A shorter candidate is not a burst: the next candidate starts at
  the tap after its first tap, so a burst that begins in the middle of a short candidate
  is still found.

A consequence of disjoint bursts: with ``min_taps=3``, taps at 0.0, 0.6, 0.9 and 1.2 s on
one spot make one burst of the first three taps; the tap at 1.2 s breaks it (1.2 s after
the first tap) and is not a rage tap unless a burst starts with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from numba import njit, prange

from heatengine.config import NJIT_PARALLEL, _require_int, _require_real
from heatengine.errors import SchemaError

__all__ = ["RagePolicy", "mark_rage_taps", "rage_taps"]

#: Longest window accepted, in seconds (one day); longer ones are not about rage.
MAX_WINDOW_SECONDS = 86_400.0
#: Default aspect ratio, height / width, of a 390 x 844 px phone.
PHONE_ASPECT = 844 / 390
MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class RagePolicy:
    """What counts as a rage-tap burst (the rule is in :mod:`heatengine.rage`).

    Parameters
    ----------
    window_seconds
        Longest time from a burst's first tap to any of its taps, inclusive
        (default 1.0; above 0 and at most a day).
    radius
        Largest distance from a burst's first tap, in screen widths (default 0.08,
        about 30 px on a 390-px-wide phone).
    min_taps
        Fewest taps that make a burst (default 3, at least 2).
    aspect
        Screen height / width, which scales vertical distances so the radius is round
        in pixels (default 844 / 390).

    Raises
    ------
    TypeError
        A value of the wrong type.
    ValueError
        A value out of range.

    Examples
    --------
    >>> policy = RagePolicy(window_seconds=0.5, min_taps=4)
    >>> policy.window_us
    500000
    >>> RagePolicy.from_dict(policy.to_dict()) == policy
    True
    """

    window_seconds: float = 1.0
    radius: float = 0.08
    min_taps: int = 3
    aspect: float = PHONE_ASPECT

    def __post_init__(self) -> None:
        window = _require_real(
            "window_seconds", self.window_seconds, unit="seconds", above=0,
            at_most=MAX_WINDOW_SECONDS,
        )  # fmt: skip
        object.__setattr__(self, "window_seconds", window)
        object.__setattr__(
            self, "radius", _require_real("radius", self.radius, unit="widths", above=0)
        )
        _require_int("min_taps", self.min_taps, 2)
        aspect = _require_real("aspect", self.aspect, unit="heights per width", above=0)
        object.__setattr__(self, "aspect", aspect)

    @property
    def window_us(self) -> int:
        """The window in whole microseconds, as the kernel compares it."""
        return round(self.window_seconds * MICROSECONDS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, for a manifest or report."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RagePolicy:
        """Rebuild a policy written by :meth:`to_dict`."""
        return cls(**data)


@njit(**NJIT_PARALLEL)
def mark_rage_taps(
    starts: np.ndarray,
    ts: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    window_us: int,
    radius: float,
    aspect: float,
    min_taps: int,
    is_rage: np.ndarray,
) -> None:
    """Mark the taps of rage bursts, group by group (the rule is in :mod:`heatengine.rage`).

    Parameters
    ----------
    starts : int64 array
        Where each group (one user on one screen) begins, plus the number of taps.
    ts : int64 array
        Times in microseconds, ascending within each group.
    x, y : float64 arrays
        Normalised coordinates.
    window_us, radius, aspect, min_taps
        The policy (:class:`RagePolicy`).
    is_rage : bool array
        Output, one per tap; every entry is written.
    """
    limit = radius * radius
    for g in prange(starts.size - 1):
        begin, end = starts[g], starts[g + 1]
        for k in range(begin, end):
            is_rage[k] = False
        first = begin
        while first < end:
            stop = first + 1
            while stop < end and ts[stop] - ts[first] <= window_us:
                dx = x[stop] - x[first]
                dy = (y[stop] - y[first]) * aspect
                if dx * dx + dy * dy > limit:
                    break
                stop += 1
            if stop - first >= min_taps:
                for k in range(first, stop):
                    is_rage[k] = True
                first = stop
            else:
                first += 1


def rage_taps(
    df: pl.DataFrame,
    user: str = "user_token",
    screen: str = "screen",
    ts: str = "ts",
    x: str = "x",
    y: str = "y",
    policy: RagePolicy | None = None,
) -> np.ndarray:
    """Which taps belong to rage-tap bursts.

    Parameters
    ----------
    df
        Taps, one per row, in any order.
    user, screen
        Columns that identify the user and the screen (any type Polars can sort).
    ts
        A ``Datetime`` column (any unit; naive times and times with a zone compare the
        same way, as instants).
    x, y
        Normalised coordinates in screen widths and heights (numbers).
    policy
        The burst rule; ``None`` means ``RagePolicy()``.

    Returns
    -------
    np.ndarray
        ``bool``, one per row of ``df`` in its order: the row is a rage tap.

    Raises
    ------
    SchemaError
        A column is missing or has the wrong type.
    TypeError
        ``policy`` is not a :class:`RagePolicy`.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t0 = datetime(2024, 5, 1, 12)
    >>> taps = pl.DataFrame({
    ...     "user_token": [1, 1, 2, 1, 1],
    ...     "screen": ["cart"] * 5,
    ...     "ts": [t0 + timedelta(seconds=s) for s in (0.0, 0.4, 0.5, 0.9, 5.0)],
    ...     "x": [0.50, 0.52, 0.50, 0.49, 0.50],
    ...     "y": [0.70, 0.71, 0.70, 0.70, 0.70],
    ... })
    >>> rage_taps(taps).tolist()
    [True, True, False, True, False]
    """
    policy = RagePolicy() if policy is None else policy
    if not isinstance(policy, RagePolicy):
        msg = f"policy must be a RagePolicy, got {policy!r}"
        raise TypeError(msg)
    _check_columns(df, user, screen, ts, x, y)
    valid = (
        pl.all_horizontal(pl.col(user, screen, ts, x, y).is_not_null())
        & pl.col(x).cast(pl.Float64).is_finite()
        & pl.col(y).cast(pl.Float64).is_finite()
    )
    taps = (
        df.lazy()
        .select(
            pl.col(user).alias("user"),
            pl.col(screen).alias("screen"),
            pl.col(ts).dt.epoch("us").alias("ts"),
            pl.col(x).cast(pl.Float64).alias("x"),
            pl.col(y).cast(pl.Float64).alias("y"),
            valid.fill_null(False).alias("valid"),
        )
        .with_row_index("row")
        .filter(pl.col("valid"))
        .sort("user", "screen", "ts", "x", "y")
        .with_columns(
            new=pl.col("user").ne_missing(pl.col("user").shift())
            | pl.col("screen").ne_missing(pl.col("screen").shift())
        )
        .collect()
    )
    starts = np.append(np.flatnonzero(taps["new"].to_numpy()), taps.height).astype(np.int64)
    marked = np.empty(taps.height, np.bool_)
    mark_rage_taps(
        starts,
        _read_only(taps["ts"], np.int64),
        _read_only(taps["x"], np.float64),
        _read_only(taps["y"], np.float64),
        policy.window_us,
        policy.radius,
        policy.aspect,
        policy.min_taps,
        marked,
    )
    is_rage = np.zeros(df.height, np.bool_)
    is_rage[taps["row"].to_numpy()] = marked
    return is_rage


def _read_only(values: pl.Series, dtype: type[np.generic]) -> np.ndarray:
    """A contiguous, read-only array: Polars hands out read-only arrays when it can share
    memory and writable copies when it cannot, and Numba compiles once per combination."""
    array = np.ascontiguousarray(values.to_numpy(), dtype).view()
    array.flags.writeable = False
    return array


def _check_columns(df: pl.DataFrame, user: str, screen: str, ts: str, x: str, y: str) -> None:
    missing = [c for c in (user, screen, ts, x, y) if c not in df.columns]
    if missing:
        msg = f"rage taps need the columns {', '.join(map(repr, missing))}, missing from the input"
        raise SchemaError(msg)
    if not isinstance(df.schema[ts], pl.Datetime):
        msg = f"column {ts!r} has type {df.schema[ts]}, expected a datetime"
        raise SchemaError(msg)
    for column in (x, y):
        if not df.schema[column].is_numeric():
            msg = f"column {column!r} has type {df.schema[column]}, expected a number"
            raise SchemaError(msg)
