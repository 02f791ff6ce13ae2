"""Shared test settings: hypothesis profiles and a quiet, cached Numba."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci" keeps the default run quick; HYPOTHESIS_PROFILE=thorough searches much harder.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
