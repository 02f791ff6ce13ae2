"""Differentially private heatmaps from a merged :class:`~heatengine.partial.Partial`.

An alternative to k-anonymity for the optional extra ``heatengine[dp]`` (OpenDP). The
release has three steps, each with its own share of the budget:

1. **Contribution bounding** (Numba, no noise). Every user keeps at most
   ``max_screens_per_user`` layers and, within them, at most ``max_cells_per_user``
   cells (L0); taps per kept cell are clamped to ``max_taps_per_cell`` (L-infinity).
   The choice is a seeded pseudo-random priority, lowest first, so it is deterministic,
   independent of the input order and independent of every other user.
2. **Partition selection** for layers that are not public: a layer is released only
   when its noisy count of distinct (bounded) users reaches a threshold derived from
   ``delta`` (OpenDP ``make_laplace_threshold`` / ``make_gaussian_threshold``).
3. **Noise on every cell** of every released layer, empty cells included, with
   OpenDP's exact discrete Laplace or discrete Gaussian samplers.

A *partition* is one row of ``Partial.layers``: a screen, or a (screen, segments)
combination when segment columns exist. Which segment values occur is data like any
other, so a segmented layer is public only when the caller lists it (see
:func:`layers_with_public_screens` and the ``public_layers`` argument of
:func:`dp_release`); with no segment columns a layer is just its screen.

The budget split depends on the policy alone, never on the data: whether the data
happen to contain non-public layers must not change the noise on public cells.

OpenDP's samplers draw from a CSPRNG and cannot be seeded: releases are not
reproducible, by design. OpenDP is imported on first use (:func:`opendp_prelude`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
from numba import njit, prange

from heatengine.config import (
    MAX_COUNT_OPTION,
    NJIT,
    NJIT_PARALLEL,
    GridSpec,
    Measure,
    _require_int,
    _require_real,
)
from heatengine.errors import HeatengineError
from heatengine.kernels import GOLDEN, splitmix64_mix
from heatengine.partial import users_per_layer

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from heatengine.partial import Partial

Noise = Literal["laplace", "gaussian"]

INSTALL_HINT = "differential privacy needs the dp extra: pip install 'heatengine[dp]'"
#: Coverage of :attr:`DPRelease.interval_95`.
COVERAGE = 0.95
#: Seeds are 64-bit: the priority hash works on unsigned 64-bit words.
MAX_SEED = 2**64 - 1

_MASK = 2**64 - 1
_LAYER_SALT = np.uint64(0x6C61796572736C74)  # "layerslt": separates the two priorities
_CELL_SALT = np.uint64(0x63656C6C73616C74)  # "cellsalt"


class DPDependencyError(HeatengineError, ImportError):
    """OpenDP, needed for differential privacy, is not installed."""


def opendp_prelude() -> ModuleType:
    """Import ``opendp.prelude`` with the ``contrib`` features enabled.

    Raises
    ------
    DPDependencyError
        When OpenDP is missing; the message names the ``pip install`` that fixes it.
        It is both an ``ImportError`` and a :class:`~heatengine.errors.HeatengineError`.
    """
    try:
        import opendp.prelude as dp
    except ImportError:
        raise DPDependencyError(INSTALL_HINT) from None
    dp.enable_features("contrib")
    return dp


# --------------------------------------------------------------------------- policy


def _require_screens(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        msg = f"public_screens must be a tuple of screen names or None, got {value!r}"
        raise TypeError(msg)
    for name in value:
        if not isinstance(name, str) or not name:
            msg = f"public_screens must hold non-empty strings, got {name!r}"
            raise ValueError(msg)
    repeated = sorted({name for name in value if list(value).count(name) > 1})
    if repeated:
        msg = f"public_screens repeats {', '.join(map(repr, repeated))}"
        raise ValueError(msg)
    return tuple(value)


@dataclass(frozen=True)
class Budget:
    """How a policy's (epsilon, delta) is split; fixed by the policy, not the data."""

    epsilon_cells: float
    delta_cells: float
    epsilon_selection: float
    delta_selection: float


@dataclass(frozen=True)
class DPPolicy:
    """Privacy budget and contribution bounds of a differentially private release.

    Parameters
    ----------
    epsilon
        Total privacy budget, ``> 0``.
    delta
        Total failure probability, ``0 <= delta < 1``. Must be ``> 0`` when non-public
        layers are selected (``select_screens``) and for Gaussian noise.
    max_cells_per_user
        L0 bound: cells one user contributes to, over all their layers.
    max_taps_per_cell
        L-infinity bound: taps of one user counted in one cell (``"taps"`` measure).
    public_screens
        Screens released whatever the data: every cell of their grid gets noise, even
        with no taps. ``None`` means no screen is public.
    max_screens_per_user
        Layers (screens, or screen and segment combinations) one user contributes to.
    noise
        ``"laplace"`` (pure epsilon-DP on the cells) or ``"gaussian"`` (zCDP converted
        to (epsilon, delta)).
    bounding_seed
        Seed of the pseudo-random choice of which layers and cells a user keeps. It
        decides only *which* contributions survive bounding, not the noise, so it need
        not be secret; keep it fixed for reproducible bounding.
    selection_share
        Share of ``epsilon`` (and, for Gaussian noise, of ``delta``) spent on
        partition selection; Laplace selection takes all of ``delta``.
    select_screens
        Release non-public layers that pass partition selection. ``False`` releases
        only the public screens, needs no ``delta`` for Laplace and gives the whole
        budget to the cells. The split does not depend on whether the data contain
        non-public layers: if it did, the noise on public cells would reveal that.

    Examples
    --------
    >>> policy = DPPolicy(epsilon=1.0, delta=1e-6, max_cells_per_user=20, max_taps_per_cell=3)
    >>> policy.budget
    Budget(epsilon_cells=0.5, delta_cells=0.0, epsilon_selection=0.5, delta_selection=1e-06)
    """

    epsilon: float
    delta: float
    max_cells_per_user: int
    max_taps_per_cell: int
    public_screens: tuple[str, ...] | None = None
    max_screens_per_user: int = 1
    noise: Noise = "laplace"
    bounding_seed: int = 0
    selection_share: float = 0.5
    select_screens: bool = True

    def __post_init__(self) -> None:
        epsilon = _require_real("epsilon", self.epsilon, above=0)
        delta = _require_real("delta", self.delta, at_least=0, below=1)
        _require_int("max_cells_per_user", self.max_cells_per_user, 1, MAX_COUNT_OPTION)
        _require_int("max_taps_per_cell", self.max_taps_per_cell, 1, MAX_COUNT_OPTION)
        _require_int("max_screens_per_user", self.max_screens_per_user, 1, MAX_COUNT_OPTION)
        _require_int("bounding_seed", self.bounding_seed, 0, MAX_SEED)
        share = _require_real("selection_share", self.selection_share, above=0, below=1)
        if self.noise not in ("laplace", "gaussian"):
            msg = f"noise must be 'laplace' or 'gaussian', got {self.noise!r}"
            raise ValueError(msg)
        if not isinstance(self.select_screens, bool):
            msg = f"select_screens must be True or False, got {self.select_screens!r}"
            raise TypeError(msg)
        object.__setattr__(self, "epsilon", epsilon)
        object.__setattr__(self, "delta", delta)
        object.__setattr__(self, "selection_share", share)
        object.__setattr__(self, "public_screens", _require_screens(self.public_screens))
        self._check_release()

    def _check_release(self) -> None:
        if not self.select_screens and not self.public_screens:
            msg = (
                "select_screens=False releases only public_screens, but public_screens "
                f"is {self.public_screens!r}: nothing would be released"
            )
            raise ValueError(msg)
        if self.select_screens and self.delta == 0:
            msg = (
                "delta must be > 0 to select layers outside public_screens "
                "(select_screens=True), got delta=0.0; set select_screens=False to "
                "release only the public screens"
            )
            raise ValueError(msg)
        if self.noise == "gaussian" and self.delta == 0:
            msg = "delta must be > 0 for noise='gaussian', got delta=0.0"
            raise ValueError(msg)

    @property
    def budget(self) -> Budget:
        """The split of (epsilon, delta) between cells and partition selection."""
        if not self.select_screens:
            cells_delta = self.delta if self.noise == "gaussian" else 0.0
            return Budget(self.epsilon, cells_delta, 0.0, 0.0)
        share = self.selection_share
        epsilon_selection = self.epsilon * share
        epsilon_cells = self.epsilon - epsilon_selection
        if self.noise == "laplace":
            return Budget(epsilon_cells, 0.0, epsilon_selection, self.delta)
        delta_selection = self.delta * share
        return Budget(
            epsilon_cells, self.delta - delta_selection, epsilon_selection, delta_selection
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, for a manifest."""
        out = asdict(self)
        out["public_screens"] = None if self.public_screens is None else list(self.public_screens)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DPPolicy:
        """Rebuild a policy written by :meth:`to_dict`."""
        screens = data.get("public_screens")
        return cls(**{**data, "public_screens": None if screens is None else tuple(screens)})


# --------------------------------------------------------------------------- kernels


@njit(**NJIT)
def splitmix64(x: np.uint64) -> np.uint64:
    """The splitmix64 finaliser: a 64-bit bijection with good avalanche."""
    return splitmix64_mix(x + GOLDEN)


@njit(**NJIT)
def layer_priority(seed: np.uint64, user: np.uint64, layer: np.uint64) -> np.uint64:
    """Priority of a user's layer: ``mix(mix(mix(seed ^ salt) ^ user) ^ layer token)``."""
    return splitmix64(splitmix64(splitmix64(seed ^ _LAYER_SALT) ^ user) ^ layer)


@njit(**NJIT)
def cell_priority(seed: np.uint64, user: np.uint64, layer: np.uint64, cell: np.uint64) -> np.uint64:
    """Priority of a user's cell: the layer priority chain with a second salt, then the cell."""
    return splitmix64(splitmix64(splitmix64(splitmix64(seed ^ _CELL_SALT) ^ user) ^ layer) ^ cell)


@njit(**NJIT)
def _bound_one_user(rows, keys, user, layer_token, cells, seed, max_layers, max_cells, keep):
    """Mark the kept rows of one user; ``rows`` index that user's entries."""
    own = keys[rows]
    order = np.argsort(own)  # (key, user) pairs are distinct: a total order on keys
    rows = rows[order]
    own = own[order]
    layer = own // cells
    n_runs = 1
    for j in range(1, own.size):
        if layer[j] != layer[j - 1]:
            n_runs += 1
    run_start = np.empty(n_runs + 1, np.int64)
    run_priority = np.empty(n_runs, np.uint64)
    r = 0
    for j in range(own.size):
        if j == 0 or layer[j] != layer[j - 1]:
            run_start[r] = j
            run_priority[r] = layer_priority(seed, user, layer_token[layer[j]])
            r += 1
    run_start[n_runs] = own.size
    allowed = np.zeros(own.size, np.bool_)
    for r in np.argsort(run_priority, kind="mergesort")[:max_layers]:
        allowed[run_start[r] : run_start[r + 1]] = True
    candidates = np.nonzero(allowed)[0]
    priority = np.empty(candidates.size, np.uint64)
    for j in range(candidates.size):
        c = candidates[j]
        cell = np.uint64(own[c] - layer[c] * cells)
        priority[j] = cell_priority(seed, user, layer_token[layer[c]], cell)
    for j in np.argsort(priority, kind="mergesort")[:max_cells]:
        keep[rows[candidates[j]]] = True


@njit(**NJIT_PARALLEL)
def bound_contributions(
    keys: np.ndarray,
    users: np.ndarray,
    layer_token: np.ndarray,
    cells: int,
    seed: np.uint64,
    max_layers: int,
    max_cells: int,
    keep: np.ndarray,
) -> None:
    """Choose which entries of a contribution list survive contribution bounding.

    Per user: rank the user's layers by :func:`layer_priority` and keep the
    ``max_layers`` lowest; rank the cells of those layers by :func:`cell_priority` and
    keep the ``max_cells`` lowest. Ties (probability about 2**-64) go to the lower layer
    number, then the lower key. Every decision depends only on the seed, the user and
    that user's own entries, so the result is independent of the input order and of
    every other user.

    Parameters
    ----------
    keys : int64 array, ``layer * cells + cell``
    users : uint64 array, one token per entry; (key, user) pairs distinct
    layer_token : uint64 array, a stable identity per layer (:func:`layer_tokens`)
    cells : cells per layer
    seed : uint64 seed of the priorities
    max_layers, max_cells : the bounds, at least 1
    keep : bool array of ``keys.size``, all False on entry; kept entries set True
    """
    order = np.argsort(users, kind="mergesort")
    n = users.size
    n_users = 0
    for i in range(n):
        if i == 0 or users[order[i]] != users[order[i - 1]]:
            n_users += 1
    start = np.empty(n_users + 1, np.int64)
    g = 0
    for i in range(n):
        if i == 0 or users[order[i]] != users[order[i - 1]]:
            start[g] = i
            g += 1
    start[n_users] = n
    for g in prange(n_users):
        rows = order[start[g] : start[g + 1]]
        _bound_one_user(
            rows, keys, users[rows[0]], layer_token, cells, seed, max_layers, max_cells, keep
        )


# --------------------------------------------------------------------------- bounding


def layer_tokens(layers: pl.DataFrame) -> np.ndarray:
    """A stable 64-bit identity per layer row: BLAKE2b of the row's values as JSON.

    Priorities hash this identity rather than the row number, so a user keeps the same
    layers and cells whatever other layers a partial happens to hold.
    """
    out = np.empty(layers.height, np.uint64)
    for i, row in enumerate(layers.iter_rows()):
        text = json.dumps(row, default=str, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def bound_partial(partial: Partial, policy: DPPolicy) -> Partial:
    """The bounded contribution list: kept entries only, taps clamped to L-infinity.

    Parameters
    ----------
    partial
        A fully merged partial.
    policy
        Supplies ``max_screens_per_user``, ``max_cells_per_user``,
        ``max_taps_per_cell`` and ``bounding_seed``.

    Returns
    -------
    Partial
        Same grid and layers; each user has entries in at most
        ``max_screens_per_user`` layers and at most ``max_cells_per_user`` cells, each
        with at most ``max_taps_per_cell`` taps.
    """
    keep = np.zeros(partial.keys.size, np.bool_)
    bound_contributions(
        partial.keys,
        partial.users,
        layer_tokens(partial.layers),
        partial.grid.cells,
        np.uint64(policy.bounding_seed),
        policy.max_screens_per_user,
        policy.max_cells_per_user,
        keep,
    )
    taps = np.minimum(partial.taps[keep], policy.max_taps_per_cell)
    return replace(partial, keys=partial.keys[keep], users=partial.users[keep], taps=taps)


def bounded_sums(partial: Partial, policy: DPPolicy, measure: Measure) -> np.ndarray:
    """Per-cell sums after bounding, int64 of shape ``(layers, cells)``.

    ``"taps"`` sums the clamped taps (a user changes a cell by at most
    ``max_taps_per_cell`` and all cells by at most L0 * L-infinity in L1); ``"users"``
    counts kept (user, cell) pairs (at most 1 per cell and L0 in L1).
    """
    _check_measure(measure)
    bounded = bound_partial(partial, policy)
    users, taps = bounded.cell_totals(policy.max_taps_per_cell)
    return taps if measure == "taps" else users


def _check_measure(measure: object) -> None:
    if measure not in ("users", "taps"):
        msg = f"measure must be 'users' or 'taps', got {measure!r}"
        raise ValueError(msg)


# --------------------------------------------------------------------------- noise


def discrete_laplace_interval(scale: float, coverage: float = COVERAGE) -> int:
    """Smallest ``m`` with ``P(|Z| <= m) >= coverage`` for discrete Laplace noise.

    ``P(Z = z)`` is proportional to ``exp(-|z| / scale)``; with ``q = exp(-1 / scale)``,
    ``P(|Z| > m) = 2 q**(m + 1) / (1 + q)``, solved for ``m`` and checked either side.

    Examples
    --------
    >>> discrete_laplace_interval(10.0)
    30
    """
    alpha = 1.0 - coverage
    q = math.exp(-1.0 / scale)

    def tail(m: int) -> float:
        return 2.0 * math.exp(-(m + 1) / scale) / (1.0 + q)

    m = max(0, math.ceil(-scale * math.log(alpha * (1.0 + q) / 2.0)) - 1)
    while m > 0 and tail(m - 1) <= alpha:
        m -= 1
    while tail(m) > alpha:
        m += 1
    return m


def discrete_gaussian_interval(sigma: float, coverage: float = COVERAGE) -> int:
    """Smallest ``m`` with ``P(|Z| <= m) >= coverage`` for discrete Gaussian noise.

    ``P(Z = z)`` is proportional to ``exp(-z**2 / (2 sigma**2))``. The normaliser is
    summed directly for ``sigma < 2``; above, Poisson summation gives it exactly in
    double precision, ``sigma sqrt(2 pi) (1 + 2 sum_k exp(-2 pi**2 sigma**2 k**2))``.

    Examples
    --------
    >>> discrete_gaussian_interval(10.0)
    20
    """
    if sigma < 2:
        x = np.arange(1, math.ceil(40 * sigma) + 41)
        normaliser = 1.0 + 2.0 * float(np.exp(-(x**2) / (2 * sigma**2)).sum())
    else:
        k = np.arange(1, 4)
        correction = float(np.exp(-2 * math.pi**2 * sigma**2 * k**2).sum())
        normaliser = sigma * math.sqrt(2 * math.pi) * (1.0 + 2.0 * correction)
    x = np.arange(1, math.ceil(10 * sigma) + 3)
    inside = 1.0 + 2.0 * np.cumsum(np.exp(-(x.astype(np.float64) ** 2) / (2 * sigma**2)))
    covered = np.concatenate(([1.0], inside)) / normaliser
    return int(np.argmax(covered >= coverage))


@dataclass(frozen=True)
class CellNoise:
    """The calibrated measurement that noises a vector of per-cell counts.

    Attributes
    ----------
    noise
        ``"laplace"`` or ``"gaussian"``.
    scale
        Discrete Laplace scale (``exp(-|z| / scale)``) or discrete Gaussian sigma.
    sensitivity
        L1 (Laplace) or L2 (Gaussian) sensitivity of the whole vector.
    epsilon, delta
        What the measurement's privacy map gives at ``sensitivity``.
    interval_95
        Half-width of the exact 95% interval of one cell's noise.
    measurement
        The OpenDP measurement over an int64 vector.
    """

    noise: Noise
    scale: float
    sensitivity: float
    epsilon: float
    delta: float
    interval_95: float
    measurement: Any = field(repr=False, compare=False)


def cell_noise(policy: DPPolicy, measure: Measure) -> CellNoise:
    """Calibrate the per-cell noise to the policy's cell budget.

    Laplace: scale ``L1 / epsilon_cells`` with ``L1 = L0 * Linf`` (taps) or ``L0``
    (users), raised by the last bits if OpenDP's rounded-up privacy map would exceed
    ``epsilon_cells``. Gaussian: the smallest sigma (``dp.binary_search_param``) whose
    zCDP map at ``L2 = sqrt(L0) * Linf`` (taps) or ``sqrt(L0)`` (users), converted by
    ``make_zCDP_to_approxDP`` and ``make_fix_delta(delta_cells)``, meets
    ``(epsilon_cells, delta_cells)``.
    """
    _check_measure(measure)
    dp = opendp_prelude()
    budget = policy.budget
    linf = policy.max_taps_per_cell if measure == "taps" else 1
    space = dp.vector_domain(dp.atom_domain(T=dp.i64))
    if policy.noise == "laplace":
        l1 = policy.max_cells_per_user * linf
        metric = dp.l1_distance(T=dp.i64)
        scale = l1 / budget.epsilon_cells
        measurement = dp.m.make_laplace(space, metric, scale)
        while measurement.map(l1) > budget.epsilon_cells:
            scale = math.nextafter(scale, math.inf)
            measurement = dp.m.make_laplace(space, metric, scale)
        interval = discrete_laplace_interval(scale)
        return CellNoise("laplace", scale, l1, measurement.map(l1), 0.0, interval, measurement)
    l2 = math.sqrt(policy.max_cells_per_user) * linf
    metric = dp.l2_distance(T=float)

    def gaussian(sigma: float) -> Any:
        zcdp = dp.m.make_gaussian(space, metric, sigma)
        return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), budget.delta_cells)

    sigma = dp.binary_search_param(
        gaussian, d_in=l2, d_out=(budget.epsilon_cells, budget.delta_cells)
    )
    measurement = gaussian(sigma)
    epsilon, delta = measurement.map(l2)
    interval = discrete_gaussian_interval(sigma)
    return CellNoise("gaussian", sigma, l2, epsilon, delta, interval, measurement)


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """The calibrated partition-selection measurement (see :func:`selection`).

    Attributes
    ----------
    noise
        ``"laplace"`` or ``"gaussian"``.
    scale
        Noise scale of the per-layer user counts.
    threshold
        A layer is released when its noisy count is at least this.
    opendp_threshold
        The smallest threshold OpenDP's privacy map accepts for the budget; one less
        than ``threshold`` (see :func:`selection`).
    epsilon, delta
        The budget the selection spends, as OpenDP's maps report it.
    sensitivity
        ``(l0, l1 or l2, linf)``: layers one user changes, and by how much.
    measurement
        The OpenDP measurement over a ``{layer id: count}`` map.
    """

    noise: Noise
    scale: float
    threshold: int
    opendp_threshold: int
    epsilon: float
    delta: float
    sensitivity: tuple[int, float, int]
    measurement: Any = field(repr=False, compare=False)


def selection(policy: DPPolicy) -> Selection:
    """Calibrate partition selection: noisy distinct users per layer against a threshold.

    Each user counts toward ``l0 = min(max_screens_per_user, max_cells_per_user)``
    layers, by 1 each. A layer found only in one user's data has count 1, so the release
    is ``(epsilon_selection, delta_selection)``-DP when the chance that any of that
    user's ``l0`` layers passes is at most ``delta_selection``: with one layer's pass
    probability ``p``, ``1 - (1 - p)**l0 <= delta``, that is
    ``p <= d1 = 1 - (1 - delta)**(1 / l0)``.

    **Laplace** (scale ``s = l0 / epsilon_selection``, all of ``delta_selection``):
    ``P(Z >= k) = exp(-k / s) / (1 + exp(-1 / s))`` for ``k >= 0``, and a count of 1
    passes threshold ``T`` when ``Z >= T - 1``, so::

        T = max(2, 1 + ceil(s * ln(1 / (d1 * (1 + exp(-1 / s))))))

    **Gaussian**: ``delta_selection`` is halved between the zCDP conversion and the
    threshold. Sigma is the smallest whose zCDP map at L2 ``sqrt(l0)``, converted with
    ``make_zCDP_to_approxDP`` at half of ``delta_selection``, meets
    ``epsilon_selection``. With OpenDP's tail bound ``P(Z >= k) <= erfc((k - 1) /
    (sigma sqrt 2)) / 2`` (CKS20, Prop. 25) and ``d1`` from the threshold's half::

        T = max(2, 2 + ceil(sigma * sqrt(2) * erfcinv(2 * d1)))

    OpenDP 0.16 counts a pass as ``Z > T - 1`` although its measurement keeps counts
    equal to ``T`` (opendp/opendp#2922), so its map at threshold ``T0`` is the true
    delta at ``T0 + 1``. The threshold is therefore searched with OpenDP's map
    (``opendp_threshold``) and the measurement built at one more. Should OpenDP fix
    its map, this stays safe, one count more conservative than needed.
    """
    dp = opendp_prelude()
    budget = policy.budget
    l0 = min(policy.max_screens_per_user, policy.max_cells_per_user)
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=dp.i64))
    if policy.noise == "laplace":
        metric = dp.l01inf_distance(dp.absolute_distance(T=dp.i64))
        d_in = (l0, l0, 1)
        scale = l0 / budget.epsilon_selection

        def threshold_measurement(threshold: int) -> Any:
            return dp.m.make_laplace_threshold(domain, metric, scale, threshold)

        while threshold_measurement(2).map(d_in)[0] > budget.epsilon_selection:
            scale = math.nextafter(scale, math.inf)
        delta_threshold = budget.delta_selection
    else:
        metric = dp.l02inf_distance(dp.absolute_distance(T=float))
        d_in = (l0, math.sqrt(l0), 1.0)
        half = budget.delta_selection / 2
        space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=float)

        def gaussian(sigma: float) -> Any:
            zcdp = dp.m.make_gaussian(*space, sigma)
            return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), half)

        scale = dp.binary_search_param(
            gaussian, d_in=math.sqrt(l0), d_out=(budget.epsilon_selection, half)
        )

        def threshold_measurement(threshold: int) -> Any:
            return dp.m.make_gaussian_threshold(domain, metric, scale, threshold)

        delta_threshold = half

    def passes(threshold: int) -> bool:
        return threshold_measurement(threshold).map(d_in)[1] <= delta_threshold

    accounted = 1 if passes(1) else dp.binary_search(passes, bounds=(1, None), T=int)
    accounting = threshold_measurement(accounted)
    if policy.noise == "laplace":
        epsilon, delta = accounting.map(d_in)
    else:
        converted = dp.c.make_zCDP_to_approxDP(accounting)
        epsilon, delta = dp.c.make_fix_delta(converted, budget.delta_selection).map(d_in)
    release = threshold_measurement(accounted + 1)
    return Selection(policy.noise, scale, accounted + 1, accounted, epsilon, delta, d_in, release)


# --------------------------------------------------------------------------- release


def layers_with_public_screens(layers: pl.DataFrame, public_screens: Sequence[str]) -> pl.DataFrame:
    """Add one row per public screen missing from ``layers``, with null segments.

    Parameters
    ----------
    layers
        Layer rows, ``screen`` first, then any segment columns.
    public_screens
        Screens that must each have at least one row.

    Returns
    -------
    pl.DataFrame
        ``layers`` plus the missing screens, distinct and sorted by every column.

    Examples
    --------
    >>> frame = pl.DataFrame({"screen": ["home"], "platform": ["ios"]})
    >>> layers_with_public_screens(frame, ["cart", "home"]).rows()
    [('cart', None), ('home', 'ios')]
    """
    present = set(layers["screen"].to_list())
    missing = [s for s in public_screens if s not in present]
    extra = pl.DataFrame({"screen": missing}, schema={"screen": layers.schema["screen"]})
    united = pl.concat([layers, extra], how="diagonal_relaxed")
    return united.select(layers.columns).unique().sort(layers.columns, nulls_last=False)


def _public_layer_rows(
    partial: Partial, policy: DPPolicy, public_layers: pl.DataFrame | None
) -> pl.DataFrame:
    columns = partial.layers.columns
    screens = policy.public_screens or ()
    if public_layers is None:
        return layers_with_public_screens(partial.layers.clear(), screens)
    if public_layers.columns != columns:
        msg = f"public_layers must have the layer columns {columns}, got {public_layers.columns}"
        raise ValueError(msg)
    outside = sorted(set(public_layers["screen"].to_list()) - set(screens), key=str)
    if outside:
        msg = f"public_layers name screens outside public_screens: {', '.join(map(repr, outside))}"
        raise ValueError(msg)
    rows = public_layers.cast(dict(partial.layers.schema))
    return layers_with_public_screens(rows, screens)


@dataclass(frozen=True)
class DPRelease:
    """A differentially private release of per-layer heatmaps.

    Attributes
    ----------
    grid
        The grid; ``values[i]`` reshapes to ``grid.shape``.
    layers
        Released layers, sorted: public ones and those that passed selection.
    values
        int64 ``(layers, cells)``: bounded count plus noise. Raw noisy integers, so
        they can be negative; see :func:`clamped`.
    measure
        ``"users"`` or ``"taps"``.
    noise
        ``"laplace"`` or ``"gaussian"``.
    noise_scale
        Discrete Laplace scale or discrete Gaussian sigma of each cell's noise.
    interval_95
        Half-width ``m`` of the exact 95% interval: ``P(|noise| <= m) >= 0.95``.
    epsilon_spent, delta_spent
        Cells plus selection, from OpenDP's privacy maps; the selection share is
        spent whenever ``select_screens`` is set, whatever the data.
    screens_selected
        Non-public layers that passed selection (derived from noisy output).
    screens_considered
        Non-public layers with at least one user after bounding. An exact count of
        the data, not differentially private: for the operator, never publish it.
    """

    grid: GridSpec
    layers: pl.DataFrame
    values: np.ndarray
    measure: Measure
    noise: Noise
    noise_scale: float
    interval_95: float
    epsilon_spent: float
    delta_spent: float
    screens_selected: int
    screens_considered: int


def dp_release(
    partial: Partial,
    policy: DPPolicy,
    measure: Measure = "users",
    public_layers: pl.DataFrame | None = None,
) -> DPRelease:
    """Release every cell of the public and selected layers with calibrated noise.

    Parameters
    ----------
    partial
        The fully merged partial of the window; no cap or suppression applied.
    policy
        Budget, bounds and public screens.
    measure
        ``"users"``: kept (user, cell) pairs per cell; ``"taps"``: clamped taps.
    public_layers
        Layer rows (same columns as ``partial.layers``) released whatever the data,
        every screen in ``policy.public_screens``. ``None``: each public screen with
        null segments, which is each public screen when there are no segment columns.
        Public screens missing from ``public_layers`` are added with null segments.
        Data layers not listed here go through partition selection, or are dropped
        when ``policy.select_screens`` is False.

    Returns
    -------
    DPRelease
        Noisy counts, the released layers and the budget spent.

    Raises
    ------
    DPDependencyError
        OpenDP is not installed.
    ValueError
        Unknown measure, or ``public_layers`` inconsistent with the partial or policy.
    """
    _check_measure(measure)
    opendp_prelude()  # fail before any work when the extra is missing
    columns = partial.layers.columns
    public = _public_layer_rows(partial, policy, public_layers)
    bounded = bound_partial(partial, policy)
    users, taps = bounded.cell_totals(policy.max_taps_per_cell)
    sums = taps if measure == "taps" else users
    # Distinct users with at least one kept cell, per layer.
    per_layer = users_per_layer(bounded, np.arange(bounded.layers.height), None, None)

    numbered = partial.layers.with_row_index("__layer")
    is_public = numbered.join(public, on=columns, how="semi", nulls_equal=True)["__layer"]
    candidates = np.ones(partial.layers.height, np.bool_)
    candidates[is_public.to_numpy()] = False
    # A layer whose users were all bounded away is left out: its presence would depend
    # on users who contribute nothing else, outside the l0 sensitivity.
    candidates &= per_layer > 0
    candidate_ids = np.flatnonzero(candidates)

    epsilon, delta = 0.0, 0.0
    selected_ids = np.empty(0, np.int64)
    if policy.select_screens:
        chosen = selection(policy)
        epsilon, delta = chosen.epsilon, chosen.delta
        if candidate_ids.size:
            counts = {str(i): int(per_layer[i]) for i in candidate_ids}
            selected_ids = np.array(sorted(int(k) for k in chosen.measurement(counts)), np.int64)

    selected = numbered[selected_ids].drop("__layer")
    released = pl.concat([public, selected], how="vertical").sort(columns, nulls_last=False)
    source = released.join(
        numbered, on=columns, how="left", nulls_equal=True, maintain_order="left"
    )
    index = source["__layer"].fill_null(-1).to_numpy().astype(np.int64)
    cells = partial.grid.cells
    exact = np.zeros((released.height, cells), np.int64)
    exact[index >= 0] = sums[index[index >= 0]]

    noise = cell_noise(policy, measure)
    if exact.size:
        values = np.asarray(noise.measurement(exact.ravel()), np.int64).reshape(exact.shape)
    else:
        values = exact
    return DPRelease(
        grid=partial.grid,
        layers=released,
        values=values,
        measure=measure,
        noise=policy.noise,
        noise_scale=noise.scale,
        interval_95=float(noise.interval_95),
        epsilon_spent=epsilon + noise.epsilon,
        delta_spent=delta + noise.delta,
        screens_selected=int(selected_ids.size),
        screens_considered=int(candidate_ids.size),
    )


def clamped(values: np.ndarray) -> np.ndarray:
    """Negative noisy counts raised to 0, for display.

    Post-processing: it reads only the noisy output, so it costs no privacy. It biases
    sums of cells upwards; aggregate the raw values instead.

    Examples
    --------
    >>> clamped(np.array([[-3, 0, 7]])).tolist()
    [[0, 0, 7]]
    """
    return np.maximum(values, 0)
