"""Engagement per UI element, from a fully merged partial at grid-cell resolution.

An *elements table* names rectangles on screens (a button, a card, a tab). Each element
covers the grid cells whose **centre** lies inside its rectangle, ``x0 <= centre < x1``
and ``y0 <= centre < y1`` in normalised coordinates (row 0 at the top). On an axis where a
rectangle spans no cell centre (an element narrower or shorter than a cell) it takes the
column or row that contains its own centre, by the same ``floor(v * n)`` rule that bins
taps, so no element is ever empty. Elements may overlap (a button inside a card): a cell
then belongs to both.

Everything is computed from a :class:`~heatengine.partial.Partial`, so it merges across
files, days and workers exactly like the heatmaps, and it inherits their resolution: a
tap counts for an element when its *cell* does. Dead taps, the taps in cells that no
element of the screen covers, are likewise measured at grid resolution; a tap on the
margin of a button that shares a cell with empty space counts as on the button or dead
depending on where the cell's centre falls.

Privacy: a figure is published only when it rests on at least ``k`` distinct users. An
element with fewer (zero included) is suppressed: its row is dropped and counted. A
layer's ``screen_users`` below ``k`` is null, and then every element row of the layer
is dropped too (an element's users never exceed its screen's). The dead-tap figures are
null unless the layer is shown and its dead cells saw no user or at least ``k``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numba import njit, prange

from heatengine.config import NJIT_PARALLEL, GridSpec, _require_int
from heatengine.errors import HeatengineError, SchemaError
from heatengine.kernels import GOLDEN, chunk_bounds, distinct_users_per_group
from heatengine.partial import (
    Partial,
    affordable_chunks,
    bucket_bits,
    default_chunks,
    users_per_layer,
)

__all__ = [
    "Engagement",
    "demo_elements",
    "element_cells",
    "element_engagement",
    "load_elements",
    "validate_elements",
]

TEXT_COLUMNS = ("screen", "element")
#: A rectangle normalised to [0, 1]: left, top, right, bottom.
NORMALISED_COLUMNS = ("x0", "y0", "x1", "y1")
#: A rectangle in pixels of the viewport it was measured on.
PIXEL_COLUMNS = ("left", "top", "width", "height", "viewport_width", "viewport_height")
#: Columns the engagement tables write; a layer column may not use these names.
OUTPUT_COLUMNS = (
    "element",
    "users",
    "taps",
    "screen_users",
    "engagement",
    "dead_users",
    "dead_taps",
    "dead_tap_share",
    "elements_suppressed",
)
#: About this many entries per group when counting distinct users (see kernels).
_FORMS = (
    "screen, element and a rectangle: x0, y0, x1, y1 (normalised to [0, 1]) or "
    "left, top, width, height, viewport_width, viewport_height (pixels)"
)


# --- Loading and validation ---------------------------------------------------------


def load_elements(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read and validate an elements table from a CSV file or a JSON list of objects.

    Each row (object) gives ``screen``, ``element`` and a rectangle, either normalised
    (``x0, y0, x1, y1`` in [0, 1], origin at the top left) or in pixels (``left, top,
    width, height`` with the ``viewport_width, viewport_height`` they were measured on).
    Other columns are ignored.

    Parameters
    ----------
    path
        A ``.csv`` or ``.json`` file.

    Returns
    -------
    polars.DataFrame
        ``screen``, ``element`` (String) and ``x0, y0, x1, y1`` (Float64), in file order;
        see :func:`validate_elements`.

    Raises
    ------
    HeatengineError
        The file cannot be read.
    SchemaError
        The file is not valid CSV or JSON, or its table is invalid; the message names the
        file, the column, how many rows fail and the first of them (rows count from 1,
        the CSV header excluded).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        msg = f"{path}: elements must be a .csv or .json file, got {suffix or 'no suffix'!r}"
        raise SchemaError(msg)
    try:
        frame = _read_csv(path) if suffix == ".csv" else _read_json(path)
    except OSError as exc:
        msg = f"{path}: cannot read the elements file: {exc.strerror or exc}"
        raise HeatengineError(msg) from exc
    return validate_elements(frame, source=str(path))


def _read_csv(path: Path) -> pl.DataFrame:
    if path.is_file() and path.stat().st_size == 0:
        return pl.DataFrame()
    try:
        return pl.read_csv(path, infer_schema=False)  # all text; numbers are parsed later
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        msg = f"{path}: not a readable CSV file: {exc}"
        raise SchemaError(msg) from exc


def _read_json(path: Path) -> pl.DataFrame:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path}: not valid JSON: {exc}"
        raise SchemaError(msg) from exc
    if not isinstance(data, list):
        msg = f"{path}: elements must be a JSON list of objects, got a {type(data).__name__}"
        raise SchemaError(msg)
    for position, item in enumerate(data, 1):
        if not isinstance(item, dict):
            msg = f"{path}: elements must be a JSON list of objects; item {position} is a "
            msg += f"{type(item).__name__}"
            raise SchemaError(msg)
    records = [{key: _json_scalar(value) for key, value in item.items()} for item in data]
    if not records:
        return pl.DataFrame()
    return pl.from_dicts(records, infer_schema_length=None)


def _json_scalar(value: object) -> object:
    """Numbers and text as they are; anything else as text, which fails as a number."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return json.dumps(value)


def validate_elements(elements: pl.DataFrame, source: str = "elements") -> pl.DataFrame:
    """Check an elements table and normalise its rectangles to ``x0, y0, x1, y1``.

    Parameters
    ----------
    elements
        ``screen``, ``element`` and either ``x0, y0, x1, y1`` (normalised) or ``left,
        top, width, height, viewport_width, viewport_height`` (pixels); numbers may be
        given as text. A table already in the returned form passes unchanged.
    source
        What to call the table in error messages, such as its file name.

    Returns
    -------
    polars.DataFrame
        ``screen``, ``element`` (String) and ``x0, y0, x1, y1`` (Float64), in input order.

    Raises
    ------
    SchemaError
        No rows; a missing column, or both rectangle forms; a blank name; a value that is
        missing, not a number or not finite; an empty rectangle (``x1 <= x0``); a
        rectangle outside the screen; a repeated ``(screen, element)`` pair.

    Examples
    --------
    >>> table = pl.DataFrame({"screen": ["home"], "element": ["buy"], "left": [39],
    ...     "top": [422], "width": [195], "height": [211], "viewport_width": [390],
    ...     "viewport_height": [844]})
    >>> validate_elements(table).row(0)
    ('home', 'buy', 0.1, 0.5, 0.6, 0.75)
    """
    if not isinstance(elements, pl.DataFrame):
        msg = f"elements must be a polars DataFrame, got {type(elements).__name__}"
        raise TypeError(msg)
    if elements.height == 0:
        msg = f"{source}: no elements; each row needs {_FORMS}"
        raise SchemaError(msg)
    numbers = _rectangle_form(elements.columns, source)
    frame = elements.select(
        *(_as_text(elements, column, source) for column in TEXT_COLUMNS),
        *(_as_number(elements, column, source) for column in numbers),
    ).with_row_index("row", offset=1)
    for column in TEXT_COLUMNS:
        blank = pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")
        _check(frame, source, column, "is missing or blank", blank)
    for column in numbers:
        _check(frame, source, column, "is missing or not a number", pl.col(column).is_null())
        _check(frame, source, column, "is not finite", ~pl.col(column).is_finite())
    if numbers == PIXEL_COLUMNS:
        frame = _pixels_to_normalised(frame, source)
    else:
        for column in NORMALISED_COLUMNS:
            outside = ~pl.col(column).is_between(0.0, 1.0)
            _check(frame, source, column, "lies outside the screen (0 to 1)", outside)
        for low, high in (("x0", "x1"), ("y0", "y1")):
            empty = pl.col(high) <= pl.col(low)
            _check(frame, source, high, f"is not greater than {low}", empty)
    repeated = pl.struct(*TEXT_COLUMNS).is_duplicated()
    _check(frame, source, "element", "repeats a name within its screen", repeated)
    return frame.select(*TEXT_COLUMNS, *NORMALISED_COLUMNS)


def _rectangle_form(columns: list[str], source: str) -> tuple[str, ...]:
    """The rectangle columns a table gives, or a SchemaError naming what is missing."""
    present = set(columns)
    text_missing = [c for c in TEXT_COLUMNS if c not in present]
    normalised_missing = [c for c in NORMALISED_COLUMNS if c not in present]
    pixels_missing = [c for c in PIXEL_COLUMNS if c not in present]
    if not normalised_missing and not pixels_missing:
        msg = (
            f"{source}: give the rectangle as x0, y0, x1, y1 or as left, top, width, "
            f"height, viewport_width, viewport_height, not both"
        )
        raise SchemaError(msg)
    missing = list(text_missing)
    if normalised_missing and pixels_missing:
        normalised_given = len(NORMALISED_COLUMNS) - len(normalised_missing)
        pixels_given = len(PIXEL_COLUMNS) - len(pixels_missing)
        missing += normalised_missing if normalised_given >= pixels_given else pixels_missing
    if missing:
        names = ", ".join(repr(c) for c in missing)
        plural = "s" if len(missing) > 1 else ""
        msg = f"{source}: missing column{plural} {names}; each row needs {_FORMS}"
        raise SchemaError(msg)
    return NORMALISED_COLUMNS if not normalised_missing else PIXEL_COLUMNS


def _as_text(frame: pl.DataFrame, column: str, source: str) -> pl.Expr:
    dtype = frame.schema[column]
    if not (dtype in (pl.String, pl.Categorical, pl.Null) or dtype.is_integer()):
        msg = f"{source}: column {column!r} must hold text, got {dtype}"
        raise SchemaError(msg)
    return pl.col(column).cast(pl.String)


def _as_number(frame: pl.DataFrame, column: str, source: str) -> pl.Expr:
    """Float64; text is parsed, and what does not parse becomes null (reported later)."""
    dtype = frame.schema[column]
    if dtype == pl.String:
        return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    if not (dtype.is_numeric() or dtype == pl.Null):
        msg = f"{source}: column {column!r} must hold numbers, got {dtype}"
        raise SchemaError(msg)
    return pl.col(column).cast(pl.Float64)


def _check(frame: pl.DataFrame, source: str, column: str, problem: str, bad: pl.Expr) -> None:
    """Raise a SchemaError naming the column, the rows where ``bad`` holds and the first."""
    rows = frame.filter(bad)["row"]
    if rows.len():
        first = frame.row(rows[0] - 1, named=True)
        where = f"row {rows[0]}"
        if all(first[c] and first[c].strip() for c in TEXT_COLUMNS):
            where += f", element {first['element']!r} of screen {first['screen']!r}"
        plural = "s" if rows.len() > 1 else ""
        msg = f"{source}: column {column!r} {problem} in {rows.len()} row{plural} (first: {where})"
        raise SchemaError(msg)


def _pixels_to_normalised(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    for column in ("viewport_width", "viewport_height", "width", "height"):
        _check(frame, source, column, "is not positive", pl.col(column) <= 0)
    for column in ("left", "top"):
        _check(frame, source, column, "lies outside the screen (below 0)", pl.col(column) < 0)
    spans = (("width", "left", "viewport_width"), ("height", "top", "viewport_height"))
    for size, start, viewport in spans:
        outside = pl.col(start) + pl.col(size) > pl.col(viewport)
        problem = f"reaches outside the screen ({start} + {size} > {viewport})"
        _check(frame, source, size, problem, outside)
    frame = frame.with_columns(
        x0=pl.col("left") / pl.col("viewport_width"),
        y0=pl.col("top") / pl.col("viewport_height"),
        x1=(pl.col("left") + pl.col("width")) / pl.col("viewport_width"),
        y1=(pl.col("top") + pl.col("height")) / pl.col("viewport_height"),
    )
    for size, low, high in (("width", "x0", "x1"), ("height", "y0", "y1")):
        problem = "is too small to measure against the viewport"
        _check(frame, source, size, problem, pl.col(high) <= pl.col(low))
    return frame


def demo_elements(*, interactive_only: bool = True) -> pl.DataFrame:
    """The elements of the demo screens in :data:`heatengine.synthetic.SCREEN_LAYOUTS`.

    Parameters
    ----------
    interactive_only
        Keep only the elements that attract taps (positive weight). Decorative ones
        (titles, section headings, the tab bar and keyboard backgrounds) would otherwise
        cover the gaps between buttons and hide dead taps.

    Examples
    --------
    >>> table = demo_elements()
    >>> table.filter(pl.col("screen") == "checkout")["element"].to_list()[-2:]
    ['terms', 'pay_button']
    """
    from heatengine.synthetic import SCREEN_LAYOUTS  # needs scipy; load on first use

    rows = [
        (screen, e.name, e.x0, e.y0, e.x1, e.y1)
        for screen, layout in SCREEN_LAYOUTS.items()
        for e in layout
        if e.weight > 0 or not interactive_only
    ]
    schema = dict.fromkeys(TEXT_COLUMNS, pl.String) | dict.fromkeys(NORMALISED_COLUMNS, pl.Float64)
    table = pl.DataFrame(rows, schema=schema, orient="row")
    return validate_elements(table, source="heatengine.synthetic.SCREEN_LAYOUTS")


# --- Cells --------------------------------------------------------------------------


def _axis_span(low: np.ndarray, high: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last cell along an axis whose centre lies in ``[low, high)``;
    the cell containing the middle of the span when there is none."""
    centres = (np.arange(n) + 0.5) / n
    first = np.searchsorted(centres, low, side="left")
    stop = np.searchsorted(centres, high, side="left")
    middle = np.minimum(np.floor((low + high) / 2 * n), n - 1).astype(np.int64)
    empty = stop <= first
    return np.where(empty, middle, first), np.where(empty, middle + 1, stop)


def _cell_pairs(elements: pl.DataFrame, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """(table row, cell) for every cell each element covers, by row and then cell."""
    x0, y0, x1, y1 = (elements[c].to_numpy() for c in NORMALISED_COLUMNS)
    cx_first, cx_stop = _axis_span(x0, x1, grid.columns)
    cy_first, cy_stop = _axis_span(y0, y1, grid.rows)
    width = cx_stop - cx_first
    count = width * (cy_stop - cy_first)
    row = np.repeat(np.arange(elements.height, dtype=np.int64), count)
    within = np.arange(count.sum(), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    cx = cx_first[row] + within % width[row]
    cy = cy_first[row] + within // width[row]
    return row, cy * grid.columns + cx


def element_cells(elements: pl.DataFrame, grid: GridSpec) -> pl.DataFrame:
    """The grid cells each element covers: those whose centre lies inside its rectangle.

    Parameters
    ----------
    elements
        An elements table (see :func:`validate_elements`).
    grid
        The grid of the heatmaps.

    Returns
    -------
    polars.DataFrame
        ``screen``, ``element``, ``cx``, ``cy`` and ``cell = cy * columns + cx`` (Int64),
        one row per covered cell, elements in table order and cells ascending. An element
        that spans no cell centre on an axis gets the column (row) containing its centre.

    Examples
    --------
    >>> table = pl.DataFrame({"screen": ["home", "home"], "element": ["card", "dot"],
    ...     "x0": [0.0, 0.3], "y0": [0.0, 0.3], "x1": [0.5, 0.31], "y1": [0.5, 0.31]})
    >>> element_cells(table, GridSpec(4, 4)).select("element", "cell").rows()
    [('card', 0), ('card', 1), ('card', 4), ('card', 5), ('dot', 5)]
    """
    table = validate_elements(elements)
    if not isinstance(grid, GridSpec):
        msg = f"grid must be a GridSpec, got {grid!r}"
        raise TypeError(msg)
    row, cell = _cell_pairs(table, grid)
    return table.select(pl.col(TEXT_COLUMNS).gather(row)).with_columns(
        cx=pl.Series(cell % grid.columns, dtype=pl.Int64),
        cy=pl.Series(cell // grid.columns, dtype=pl.Int64),
        cell=pl.Series(cell, dtype=pl.Int64),
    )


@dataclass(frozen=True)
class _Layout:
    """Which elements cover each cell of each screen, as CSR arrays.

    Screen ``s`` has ``counts[s]`` elements, numbered ``0..counts[s]-1`` in table order;
    number ``counts[s]`` stands for the screen's *dead* cells, covered by no element. The
    elements of cell ``c`` of screen ``s`` are ``members[start[s*cells+c]:start[s*cells+c+1]]``.
    """

    screens: pl.Series  # screen names, in order of first appearance
    counts: np.ndarray  # elements per screen
    rows: np.ndarray  # table rows, grouped by screen, table order within
    first: np.ndarray  # where each screen's elements begin in ``rows``
    start: np.ndarray
    members: np.ndarray
    dead: np.ndarray  # (screens, cells) bool


def _screen_numbers(values: pl.Series, screens: pl.Series) -> np.ndarray:
    """Position of each value in ``screens`` (int64), -1 where absent or null."""
    numbers = pl.Series(np.arange(screens.len(), dtype=np.int64))
    found = values.cast(pl.String).replace_strict(screens, numbers, default=-1)
    return found.fill_null(-1).to_numpy().astype(np.int64)


def _layout(elements: pl.DataFrame, grid: GridSpec) -> _Layout:
    cells = grid.cells
    screens = elements["screen"].unique(maintain_order=True)
    screen = _screen_numbers(elements["screen"], screens)
    counts = np.bincount(screen, minlength=screens.len()).astype(np.int64)
    rows = np.argsort(screen, kind="stable").astype(np.int64)
    first = np.cumsum(counts) - counts
    local = np.empty(elements.height, np.int64)
    local[rows] = np.arange(elements.height) - np.repeat(first, counts)
    row, cell = _cell_pairs(elements, grid)
    key = screen[row] * cells + cell
    covered = np.zeros(screens.len() * cells, bool)
    covered[key] = True
    dead_key = np.flatnonzero(~covered)
    key = np.concatenate((key, dead_key))
    member = np.concatenate((local[row], counts[dead_key // cells]))
    order = np.lexsort((member, key))
    start = np.zeros(screens.len() * cells + 1, np.int64)
    np.cumsum(np.bincount(key, minlength=screens.len() * cells), out=start[1:])
    dead = ~covered.reshape(screens.len(), cells)
    return _Layout(screens, counts, rows, first, start, member[order], dead)


# --- Kernels ------------------------------------------------------------------------


@njit(**NJIT_PARALLEL)
def element_entry_totals(
    keys: np.ndarray, layer_row: np.ndarray, start: np.ndarray, cells: int, out: np.ndarray
) -> None:
    """Entries each contiguous chunk of a contribution list expands to.

    A contribution of layer ``l`` and cell ``c`` expands to one entry per element (or
    dead pseudo-element) of ``c`` on the layer's screen: CSR row ``layer_row[l] + c`` of
    ``start``; layers with ``layer_row < 0`` expand to nothing. ``out`` (int64, one per
    chunk) receives the totals; chunk ``i`` spans ``chunk_bounds(keys.size, out.size)``.
    """
    bounds = chunk_bounds(keys.size, out.size)
    for chunk in prange(out.size):
        total = 0
        for i in range(bounds[chunk], bounds[chunk + 1]):
            row = layer_row[keys[i] // cells]
            if row >= 0:
                r = row + keys[i] % cells
                total += start[r + 1] - start[r]
        out[chunk] = total


@njit(**NJIT_PARALLEL)
def element_user_groups(
    keys: np.ndarray,
    users: np.ndarray,
    layer_row: np.ndarray,
    layer_slot: np.ndarray,
    start: np.ndarray,
    members: np.ndarray,
    cells: int,
    bucket_bits: int,
    offsets: np.ndarray,
    out_groups: np.ndarray,
    out_users: np.ndarray,
) -> None:
    """Expand contributions to one ``(group, user)`` entry per element covering their cell.

    The group is ``(layer_slot[l] + member) * 2**bucket_bits + bucket(user)``, with
    ``member`` from the CSR arrays ``start``/``members`` (see
    :func:`element_entry_totals`). A user always lands in the same bucket, so distinct
    users per slot is the sum over its buckets of
    :func:`~heatengine.kernels.distinct_users_per_group`. Chunk ``i`` (of
    ``offsets.size - 1``) writes ``out_*[offsets[i]:offsets[i + 1]]``.
    """
    n_chunks = offsets.size - 1
    bounds = chunk_bounds(keys.size, n_chunks)
    shift = np.uint64(64 - max(bucket_bits, 1))
    for chunk in prange(n_chunks):
        j = offsets[chunk]
        for i in range(bounds[chunk], bounds[chunk + 1]):
            layer = keys[i] // cells
            row = layer_row[layer]
            if row < 0:
                continue
            r = row + keys[i] % cells
            # the bucket hash of published_user_groups
            bucket = np.int64((users[i] * GOLDEN) >> shift) if bucket_bits else 0
            for p in range(start[r], start[r + 1]):
                out_groups[j] = ((layer_slot[layer] + members[p]) << bucket_bits) + bucket
                out_users[j] = users[i]
                j += 1


@njit(**NJIT_PARALLEL)
def element_slot_taps(
    cell_taps: np.ndarray,
    chosen: np.ndarray,
    layer_row: np.ndarray,
    layer_slot: np.ndarray,
    start: np.ndarray,
    members: np.ndarray,
    out: np.ndarray,
) -> None:
    """Sum the capped taps of each layer's cells (``cell_taps``, shape ``(layers, cells)``)
    into the slots of the elements covering them. ``out`` (int64, zeroed) has one slot per
    element and dead pseudo-element of each layer in ``chosen``; each layer writes only
    its own slots."""
    cells = cell_taps.shape[1]
    for j in prange(chosen.size):
        layer = chosen[j]
        row, slot = layer_row[layer], layer_slot[layer]
        for c in range(cells):
            taps = cell_taps[layer, c]
            if taps:
                for p in range(start[row + c], start[row + c + 1]):
                    out[slot + members[p]] += taps


# --- Engagement ---------------------------------------------------------------------


@dataclass(frozen=True)
class Engagement:
    """Per-element engagement and per-layer dead taps, with suppression applied.

    Attributes
    ----------
    elements
        One row per published (layer, element): the layer columns, ``element``,
        ``users`` (distinct users over the element's cells), ``taps`` (capped taps
        summed over its cells), ``screen_users`` (distinct users on the layer) and
        ``engagement = users / screen_users``. Layers in partial order, elements in
        table order.
    screens
        One row per layer whose screen has elements: the layer columns,
        ``screen_users`` (null below ``k``), ``dead_users``, ``dead_taps`` and
        ``dead_tap_share`` (dead capped taps over all capped taps of the layer; null when
        ``screen_users`` is, or when 1 to ``k - 1`` users tapped dead cells) and
        ``elements_suppressed`` (elements of the screen not shown for the layer).
    elements_suppressed
        Element rows dropped because fewer than ``k`` users (zero included) tapped them,
        summed over layers.
    dead_cells
        Boolean ``(layers, cells)``, rows aligned with ``partial.layers``: cells that no
        element of the layer's screen covers (all false for layers whose screen has no
        elements). ``dead_cells.ravel()[partial.keys]`` selects the dead contributions.
    """

    elements: pl.DataFrame
    screens: pl.DataFrame
    elements_suppressed: int
    dead_cells: np.ndarray


def element_engagement(
    partial: Partial, elements: pl.DataFrame, cap: int, k: int, chunks: int | None = None
) -> Engagement:
    """Engagement per (layer, element) and dead taps per layer, from a merged partial.

    Parameters
    ----------
    partial
        A fully merged partial; its ``layers`` need a ``screen`` column.
    elements
        An elements table (see :func:`validate_elements`); layers whose screen has no
        elements are left out.
    cap
        Each user's taps in one cell count at most ``cap`` times.
    k
        Figures resting on fewer than ``k`` distinct users are suppressed.
    chunks
        Parallel chunks (default: Numba's thread count); the result is the same for all.

    Returns
    -------
    Engagement

    Raises
    ------
    SchemaError
        The layers lack ``screen`` or use a column name the tables write, or the elements
        table is invalid.

    Examples
    --------
    >>> from heatengine.partial import partial_from_taps
    >>> layers = pl.DataFrame({"screen": ["home"]})
    >>> x = np.array([0.1, 0.2, 0.3, 0.9, 0.9])
    >>> users = np.array([1, 1, 2, 2, 3], np.uint64)
    >>> partial = partial_from_taps(
    ...     GridSpec(2, 1), layers, np.zeros(5, np.int64), x, np.full(5, 0.5), users)
    >>> buy = pl.DataFrame({"screen": ["home"], "element": ["buy"],
    ...     "x0": [0.0], "y0": [0.0], "x1": [0.5], "y1": [1.0]})
    >>> result = element_engagement(partial, buy, cap=5, k=2)
    >>> result.elements.rows()
    [('home', 'buy', 2, 3, 3, 0.6666666666666666)]
    >>> result.screens.select("dead_users", "dead_taps", "dead_tap_share").row(0)
    (2, 2, 0.4)
    """
    if not isinstance(partial, Partial):
        msg = f"partial must be a Partial, got {type(partial).__name__}"
        raise TypeError(msg)
    _require_int("cap", cap, 1)
    _require_int("k", k, 1)
    table = validate_elements(elements)
    layers = partial.layers
    _check_layer_columns(layers)
    layout = _layout(table, partial.grid)
    layer_screen = _screen_numbers(layers["screen"], layout.screens)
    chosen = np.flatnonzero(layer_screen >= 0)
    counts = layout.counts[layer_screen[chosen]]
    slots = counts + 1  # the elements and the dead cells
    layer_slot = np.full(layers.height, -1, np.int64)
    layer_slot[chosen] = np.cumsum(slots) - slots
    cells = partial.grid.cells
    layer_row = np.where(layer_screen >= 0, layer_screen * cells, -1)
    slot_users = _slot_users(partial, layer_row, layer_slot, layout, int(slots.sum()), chunks)
    cell_taps = partial.cell_totals(cap)[1]
    slot_taps = np.zeros(int(slots.sum()), np.int64)
    element_slot_taps(
        cell_taps, chosen, layer_row, layer_slot, layout.start, layout.members, slot_taps
    )
    screen_users = users_per_layer(partial, chosen, None, chunks)
    dead_cells = np.zeros((layers.height, cells), bool)
    dead_cells[chosen] = layout.dead[layer_screen[chosen]]

    # One entry per (chosen layer, element), elements in table order.
    position = np.repeat(np.arange(chosen.size), counts)
    local = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    layer = chosen[position]
    slot = layer_slot[layer] + local
    table_row = layout.rows[layout.first[layer_screen[layer]] + local]
    users = slot_users[slot]
    # The users who did not tap an element are a group too: none, or at least k.
    outside = screen_users[position] - users
    keep = (users >= k) & (screen_users[position] >= k) & ((outside == 0) | (outside >= k))
    keep = _without_small_nested_differences(keep, users, layer, table_row, table, partial, k)
    suppressed = counts - np.bincount(position[keep], minlength=chosen.size)
    element_rows = layers[layer[keep]].with_columns(
        element=table["element"].gather(table_row[keep]),
        users=pl.Series(slot_users[slot[keep]], dtype=pl.Int64),
        taps=pl.Series(slot_taps[slot[keep]], dtype=pl.Int64),
        screen_users=pl.Series(screen_users[position[keep]], dtype=pl.Int64),
    )
    element_rows = element_rows.with_columns(engagement=pl.col("users") / pl.col("screen_users"))

    dead_slot = layer_slot[chosen] + counts
    layer_taps = cell_taps[chosen].sum(axis=1)
    dead_users = slot_users[dead_slot]
    show_dead = (screen_users >= k) & ((dead_users >= k) | (dead_users == 0))
    screens = layers[chosen].with_columns(
        screen_users=_published(screen_users, screen_users >= k),
        dead_users=_published(dead_users, show_dead),
        dead_taps=_published(slot_taps[dead_slot], show_dead),
        elements_suppressed=pl.Series(suppressed, dtype=pl.Int64),
    )
    share = pl.col("dead_taps") / pl.Series(layer_taps, dtype=pl.Int64)
    screens = screens.with_columns(dead_tap_share=share).select(
        *layers.columns,
        "screen_users",
        "dead_users",
        "dead_taps",
        "dead_tap_share",
        "elements_suppressed",
    )
    return Engagement(element_rows, screens, int(suppressed.sum()), dead_cells)


def _without_small_nested_differences(
    keep: np.ndarray,
    users: np.ndarray,
    layer: np.ndarray,
    table_row: np.ndarray,
    table: pl.DataFrame,
    partial: Partial,
    k: int,
) -> np.ndarray:
    """Withhold the inner element of a nested pair whose difference is 1 to k - 1 users.

    When every cell of element B lies in element A (a button inside a card), the users of
    B are users of A, and ``users(A) - users(B)`` counts the users who tapped A but not
    B: that group must be none or at least k, like any published group.
    """
    cells = element_cells(table, partial.grid).group_by("screen", "element").agg("cell")
    sets = {(r["screen"], r["element"]): set(r["cell"]) for r in cells.iter_rows(named=True)}
    names = table.select("screen", "element").rows()
    keep = keep.copy()
    entry = {(layer[i], table_row[i]): i for i in range(layer.size)}
    for (lay, row_a), a in entry.items():
        for row_b, (screen_b, name_b) in enumerate(names):
            b = entry.get((lay, row_b))
            if b is None or b == a or screen_b != names[row_a][0]:
                continue
            inner, outer = sets[(screen_b, name_b)], sets[names[row_a]]
            if inner < outer and keep[a] and keep[b] and 0 < users[a] - users[b] < k:
                keep[b] = False
    return keep


def _check_layer_columns(layers: pl.DataFrame) -> None:
    if "screen" not in layers.columns:
        msg = f"the partial's layers need a 'screen' column, got {layers.columns}"
        raise SchemaError(msg)
    clash = [c for c in layers.columns if c in OUTPUT_COLUMNS]
    if clash:
        msg = f"layer column(s) {clash} clash with the engagement columns {list(OUTPUT_COLUMNS)}"
        raise SchemaError(msg)


def _published(values: np.ndarray, publish: np.ndarray) -> pl.Series:
    """Int64 values, null where not published."""
    return pl.Series(values, dtype=pl.Int64).zip_with(
        pl.Series(publish, dtype=pl.Boolean), pl.Series([None] * len(values), dtype=pl.Int64)
    )


def _slot_users(
    partial: Partial,
    layer_row: np.ndarray,
    layer_slot: np.ndarray,
    layout: _Layout,
    n_slots: int,
    chunks: int | None,
) -> np.ndarray:
    """Exact distinct users per slot (element or dead cells of a layer).

    Memory follows the contributions: each expands to one entry per element covering
    its cell, and the entries are counted in small hash-set groups.
    """
    n_chunks = chunks or default_chunks()
    cells = partial.grid.cells
    totals = np.zeros(n_chunks, np.int64)
    element_entry_totals(partial.keys, layer_row, layout.start, cells, totals)
    offsets = np.zeros(n_chunks + 1, np.int64)
    np.cumsum(totals, out=offsets[1:])
    entries = int(offsets[-1])
    bits = bucket_bits(entries, n_slots)
    groups = np.empty(entries, np.int64)
    users = np.empty(entries, np.uint64)
    element_user_groups(
        partial.keys,
        partial.users,
        layer_row,
        layer_slot,
        layout.start,
        layout.members,
        cells,
        bits,
        offsets,
        groups,
        users,
    )
    n_groups = n_slots << bits
    distinct = distinct_users_per_group(
        groups, users, n_groups, affordable_chunks(n_groups + 1, chunks)
    )
    return distinct.reshape(n_slots, 1 << bits).sum(axis=1)
