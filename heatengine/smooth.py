"""Gaussian smoothing of suppressed grids."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

#: Kernel radius in standard deviations (scipy's default).
TRUNCATE = 4.0


def smooth_grids(grids: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each layer of a ``(layers, rows, columns)`` stack, independently.

    Outside the screen counts as zero (mode ``constant``), so mass near an edge fades
    rather than being reflected back. ``sigma`` is in cells; ``0`` returns a float copy.
    Call this only on suppressed grids: whatever is non-zero here can spread.

    Examples
    --------
    >>> grid = np.zeros((1, 5, 5)); grid[0, 2, 2] = 1.0
    >>> out = smooth_grids(grid, 1.0)
    >>> round(float(out.sum()), 3), bool(out[0, 2, 2] < 1.0)
    (1.0, True)
    """
    grids = np.asarray(grids, dtype=np.float64)
    if sigma == 0:
        return grids.copy()
    return gaussian_filter(
        grids, sigma=(0.0, sigma, sigma), mode="constant", cval=0.0, truncate=TRUNCATE
    )
