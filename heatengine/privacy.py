"""k-anonymity suppression and its statistics.

Suppression runs on the fully merged per-cell counts, before smoothing, so suppressed
cells are zero before any blur and nothing published depends on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Statistics that are exact sums over suppressed cells. They stay with the operator
#: (Python result, CLI summary) and are not written to the store: next to the published
#: totals they would give away the sum of the hidden cells, which is one hidden cell's
#: exact count whenever only one cell is suppressed.
PRIVATE_STATISTICS = ("suppressed_tap_share", "suppressed_user_share")


@dataclass(frozen=True)
class SuppressionStats:
    """What suppression removed.

    Shares are over non-empty cells: ``suppressed_tap_share`` is the part of all capped
    taps that fell in suppressed cells, ``suppressed_user_share`` the part of all
    (user, cell) pairs that did. Both are ``None`` when read back from a store, which
    does not hold them (see :data:`PRIVATE_STATISTICS`). The ``cells_suppressed_*``
    counts split suppressed cells by the rule that hid them
    (:class:`heatengine.disclosure.DisclosureStats`).
    """

    cells_nonempty: int
    cells_published: int
    cells_suppressed: int
    layers_seen: int
    layers_published: int
    layers_suppressed: int
    suppressed_tap_share: float | None = None
    suppressed_user_share: float | None = None
    cells_suppressed_k: int = 0
    cells_suppressed_p_percent: int = 0
    cells_suppressed_nk: int = 0
    cells_suppressed_secondary: int = 0

    def to_dict(self) -> dict[str, int | float | None]:
        """Plain values."""
        return asdict(self)

    def publishable(self) -> dict[str, int]:
        """The values that may be written to a store."""
        return {k: v for k, v in asdict(self).items() if k not in PRIVATE_STATISTICS}


def published_cells(users: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of cells with at least ``k`` distinct users."""
    return users >= k


def suppress_sparse_cells(
    users: np.ndarray, taps: np.ndarray, k: int, hidden: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, SuppressionStats]:
    """Zero every cell with fewer than ``k`` distinct users, and every ``hidden`` cell.

    Parameters
    ----------
    users, taps
        Integer arrays of shape ``(layers, cells)``: distinct users and capped taps.
    k
        The threshold.
    hidden
        Boolean ``(layers, cells)``: cells other rules hide (dominance, secondary
        suppression); none when omitted.

    Returns
    -------
    users, taps
        Copies with suppressed cells set to zero.
    layer_published
        Boolean per layer: it has at least one published cell (and so at least ``k``
        users in total; a layer with fewer users can have no such cell).
    stats
        Counts and shares, see :class:`SuppressionStats`.

    Examples
    --------
    >>> users = np.array([[12, 3, 0]])
    >>> taps = np.array([[40, 9, 0]])
    >>> u, t, layers, stats = suppress_sparse_cells(users, taps, k=10)
    >>> u.tolist(), t.tolist(), layers.tolist(), stats.cells_suppressed
    ([[12, 0, 0]], [[40, 0, 0]], [True], 1)
    """
    mask = published_cells(users, k)
    if hidden is not None:
        mask &= ~hidden
    nonempty = users > 0
    layer_seen = nonempty.any(axis=1)
    layer_published = mask.any(axis=1)
    total_taps = int(taps.sum())
    total_pairs = int(users.sum())
    hidden_taps = int(taps[~mask].sum())
    hidden_pairs = int(users[~mask].sum())
    stats = SuppressionStats(
        cells_nonempty=int(nonempty.sum()),
        cells_published=int(mask.sum()),
        cells_suppressed=int((nonempty & ~mask).sum()),
        layers_seen=int(layer_seen.sum()),
        layers_published=int(layer_published.sum()),
        layers_suppressed=int((layer_seen & ~layer_published).sum()),
        suppressed_tap_share=hidden_taps / total_taps if total_taps else 0.0,
        suppressed_user_share=hidden_pairs / total_pairs if total_pairs else 0.0,
    )
    return np.where(mask, users, 0), np.where(mask, taps, 0), layer_published, stats
