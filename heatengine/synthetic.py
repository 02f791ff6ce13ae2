"""Seeded generator of realistic demo tap events and matching screen wireframes.

The generator produces a frame in the canonical tap schema: users with heavy-tailed activity,
sessions with a daily rhythm, taps clustered on the interactive elements of five phone screens,
background noise taps, and a controlled share of malformed rows for exercising validation.
:func:`draw_screen_mockup` renders the same layouts as wireframe screenshots, so heatmaps built
from the generated taps can be overlaid on a plausible app screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy.special import ndtr, ndtri

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

__all__ = ["DEMO_END", "SCREEN_LAYOUTS", "Element", "draw_screen_mockup", "generate_taps"]

DEMO_END = datetime(2026, 11, 30, tzinfo=UTC)
"""Default (exclusive) end of the generated observation window."""

_REF_WIDTH = 390.0
_REF_HEIGHT = 844.0


@dataclass(frozen=True, slots=True)
class Element:
    """A rectangular screen element that attracts taps.

    Coordinates are normalised to ``[0, 1]`` with the origin at the top-left corner of the
    screen (``y`` grows downwards).

    Parameters
    ----------
    name : str
        Identifier of the element, unique within its screen.
    x0, y0, x1, y1 : float
        Left, top, right and bottom edges, with ``x0 < x1`` and ``y0 < y1``.
    weight : float
        Relative tap attractiveness within the screen; ``0`` marks decorative elements
        (titles, backgrounds) that are drawn but never targeted.
    kind : str
        Visual style used by :func:`draw_screen_mockup` (``"button"``, ``"row"``, ...).
    label : str
        Text drawn on the element; may contain newlines.
    """

    name: str
    x0: float
    y0: float
    x1: float
    y1: float
    weight: float
    kind: str = "box"
    label: str = ""

    def __post_init__(self) -> None:
        if not (0.0 <= self.x0 < self.x1 <= 1.0 and 0.0 <= self.y0 < self.y1 <= 1.0):
            msg = (
                f"element {self.name!r} needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got "
                f"({self.x0}, {self.y0}, {self.x1}, {self.y1})"
            )
            raise ValueError(msg)
        if not self.weight >= 0.0:
            msg = f"element {self.name!r} needs a non-negative weight, got {self.weight}"
            raise ValueError(msg)


def _el(
    name: str,
    box: tuple[float, float, float, float],
    weight: float,
    kind: str,
    label: str = "",
) -> Element:
    """Build an :class:`Element` from a box in 390 x 844 reference pixels."""
    x0, y0, x1, y1 = box
    return Element(
        name,
        x0 / _REF_WIDTH,
        y0 / _REF_HEIGHT,
        x1 / _REF_WIDTH,
        y1 / _REF_HEIGHT,
        weight,
        kind,
        label,
    )


def _app_bar(title: str) -> tuple[Element, ...]:
    """Top app bar: a back icon and a centred title."""
    return (
        _el("back", (8, 50, 52, 94), 3.0, "icon", "back"),
        _el("title", (110, 56, 280, 88), 0.0, "title", title),
    )


def _home() -> tuple[Element, ...]:
    cards = (
        ("card_1", (16, 370, 187, 550), 12.0, "Trail Runner 2\n$89.00"),
        ("card_2", (203, 370, 374, 550), 8.0, "Rain Shell Jacket\n$129.00"),
        ("card_3", (16, 562, 187, 742), 5.0, "Wool Beanie\n$24.00"),
        ("card_4", (203, 562, 374, 742), 3.5, "Daypack 20L\n$64.00"),
    )
    tabs = (
        ("tab_home", "Home", 3.0, "tab_active"),
        ("tab_search", "Search", 4.5, "tab"),
        ("tab_cart", "Cart", 7.0, "tab"),
        ("tab_saved", "Saved", 2.0, "tab"),
        ("tab_account", "Account", 2.5, "tab"),
    )
    return (
        _el("menu", (8, 50, 52, 94), 2.5, "icon", "menu"),
        _el("title", (110, 56, 280, 88), 0.0, "title", "Outfitters"),
        _el("notifications", (290, 50, 334, 94), 2.0, "icon", "bell"),
        _el("profile", (338, 50, 382, 94), 3.0, "icon", "profile"),
        _el("search_field", (16, 104, 374, 150), 18.0, "field", "Search products"),
        _el("hero_banner", (16, 164, 374, 320), 5.0, "banner", "Winter Sale\nUp to 40% off"),
        _el("shop_now", (36, 266, 130, 298), 5.0, "button", "Shop now"),
        _el("section_popular", (16, 332, 220, 358), 0.0, "text", "Popular now"),
        _el("see_all", (300, 330, 378, 360), 2.5, "link", "See all"),
        *(_el(name, box, weight, "card", label) for name, box, weight, label in cards),
        _el("tab_bar", (0, 760, 390, 844), 0.0, "tabbar"),
        *(
            _el(name, (6 + 75.6 * i, 766, 6 + 75.6 * (i + 1), 818), weight, kind, label)
            for i, (name, label, weight, kind) in enumerate(tabs)
        ),
    )


# Approximate English letter frequencies in percent, used to weight keyboard keys.
_LETTER_FREQ = {
    "e": 12.7, "t": 9.1, "a": 8.2, "o": 7.5, "i": 7.0, "n": 6.7, "s": 6.3, "h": 6.1, "r": 6.0,
    "d": 4.3, "l": 4.0, "c": 2.8, "u": 2.8, "m": 2.4, "w": 2.4, "f": 2.2, "g": 2.0, "y": 2.0,
    "p": 1.9, "b": 1.5, "v": 1.0, "k": 0.8, "j": 0.15, "x": 0.15, "q": 0.1, "z": 0.07,
}  # fmt: skip


def _keyboard(top: float) -> tuple[Element, ...]:
    """A QWERTY keyboard whose first key row starts at ``top`` reference pixels."""
    pitch, gap, key_h, row_h = 39.0, 3.0, 42.0, 52.0
    keys: list[Element] = [_el("keyboard", (0, top - 10, 390, 844), 0.0, "keyboard")]
    for row, (letters, left) in enumerate(
        (("qwertyuiop", 0.0), ("asdfghjkl", 19.5), ("zxcvbnm", 58.5))
    ):
        y0 = top + row * row_h
        keys.extend(
            _el(
                f"key_{ch}",
                (left + i * pitch + gap, y0, left + (i + 1) * pitch - gap, y0 + key_h),
                _LETTER_FREQ[ch] * 0.15,
                "key",
                ch,
            )
            for i, ch in enumerate(letters)
        )
    y2, y3 = top + 2 * row_h, top + 3 * row_h
    keys += [
        _el("key_shift", (3, y2, 52, y2 + key_h), 0.5, "key_mod", "shift"),
        _el("key_delete", (338, y2, 387, y2 + key_h), 2.5, "key_mod", "del"),
        _el("key_123", (3, y3, 90, y3 + key_h), 0.3, "key_mod", "123"),
        _el("key_space", (96, y3, 290, y3 + key_h), 3.0, "key", "space"),
        _el("key_search", (296, y3, 387, y3 + key_h), 4.0, "key_action", "search"),
    ]
    return tuple(keys)


def _search() -> tuple[Element, ...]:
    chips = (
        ("chip_all", (16, 104, 62, 136), 1.5, "chip_active", "All"),
        ("chip_shoes", (70, 104, 140, 136), 3.0, "chip", "Shoes"),
        ("chip_price", (148, 104, 246, 136), 2.5, "chip", "Under $50"),
        ("chip_rating", (254, 104, 330, 136), 1.5, "chip", "4+ stars"),
        ("chip_sort", (338, 104, 382, 136), 1.0, "chip", "Sort"),
    )
    results = (
        ("Trail Runner 2\nMen's running shoe  $89", 10.0),
        ("Road Glide 5\nCushioned daily trainer  $119", 6.0),
        ("Trail Runner 2 GTX\nWaterproof  $139", 4.0),
        ("Tempo Lite\nRace day shoe  $99", 2.5),
        ("Kids Sprint\nVelcro strap  $45", 1.6),
    )
    return (
        _el("back", (8, 50, 52, 94), 3.0, "icon", "back"),
        _el("search_field", (56, 52, 314, 92), 5.0, "field", "running shoes"),
        _el("cancel", (318, 52, 386, 92), 2.0, "link", "Cancel"),
        *(_el(name, box, weight, kind, label) for name, box, weight, kind, label in chips),
        *(
            _el(f"result_{i + 1}", (0, 146 + 76 * i, 390, 222 + 76 * i), weight, "listitem", label)
            for i, (label, weight) in enumerate(results)
        ),
        *_keyboard(560.0),
    )


def _checkout() -> tuple[Element, ...]:
    return (
        *_app_bar("Checkout"),
        _el("section_order", (16, 104, 220, 128), 0.0, "text", "Order summary"),
        _el(
            "item_1", (16, 134, 374, 202), 2.0, "listitem", "Trail Runner 2\nSize 42  Qty 1  $89.00"
        ),
        _el("item_2", (16, 206, 374, 274), 1.2, "listitem", "Wool Beanie\nQty 1  $24.00"),
        _el("address", (16, 290, 374, 350), 5.0, "row", "Ship to: 12 Harbour St"),
        _el("delivery", (16, 354, 374, 414), 3.0, "row", "Standard delivery (3-5 days)"),
        _el("payment", (16, 418, 374, 478), 6.0, "row", "Visa ending 4242"),
        _el("promo_field", (16, 496, 266, 540), 2.5, "field_plain", "Promo code"),
        _el("promo_apply", (274, 496, 374, 540), 2.0, "secondary", "Apply"),
        _el(
            "totals",
            (16, 560, 374, 680),
            0.0,
            "summary",
            "Subtotal\t$113.00\nShipping\t$4.99\nTax\t$9.04\nTotal\t$127.03",
        ),
        _el("terms", (16, 694, 374, 730), 2.0, "checkbox", "I agree to the terms of sale"),
        _el("pay_button", (16, 746, 374, 804), 20.0, "button", "Pay $127.03"),
    )


def _settings() -> tuple[Element, ...]:
    toggles = (
        ("notifications", "Notifications", 1.0, 6.0, "toggle_on"),
        ("dark_mode", "Dark mode", 0.8, 8.0, "toggle_off"),
        ("location", "Location services", 0.6, 3.0, "toggle_on"),
        ("autoplay", "Autoplay videos", 0.5, 2.5, "toggle_off"),
        ("data_saver", "Data saver", 0.4, 1.5, "toggle_off"),
    )
    rows = (
        ("language", "Language", 2.0),
        ("privacy", "Privacy", 2.5),
        ("help", "Help & support", 3.0),
        ("about", "About", 0.8),
    )
    elements: list[Element] = [
        *_app_bar("Settings"),
        _el("profile", (16, 104, 374, 176), 4.0, "profile", "Alex Morgan\nView profile"),
        _el("section_preferences", (16, 192, 220, 216), 0.0, "text", "Preferences"),
    ]
    for i, (name, label, row_weight, toggle_weight, kind) in enumerate(toggles):
        y0 = 222 + 52 * i
        elements += [
            _el(f"{name}_row", (16, y0, 306, y0 + 52), row_weight, "row_plain", label),
            _el(f"{name}_toggle", (316, y0 + 11, 374, y0 + 41), toggle_weight, kind),
        ]
    elements.append(_el("section_account", (16, 496, 220, 520), 0.0, "text", "Account"))
    elements += [
        _el(name, (16, 526 + 52 * i, 374, 578 + 52 * i), weight, "row", label)
        for i, (name, label, weight) in enumerate(rows)
    ]
    elements.append(_el("log_out", (16, 752, 374, 800), 2.5, "danger", "Log out"))
    return tuple(elements)


def _onboarding() -> tuple[Element, ...]:
    return (
        _el("skip", (300, 50, 382, 94), 8.0, "link", "Skip"),
        _el("illustration", (40, 124, 350, 470), 2.5, "image"),
        _el("headline", (24, 496, 366, 536), 0.0, "title", "Track every order"),
        _el(
            "subtitle",
            (24, 544, 366, 600),
            0.0,
            "subtitle",
            "Live updates from checkout\nto your doorstep.",
        ),
        _el("dot_1", (171, 636, 183, 648), 0.4, "dot_active"),
        _el("dot_2", (189, 636, 201, 648), 0.4, "dot"),
        _el("dot_3", (207, 636, 219, 648), 0.4, "dot"),
        _el("next_button", (24, 690, 366, 748), 22.0, "button", "Next"),
        _el("log_in", (70, 764, 320, 798), 2.0, "link", "Already have an account? Log in"),
    )


SCREEN_LAYOUTS: dict[str, tuple[Element, ...]] = {
    "home": _home(),
    "search": _search(),
    "checkout": _checkout(),
    "settings": _settings(),
    "onboarding": _onboarding(),
}
"""Element layouts per screen, keyed by screen name in decreasing order of popularity."""

_SCREENS = tuple(SCREEN_LAYOUTS)
# Zipf-like screen popularity (exponent 1.1 over the popularity rank).
_SCREEN_P = 1.0 / np.arange(1, len(_SCREENS) + 1) ** 1.1
_SCREEN_P /= _SCREEN_P.sum()


def _sampling_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flatten the tap-attracting elements of all screens into lookup arrays.

    Returns
    -------
    boxes : numpy.ndarray
        ``(n_elements, 4)`` array of ``x0, y0, x1, y1`` for every element with positive weight.
    cdf : numpy.ndarray
        Per-screen cumulative weight shares offset by the screen index, so that
        ``searchsorted(cdf, screen + u)`` draws an element of ``screen`` for ``u`` in ``[0, 1)``.
    first, last : numpy.ndarray
        Index of the first and last element of each screen in ``boxes``.
    """
    boxes, cdf, first, last = [], [], [], []
    for s, screen in enumerate(_SCREENS):
        targets = [e for e in SCREEN_LAYOUTS[screen] if e.weight > 0]
        weights = np.array([e.weight for e in targets])
        shares = np.cumsum(weights) / weights.sum()
        shares[-1] = 1.0
        first.append(len(boxes))
        boxes += [(e.x0, e.y0, e.x1, e.y1) for e in targets]
        last.append(len(boxes) - 1)
        cdf.append(s + shares)
    return np.array(boxes), np.concatenate(cdf), np.array(first), np.array(last)


_BOXES, _ELEMENT_CDF, _FIRST_ELEMENT, _LAST_ELEMENT = _sampling_tables()

_NOISE_SHARE = 0.06
_EDGE_MARGIN = 0.012  # taps may land this far outside an element (normalised units)
_TAP_SPREAD = 0.2  # Gaussian spread as a fraction of the element size
_MIN_SPREAD = 0.004  # floor on the spread so tiny elements still get a cloud
_THUMB_BIAS_X = 0.06  # towards the thumb's side, as a fraction of element width
_THUMB_BIAS_Y = 0.08  # downwards, as a fraction of element height
_RIGHT_HANDED = 0.88
_MEAN_SESSION_TAPS = 14.0
_MEAN_VISIT_TAPS = 5.0
_ACTIVITY_SIGMA = 1.2  # lognormal sigma of per-user activity
_IOS_SHARE = 0.55
_LANDSCAPE_SHARE = 0.08
_MISSING_CONSENT_SHARE = 0.005
_LONG_PRESS_SHARE = 0.05
_RAGE_SHARE = 0.01
_RAGE_SHARE_CHECKOUT = 0.05
_MEAN_TAP_GAP_S = 3.5
_RAGE_TAP_GAP_S = 0.25
_RAGE_BURST_TAPS = 4  # a rage tap and up to three more in the same visit
_RAGE_JITTER = 0.01  # normalised x, about 4 px on a 390-px phone
# Relative tap volume per hour of day (UTC): quiet nights, evening peak.
_HOURLY = np.array(
    [1.2, 0.7, 0.4, 0.3, 0.3, 0.4, 0.8, 1.6, 2.4, 2.6, 2.5, 2.6,
     3.0, 2.8, 2.5, 2.5, 2.7, 3.2, 3.9, 4.6, 5.0, 4.8, 3.9, 2.4]
)  # fmt: skip
_HOURLY_P = _HOURLY / _HOURLY.sum()
_WEEKEND_BOOST = 1.25
_APP_VERSIONS = ("5.1.4", "5.2.0", "5.3.0", "5.3.1")
_EVENTS = ("tap", "long_press", "rage_tap")
_MEAN_UPGRADE_LAG_DAYS = 4.0
_LAGGARD_SHARE = 0.1
_LAGGARD_EXTRA_DAYS = 60.0
_MALFORMED_KINDS = (
    "null_x",
    "null_y",
    "nan_coordinate",
    "inf_coordinate",
    "out_of_range",
    "null_screen",
    "empty_screen",
    "null_user",
    "null_ts",
)
_SECONDS_PER_DAY = 86_400
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _validate(
    n_taps: int,
    n_users: int,
    end: datetime,
    days: int,
    consent_share: float,
    malformed_share: float,
) -> None:
    if n_taps < 1:
        msg = f"n_taps must be at least 1, got {n_taps}"
        raise ValueError(msg)
    if n_users < 1:
        msg = f"n_users must be at least 1, got {n_users}"
        raise ValueError(msg)
    if end.tzinfo is None or end.utcoffset() is None:
        msg = f"end must be timezone-aware, got naive {end.isoformat()}"
        raise ValueError(msg)
    if days < 1:
        msg = f"days must be at least 1, got {days}"
        raise ValueError(msg)
    for name, share in (("consent_share", consent_share), ("malformed_share", malformed_share)):
        if not 0.0 <= share <= 1.0:
            msg = f"{name} must be within [0, 1], got {share}"
            raise ValueError(msg)


def _labels(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """Zero-padded string labels ``prefix + number``."""
    return prefix + pl.Series(numbers).cast(pl.String).str.zfill(width)


def _truncated_normal(
    rng: np.random.Generator,
    mean: np.ndarray,
    sd: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Draw normal variates truncated to ``[max(lo, 0), min(hi, 1)]`` by inverting the CDF."""
    lo, hi = np.maximum(lo, 0.0), np.minimum(hi, 1.0)
    cdf_lo, cdf_hi = ndtr((lo - mean) / sd), ndtr((hi - mean) / sd)
    u = cdf_lo + rng.random(mean.size) * (cdf_hi - cdf_lo)
    return np.clip(mean + sd * ndtri(u), lo, hi)


def _session_times(
    rng: np.random.Generator, n_sessions: int, start: datetime, days: int
) -> np.ndarray:
    """Session start times in seconds since ``start`` (UTC), with weekly and daily rhythm.

    Days and hours are calendar days and clock hours in UTC; the part of the first calendar day
    before ``start`` wraps to the end of the window, which keeps the time of day because the
    window spans whole days.
    """
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    weekday = (midnight.weekday() + np.arange(days)) % 7
    day_p = np.where(weekday >= 5, _WEEKEND_BOOST, 1.0)
    day = rng.choice(days, size=n_sessions, p=day_p / day_p.sum())
    hour = rng.choice(24, size=n_sessions, p=_HOURLY_P)
    clock_s = (day * 24 + hour + rng.random(n_sessions)) * 3600.0
    return np.mod(clock_s - (start - midnight).total_seconds(), days * _SECONDS_PER_DAY)


def generate_taps(
    n_taps: int = 1_000_000,
    *,
    seed: int = 0,
    n_users: int | None = None,
    end: datetime = DEMO_END,
    days: int = 42,
    consent_share: float = 0.88,
    malformed_share: float = 0.02,
) -> pl.DataFrame:
    """Generate a seeded, realistic frame of raw tap events.

    Users have heavy-tailed (lognormal) activity, a fixed platform, handedness and consent
    decision. Their taps are grouped into sessions (fixed orientation and app version) and
    screen visits; each tap targets an element of the visited screen, drawn by element weight,
    and lands around its centre with a slight thumb bias, or, for ~6% of taps, uniformly
    anywhere on the screen. Timestamps follow a daily rhythm peaking in the evening.

    Parameters
    ----------
    n_taps : int
        Exact number of rows to generate.
    seed : int
        Seed of the random generator; equal seeds give identical frames.
    n_users : int or None
        Number of distinct users; defaults to ``max(1, n_taps // 50)``. Users drawing no taps
        do not appear in the frame.
    end : datetime
        Timezone-aware end of the observation window (exclusive).
    days : int
        Length of the observation window in days; timestamps lie in ``[end - days, end)``.
    consent_share : float
        Probability that a user consented to analytics.
    malformed_share : float
        Share of rows carrying exactly one defect (null, NaN, infinite or out-of-range
        coordinate, null or empty screen, null user id, null timestamp), spread evenly across
        defect kinds. Missing consent (~0.5% of rows) is not counted as malformed.

    Returns
    -------
    polars.DataFrame
        Columns ``screen`` (String), ``x``, ``y`` (Float64, normalised, ``y`` down),
        ``user_id`` (String), ``ts`` (Datetime("us", "UTC")), ``consent`` (Boolean),
        ``platform``, ``orientation``, ``app_version``, ``event``, ``session_id`` (String),
        in shuffled row order.

    Raises
    ------
    ValueError
        If a count is below 1, a share is outside ``[0, 1]`` or ``end`` is naive.
    """
    n_users = max(1, n_taps // 50) if n_users is None else n_users
    _validate(n_taps, n_users, end, days, consent_share, malformed_share)
    rng = np.random.default_rng(seed)
    n = n_taps

    # Users: heavy-tailed activity and fixed per-user traits.
    activity = rng.lognormal(0.0, _ACTIVITY_SIGMA, n_users)
    user = np.repeat(np.arange(n_users), rng.multinomial(n, activity / activity.sum()))
    user_consent = rng.random(n_users) < consent_share
    user_ios = rng.random(n_users) < _IOS_SHARE
    user_hand = np.where(rng.random(n_users) < _RIGHT_HANDED, 1.0, -1.0)
    user_lag_days = rng.exponential(_MEAN_UPGRADE_LAG_DAYS, n_users) + np.where(
        rng.random(n_users) < _LAGGARD_SHARE, _LAGGARD_EXTRA_DAYS, 0.0
    )
    id_space = max(10_000_000, 10 * n_users)
    user_labels = _labels(
        "u", rng.choice(id_space, size=n_users, replace=False), len(str(id_space - 1))
    ).append(pl.Series([None], dtype=pl.String))

    # Sessions and screen visits: runs of consecutive taps of one user.
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    session_start = new_user | (rng.random(n) < 1.0 / _MEAN_SESSION_TAPS)
    session = np.cumsum(session_start) - 1
    n_sessions = int(session[-1]) + 1
    visit_start = session_start | (rng.random(n) < 1.0 / _MEAN_VISIT_TAPS)
    visit = np.cumsum(visit_start) - 1
    screen = rng.choice(len(_SCREENS), size=int(visit[-1]) + 1, p=_SCREEN_P)[visit]

    # Events: rage taps are more frequent on the checkout screen.
    rage_p = np.where(screen == _SCREENS.index("checkout"), _RAGE_SHARE_CHECKOUT, _RAGE_SHARE)
    u_event = rng.random(n)
    event = np.where(u_event < rage_p + _LONG_PRESS_SHARE, _EVENTS.index("long_press"), 0)
    event[u_event < rage_p] = _EVENTS.index("rage_tap")
    # A rage tap starts a burst: the next taps of the same screen visit follow it.
    burst = np.flatnonzero(event == _EVENTS.index("rage_tap"))
    follows = []
    for offset in range(1, _RAGE_BURST_TAPS):
        after = burst + offset
        after = after[after < n]
        after = after[(visit[after] == visit[after - offset]) & ~visit_start[after]]
        event[after] = _EVENTS.index("rage_tap")
        follows.append((after, after - offset))

    # Coordinates: Gaussian around a thumb-biased element centre, confined near the element.
    element = np.searchsorted(_ELEMENT_CDF, screen + rng.random(n), side="right")
    element = np.clip(element, _FIRST_ELEMENT[screen], _LAST_ELEMENT[screen])
    x0, y0, x1, y1 = _BOXES[element].T
    width, height = x1 - x0, y1 - y0
    x = _truncated_normal(
        rng,
        (x0 + x1) / 2 + user_hand[user] * _THUMB_BIAS_X * width,
        _TAP_SPREAD * width + _MIN_SPREAD,
        x0 - _EDGE_MARGIN,
        x1 + _EDGE_MARGIN,
    )
    y = _truncated_normal(
        rng,
        (y0 + y1) / 2 + _THUMB_BIAS_Y * height,
        _TAP_SPREAD * height + _MIN_SPREAD,
        y0 - _EDGE_MARGIN,
        y1 + _EDGE_MARGIN,
    )
    noise = rng.random(n) < _NOISE_SHARE
    x[noise] = rng.random(int(noise.sum()))
    y[noise] = rng.random(int(noise.sum()))
    for after, first in follows:  # a burst's taps land within a few pixels of its first
        x[after] = np.clip(x[first] + rng.normal(0.0, _RAGE_JITTER, after.size), 0.0, 1.0)
        y[after] = np.clip(y[first] + rng.normal(0.0, _RAGE_JITTER / 2, after.size), 0.0, 1.0)

    # Timestamps: session start plus exponential gaps, wrapped into the window.
    window_s = days * _SECONDS_PER_DAY
    start = end.astimezone(UTC) - timedelta(days=days)
    session_t = _session_times(rng, n_sessions, start, days)
    gaps = np.where(
        event == _EVENTS.index("rage_tap"),
        _RAGE_TAP_GAP_S * rng.random(n),
        rng.exponential(_MEAN_TAP_GAP_S, n),
    )
    gaps[session_start] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= elapsed[np.flatnonzero(session_start)][session]
    t = np.mod(session_t[session] + elapsed, window_s)
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    ts = start_us + np.minimum((t * _US).astype(np.int64), window_s * _US - 1)

    # Sessions: orientation and app version (latest release the user had adopted).
    session_user = user[session_start]
    landscape = rng.random(n_sessions) < _LANDSCAPE_SHARE
    releases_s = np.array(
        [-80.0 * _SECONDS_PER_DAY, -30.0 * _SECONDS_PER_DAY, 0.35 * window_s, 0.7 * window_s]
    )
    adopted_t = session_t - user_lag_days[session_user] * _SECONDS_PER_DAY
    version = np.maximum(np.searchsorted(releases_s, adopted_t, side="right") - 1, 0)
    session_labels = _labels("s", rng.choice(10**10, size=n_sessions, replace=False), 10)

    # Malformed rows: one defect each, kinds spread evenly over randomly chosen rows.
    n_bad = round(malformed_share * n)
    bad_rows = rng.permutation(n)[:n_bad]
    defect = np.arange(n_bad) % len(_MALFORMED_KINDS)
    bad = {name: bad_rows[defect == k] for k, name in enumerate(_MALFORMED_KINDS)}
    for name, values in (
        ("nan_coordinate", np.full(bad["nan_coordinate"].size, np.nan)),
        ("inf_coordinate", rng.choice([np.inf, -np.inf], size=bad["inf_coordinate"].size)),
        (
            "out_of_range",
            np.where(
                rng.random(bad["out_of_range"].size) < 0.5,
                rng.uniform(1.01, 1.3, bad["out_of_range"].size),
                rng.uniform(-0.15, -0.01, bad["out_of_range"].size),
            ),
        ),
    ):
        in_x = rng.random(values.size) < 0.5
        x[bad[name][in_x]] = values[in_x]
        y[bad[name][~in_x]] = values[~in_x]
    screen_code = screen.copy()
    screen_code[bad["empty_screen"]] = len(_SCREENS)
    screen_code[bad["null_screen"]] = len(_SCREENS) + 1
    user_code = user.copy()
    user_code[bad["null_user"]] = n_users

    frame = pl.DataFrame(
        {
            "screen": pl.Series([*_SCREENS, "", None], dtype=pl.String).gather(screen_code),
            "x": pl.Series(x, dtype=pl.Float64).scatter(bad["null_x"], None),
            "y": pl.Series(y, dtype=pl.Float64).scatter(bad["null_y"], None),
            "user_id": user_labels.gather(user_code),
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")).scatter(bad["null_ts"], None),
            "consent": pl.Series(user_consent[user]).scatter(
                np.flatnonzero(rng.random(n) < _MISSING_CONSENT_SHARE), None
            ),
            "platform": pl.Series(["android", "ios"]).gather(user_ios[user].astype(np.int64)),
            "orientation": pl.Series(["portrait", "landscape"]).gather(
                landscape[session].astype(np.int64)
            ),
            "app_version": pl.Series(_APP_VERSIONS).gather(version[session]),
            "event": pl.Series(_EVENTS).gather(event),
            "session_id": session_labels.gather(session),
        }
    )
    return frame[rng.permutation(n)]


_INK = (38, 41, 48)
_MUTED = (118, 123, 133)
_SURFACE = (240, 241, 245)
_OUTLINE = (212, 215, 222)
_BACKGROUND = (252, 252, 253)
_ACCENT = (52, 94, 204)
_DANGER = (196, 52, 52)

_Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class _Canvas:
    """Drawing context shared by the element painters."""

    draw: ImageDraw.ImageDraw
    scale: float
    font: ImageFont.FreeTypeFont
    small: ImageFont.FreeTypeFont
    large: ImageFont.FreeTypeFont

    def s(self, value: float) -> float:
        """Scale a length given in reference pixels."""
        return value * self.scale

    def box(
        self,
        box: _Box,
        *,
        fill: tuple[int, int, int] = _SURFACE,
        radius: float = 10.0,
        outline: tuple[int, int, int] | None = _OUTLINE,
    ) -> None:
        """Draw a rounded rectangle with a radius in reference pixels."""
        r = min(self.s(radius), (box[2] - box[0]) / 2, (box[3] - box[1]) / 2)
        self.draw.rounded_rectangle(
            box, r, fill=fill, outline=outline, width=max(1, round(self.s(1)))
        )

    def line(
        self,
        points: list[tuple[float, float]],
        *,
        fill: tuple[int, int, int] = _INK,
        width: float = 2.0,
    ) -> None:
        """Draw a polyline with a width in reference pixels."""
        self.draw.line(points, fill=fill, width=max(1, round(self.s(width))), joint="curve")

    def circle(
        self,
        cx: float,
        cy: float,
        r: float,
        *,
        fill: tuple[int, int, int] | None = None,
        outline: tuple[int, int, int] | None = _INK,
        width: float = 2.0,
    ) -> None:
        """Draw a circle whose centre and radius are in image pixels."""
        self.draw.ellipse(
            (cx - r, cy - r, cx + r, cy + r),
            fill=fill,
            outline=outline,
            width=max(1, round(self.s(width))),
        )

    def text(
        self,
        xy: tuple[float, float],
        label: str,
        *,
        fill: tuple[int, int, int] = _INK,
        font: ImageFont.FreeTypeFont | None = None,
        anchor: str = "lm",
    ) -> None:
        """Draw single- or multi-line text."""
        font = font or self.font
        if "\n" in label:
            self.draw.multiline_text(
                xy,
                label,
                fill=fill,
                font=font,
                anchor=anchor,
                spacing=self.s(5),
                align="center" if anchor[0] == "m" else "left",
            )
        else:
            self.draw.text(xy, label, fill=fill, font=font, anchor=anchor)

    def chevron(
        self, x: float, cy: float, *, left: bool = False, colour: tuple[int, int, int] = _MUTED
    ) -> None:
        """Draw a small ``>`` (or ``<``) chevron with its tip at ``x``."""
        d = self.s(6)
        dx = d if left else -d
        self.line([(x + dx, cy - d), (x, cy), (x + dx, cy + d)], fill=colour)


def _paint_icon(c: _Canvas, b: _Box, e: Element) -> None:
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    c.box(b, radius=12, outline=None)
    d = c.s(9)
    if e.label == "menu":
        for dy in (-d * 0.7, 0.0, d * 0.7):
            c.line([(cx - d, cy + dy), (cx + d, cy + dy)])
    elif e.label == "back":
        c.chevron(cx - d * 0.4, cy, left=True, colour=_INK)
    elif e.label == "profile":
        c.circle(cx, cy - d * 0.35, d * 0.42)
        c.draw.arc(
            (cx - d * 0.85, cy + d * 0.15, cx + d * 0.85, cy + d * 1.6),
            180,
            360,
            fill=_INK,
            width=max(1, round(c.s(2))),
        )
    else:
        c.draw.arc(
            (cx - d * 0.6, cy - d * 0.8, cx + d * 0.6, cy + d * 0.6),
            180,
            360,
            fill=_INK,
            width=max(1, round(c.s(2))),
        )
        c.line([(cx - d * 0.6, cy - d * 0.1), (cx - d * 0.6, cy + d * 0.4)])
        c.line([(cx + d * 0.6, cy - d * 0.1), (cx + d * 0.6, cy + d * 0.4)])
        c.line([(cx - d * 0.85, cy + d * 0.4), (cx + d * 0.85, cy + d * 0.4)])
        c.circle(cx, cy + d * 0.75, d * 0.18, fill=_INK, outline=None)


def _paint_title(c: _Canvas, b: _Box, e: Element) -> None:
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, font=c.large, anchor="mm")


def _paint_subtitle(c: _Canvas, b: _Box, e: Element) -> None:
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, fill=_MUTED, anchor="mm")


def _paint_text(c: _Canvas, b: _Box, e: Element) -> None:
    c.text((b[0], (b[1] + b[3]) / 2), e.label, anchor="lm")


def _paint_summary(c: _Canvas, b: _Box, e: Element) -> None:
    lines = e.label.split("\n")
    step = (b[3] - b[1]) / len(lines)
    for i, line in enumerate(lines):
        name, _, amount = line.partition("\t")
        cy = b[1] + step * (i + 0.5)
        font = c.large if i == len(lines) - 1 else c.font
        c.text((b[0], cy), name, fill=_INK if i == len(lines) - 1 else _MUTED, font=font)
        c.text((b[2], cy), amount, font=font, anchor="rm")


def _paint_field(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, radius=(b[3] - b[1]) / c.scale / 2.5)
    cy, r = (b[1] + b[3]) / 2, c.s(6)
    mx = b[0] + c.s(18)
    c.circle(mx, cy - r * 0.25, r, outline=_MUTED)
    c.line([(mx + r * 0.7, cy + r * 0.45), (mx + r * 1.5, cy + r * 1.25)], fill=_MUTED)
    c.text((b[0] + c.s(36), cy), e.label, fill=_MUTED)


def _paint_field_plain(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=(255, 255, 255), radius=10)
    c.text((b[0] + c.s(14), (b[1] + b[3]) / 2), e.label, fill=_MUTED)


def _paint_banner(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=(226, 230, 240), radius=16)
    w, h = b[2] - b[0], b[3] - b[1]
    c.circle(b[0] + w * 0.78, b[1] + h * 0.5, h * 0.32, fill=(208, 214, 229), outline=None)
    c.circle(b[0] + w * 0.9, b[1] + h * 0.25, h * 0.14, fill=(214, 219, 233), outline=None)
    title, _, subtitle = e.label.partition("\n")
    c.text((b[0] + c.s(20), b[1] + h * 0.32), title, font=c.large)
    c.text((b[0] + c.s(20), b[1] + h * 0.52), subtitle, fill=_MUTED)


def _image_placeholder(c: _Canvas, b: _Box) -> None:
    c.box(b, fill=(228, 231, 238), radius=12, outline=None)
    w, h = b[2] - b[0], b[3] - b[1]
    c.circle(b[0] + w * 0.7, b[1] + h * 0.3, min(w, h) * 0.1, fill=(205, 210, 222), outline=None)
    c.draw.polygon(
        [
            (b[0] + w * 0.15, b[1] + h * 0.8),
            (b[0] + w * 0.42, b[1] + h * 0.42),
            (b[0] + w * 0.62, b[1] + h * 0.66),
            (b[0] + w * 0.72, b[1] + h * 0.55),
            (b[0] + w * 0.88, b[1] + h * 0.8),
        ],
        fill=(200, 205, 218),
    )


def _paint_card(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=(255, 255, 255), radius=14)
    pad = c.s(8)
    h = b[3] - b[1]
    _image_placeholder(c, (b[0] + pad, b[1] + pad, b[2] - pad, b[1] + h * 0.64))
    name, _, price = e.label.partition("\n")
    c.text((b[0] + c.s(12), b[1] + h * 0.75), name, font=c.small)
    c.text((b[0] + c.s(12), b[1] + h * 0.88), price)


def _separator(c: _Canvas, b: _Box) -> None:
    c.line([(b[0], b[3]), (b[2], b[3])], fill=(228, 230, 235), width=1)


def _paint_row(c: _Canvas, b: _Box, e: Element) -> None:
    cy = (b[1] + b[3]) / 2
    c.text((b[0] + c.s(4), cy), e.label)
    c.chevron(b[2] - c.s(6), cy)
    _separator(c, b)


def _paint_row_plain(c: _Canvas, b: _Box, e: Element) -> None:
    c.text((b[0] + c.s(4), (b[1] + b[3]) / 2), e.label)


def _paint_listitem(c: _Canvas, b: _Box, e: Element) -> None:
    pad = c.s(10)
    side = b[3] - b[1] - 2 * pad
    left = b[0] + (c.s(16) if b[0] == 0 else 0)
    _image_placeholder(c, (left, b[1] + pad, left + side, b[3] - pad))
    title, _, subtitle = e.label.partition("\n")
    cy = (b[1] + b[3]) / 2
    c.text((left + side + c.s(12), cy - c.s(9)), title)
    c.text((left + side + c.s(12), cy + c.s(11)), subtitle, fill=_MUTED, font=c.small)
    c.chevron(b[2] - c.s(16 if b[0] == 0 else 6), cy)
    _separator(c, (left, b[1], b[2] - (c.s(16) if b[0] == 0 else 0), b[3]))


def _paint_chip(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=(255, 255, 255), radius=16)
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, font=c.small, anchor="mm")


def _paint_chip_active(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=_INK, radius=16, outline=None)
    c.text(
        ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2),
        e.label,
        fill=(255, 255, 255),
        font=c.small,
        anchor="mm",
    )


def _paint_keyboard(c: _Canvas, b: _Box, e: Element) -> None:
    c.draw.rectangle(b, fill=(210, 213, 220))


def _key(
    c: _Canvas, b: _Box, label: str, fill: tuple[int, int, int], ink: tuple[int, int, int]
) -> None:
    c.draw.rounded_rectangle(
        (b[0], b[1] + c.s(1.5), b[2], b[3] + c.s(1.5)), c.s(6), fill=(160, 164, 172)
    )
    c.draw.rounded_rectangle(b, c.s(6), fill=fill)
    font = c.font if len(label) == 1 else c.small
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), label, fill=ink, font=font, anchor="mm")


def _paint_key(c: _Canvas, b: _Box, e: Element) -> None:
    _key(c, b, e.label, (255, 255, 255), _INK)


def _paint_key_mod(c: _Canvas, b: _Box, e: Element) -> None:
    _key(c, b, e.label, (176, 181, 192), _INK)


def _paint_key_action(c: _Canvas, b: _Box, e: Element) -> None:
    _key(c, b, e.label, _ACCENT, (255, 255, 255))


def _paint_tabbar(c: _Canvas, b: _Box, e: Element) -> None:
    c.draw.rectangle(b, fill=(255, 255, 255))
    c.line([(b[0], b[1]), (b[2], b[1])], fill=_OUTLINE, width=1)


def _tab(c: _Canvas, b: _Box, label: str, ink: tuple[int, int, int]) -> None:
    cx = (b[0] + b[2]) / 2
    d = c.s(9)
    top = b[1] + c.s(8)
    c.draw.rounded_rectangle(
        (cx - d, top, cx + d, top + 2 * d), c.s(5), outline=ink, width=max(1, round(c.s(2)))
    )
    c.text((cx, b[3] - c.s(9)), label, fill=ink, font=c.small, anchor="mm")


def _paint_tab(c: _Canvas, b: _Box, e: Element) -> None:
    _tab(c, b, e.label, _MUTED)


def _paint_tab_active(c: _Canvas, b: _Box, e: Element) -> None:
    _tab(c, b, e.label, _ACCENT)


def _paint_button(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=_INK, radius=14, outline=None)
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, fill=(255, 255, 255), anchor="mm")


def _paint_secondary(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=(255, 255, 255), radius=10, outline=_INK)
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, anchor="mm")


def _paint_danger(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=(255, 255, 255), radius=12, outline=(232, 190, 190))
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, fill=_DANGER, anchor="mm")


def _paint_link(c: _Canvas, b: _Box, e: Element) -> None:
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, fill=_ACCENT, anchor="mm")


def _toggle(c: _Canvas, b: _Box, *, on: bool) -> None:
    c.box(
        b, fill=_ACCENT if on else (222, 224, 230), radius=(b[3] - b[1]) / c.scale / 2, outline=None
    )
    r = (b[3] - b[1]) / 2 - c.s(3)
    cx = b[2] - r - c.s(3) if on else b[0] + r + c.s(3)
    c.circle(cx, (b[1] + b[3]) / 2, r, fill=(255, 255, 255), outline=None)


def _paint_toggle_on(c: _Canvas, b: _Box, e: Element) -> None:
    _toggle(c, b, on=True)


def _paint_toggle_off(c: _Canvas, b: _Box, e: Element) -> None:
    _toggle(c, b, on=False)


def _paint_checkbox(c: _Canvas, b: _Box, e: Element) -> None:
    cy, d = (b[1] + b[3]) / 2, c.s(10)
    c.box(
        (b[0] + c.s(2), cy - d, b[0] + c.s(2) + 2 * d, cy + d),
        fill=(255, 255, 255),
        radius=4,
        outline=_MUTED,
    )
    c.text((b[0] + c.s(32), cy), e.label, fill=_MUTED, font=c.small)


def _paint_profile(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b, fill=(255, 255, 255), radius=14)
    r = (b[3] - b[1]) * 0.3
    cx, cy = b[0] + c.s(16) + r, (b[1] + b[3]) / 2
    c.circle(cx, cy, r, fill=(222, 226, 236), outline=None)
    c.circle(cx, cy - r * 0.25, r * 0.35, fill=(190, 196, 210), outline=None)
    name, _, hint = e.label.partition("\n")
    c.text((cx + r + c.s(14), cy - c.s(9)), name)
    c.text((cx + r + c.s(14), cy + c.s(11)), hint, fill=_MUTED, font=c.small)
    c.chevron(b[2] - c.s(16), cy)


def _paint_image(c: _Canvas, b: _Box, e: Element) -> None:
    _image_placeholder(c, b)


def _paint_dot(c: _Canvas, b: _Box, e: Element) -> None:
    c.circle(
        (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) / 2, fill=(208, 211, 218), outline=None
    )


def _paint_dot_active(c: _Canvas, b: _Box, e: Element) -> None:
    c.circle((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) / 2, fill=_INK, outline=None)


def _paint_box(c: _Canvas, b: _Box, e: Element) -> None:
    c.box(b)
    c.text(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), e.label, anchor="mm")


_PAINTERS: dict[str, Callable[[_Canvas, _Box, Element], None]] = {
    "box": _paint_box,
    "icon": _paint_icon,
    "title": _paint_title,
    "subtitle": _paint_subtitle,
    "text": _paint_text,
    "summary": _paint_summary,
    "field": _paint_field,
    "field_plain": _paint_field_plain,
    "banner": _paint_banner,
    "card": _paint_card,
    "row": _paint_row,
    "row_plain": _paint_row_plain,
    "listitem": _paint_listitem,
    "chip": _paint_chip,
    "chip_active": _paint_chip_active,
    "keyboard": _paint_keyboard,
    "key": _paint_key,
    "key_mod": _paint_key_mod,
    "key_action": _paint_key_action,
    "tabbar": _paint_tabbar,
    "tab": _paint_tab,
    "tab_active": _paint_tab_active,
    "button": _paint_button,
    "secondary": _paint_secondary,
    "danger": _paint_danger,
    "link": _paint_link,
    "toggle_on": _paint_toggle_on,
    "toggle_off": _paint_toggle_off,
    "checkbox": _paint_checkbox,
    "profile": _paint_profile,
    "image": _paint_image,
    "dot": _paint_dot,
    "dot_active": _paint_dot_active,
}


def _status_bar(c: _Canvas, width: int) -> None:
    cy = c.s(24)
    c.text((c.s(28), cy), "9:41", font=c.font)
    right = width - c.s(24)
    c.draw.rounded_rectangle(
        (right - c.s(24), cy - c.s(6), right, cy + c.s(6)),
        c.s(3),
        outline=_INK,
        width=max(1, round(c.s(1.5))),
    )
    c.draw.rectangle((right - c.s(21), cy - c.s(3), right - c.s(7), cy + c.s(3)), fill=_INK)
    for i in range(4):
        x = right - c.s(58) + i * c.s(6)
        c.draw.rectangle((x, cy + c.s(5) - c.s(3 + 2.5 * i), x + c.s(3.5), cy + c.s(5)), fill=_INK)


def draw_screen_mockup(screen: str, width: int = 390, height: int = 844) -> Image.Image:
    """Render a wireframe screenshot of a screen layout from :data:`SCREEN_LAYOUTS`.

    Parameters
    ----------
    screen : str
        Name of the screen, one of the keys of :data:`SCREEN_LAYOUTS`.
    width, height : int
        Size of the image in pixels; layouts are drawn in normalised coordinates, so any
        size works, while the 390 x 844 default matches the proportions of a phone.

    Returns
    -------
    PIL.Image.Image
        An RGB image of exactly ``(width, height)`` pixels.

    Raises
    ------
    ValueError
        If ``screen`` is unknown or the size is not positive.
    """
    if screen not in SCREEN_LAYOUTS:
        msg = f"unknown screen {screen!r}; known screens: {', '.join(SCREEN_LAYOUTS)}"
        raise ValueError(msg)
    if width < 1 or height < 1:
        msg = f"width and height must be positive, got {width} x {height}"
        raise ValueError(msg)
    from PIL import Image, ImageDraw, ImageFont

    scale = min(width / _REF_WIDTH, height / _REF_HEIGHT)
    image = Image.new("RGB", (width, height), _BACKGROUND)
    canvas = _Canvas(
        draw=ImageDraw.Draw(image),
        scale=scale,
        font=ImageFont.load_default(size=max(6.0, 15 * scale)),
        small=ImageFont.load_default(size=max(5.0, 12 * scale)),
        large=ImageFont.load_default(size=max(7.0, 21 * scale)),
    )
    _status_bar(canvas, width)
    for element in SCREEN_LAYOUTS[screen]:
        box = (element.x0 * width, element.y0 * height, element.x1 * width, element.y1 * height)
        _PAINTERS[element.kind](canvas, box, element)
    indicator = width / 2, height - canvas.s(8)
    canvas.draw.rounded_rectangle(
        (
            indicator[0] - canvas.s(67),
            indicator[1] - canvas.s(2.5),
            indicator[0] + canvas.s(67),
            indicator[1] + canvas.s(2.5),
        ),
        canvas.s(2.5),
        fill=_INK,
    )
    return image
