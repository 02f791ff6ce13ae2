"""A personal-data scanner for tap inputs and run outputs.

Two kinds of evidence are collected, column by column:

* **names**: a column called ``email``, ``userId``, ``home_lat`` or ``ip_address``
  suggests personal data whatever it holds (:func:`detect_name`);
* **values**: a deterministic sample of the values is searched with one regular
  expression per kind (email, phone, IPv4, IPv6, MAC, advertising id or UUID, IMEI, card
  number, latitude/longitude pair). Polars runs the expressions over the whole sample
  (``str.contains`` then ``str.extract_all``); only the distinct candidate matches are
  checked in Python by a precise validator (Luhn, octet ranges, ``ipaddress``, dates that
  look like phone numbers, ...), see :func:`detect_value`.

A :class:`PiiReport` holds kinds, hit counts and sample sizes, never a matched value: a
report can be logged, printed and attached to a ticket. :func:`scan_input` reads inputs
the way the pipeline does (:mod:`heatengine.io`), :func:`scan_outputs` reads every file
a run wrote, :func:`leaked_values` looks for given raw values (user ids) byte for byte,
and :func:`anonymisation_effectiveness` compares an input report with an outputs report.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from heatengine.errors import HeatengineError
from heatengine.io import Sources, scan_batches

__all__ = [
    "NAME_KINDS",
    "VALUE_KINDS",
    "Finding",
    "PiiReport",
    "anonymisation_effectiveness",
    "detect_name",
    "detect_value",
    "leaked_values",
    "luhn_valid",
    "scan_frame",
    "scan_input",
    "scan_outputs",
]

#: Kinds found in values, in the order they are checked.
VALUE_KINDS = (
    "email",
    "phone",
    "ipv4",
    "ipv6",
    "mac",
    "advertising_id_or_uuid",
    "imei",
    "card_number",
    "lat_lon",
)
#: Kinds that only a column name reveals (``ip_address`` stands for both IP versions).
NAME_KINDS = ("ip_address", "person_name", "postal_address", "date_of_birth", "user_identifier")
SAMPLE_ROWS = 10_000
PathLike = str | os.PathLike[str]

# ----------------------------------------------------------------------------------------
# Value validators. Each takes one candidate that its pattern matched.

_DIGITS = re.compile(r"\d+")


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn (mod 10) check.

    Parameters
    ----------
    digits : str
        Digits only; anything else (spaces, signs, an empty string) is not valid.

    Returns
    -------
    bool

    Examples
    --------
    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    if not digits or not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_NOT_ASCII_DIGIT = re.compile(r"[^0-9]+")


def _ascii_digits(text: str) -> str:
    return _NOT_ASCII_DIGIT.sub("", text)


_LOCAL_PART = re.compile(r"[A-Za-z0-9._%+\-]{1,64}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?")
_SCALE_SUFFIX = re.compile(r"\d+(?:\.\d+)?x", re.IGNORECASE)  # icon@2x.png


def _is_email(candidate: str) -> bool:
    local, _, domain = candidate.rpartition("@")
    if not _LOCAL_PART.fullmatch(local) or local[0] == "." or local[-1] == ".":
        return False
    labels = domain.split(".")
    if ".." in local or len(domain) > 253 or len(labels) < 2:
        return False
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    tld = labels[-1].lower()
    if _SCALE_SUFFIX.fullmatch(labels[0]):
        return False
    return (tld.isalpha() and len(tld) >= 2) or tld.startswith("xn--")


_PHONE_SEPARATOR = re.compile(r"[ ().\-]")
_DATE_LIKE = re.compile(r"\d{4}([\-./])\d{1,2}\1\d{1,2}(?!\d)|\d{1,2}([\-./])\d{1,2}\2\d{4}(?!\d)")
_NANP = re.compile(r"(?:1[ .\-])?(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}")


def _is_phone(candidate: str) -> bool:
    """A phone number, or one followed by a few more words of digits (``... 0958 12``)."""
    text = candidate.strip()
    for _ in range(3):
        if _phone_shape(text):
            return True
        text, space, _ = text.rpartition(" ")
        if not space:
            return False
    return False


def _phone_shape(text: str) -> bool:
    digits = _ascii_digits(text)
    if not 8 <= len(digits) <= 15 or len(digits) != sum(ch.isdigit() for ch in text):
        return False
    international = text.startswith("+")
    if not international and not _PHONE_SEPARATOR.search(text):
        return False  # a plain integer: a count, an id or a timestamp
    if text.count("(") != text.count(")") or text.count("(") > 1:
        return False
    if "(" in text and not re.search(r"\(\d{1,5}\)", text):
        return False
    if re.search(r"[ .\-]{2}", text) or _DATE_LIKE.search(text):  # doubled separators
        return False
    groups = _DIGITS.findall(text)
    if "." in text:  # dotted numbers: 202.555.0147, 01.23.45.67.89; not decimals or IPs
        if re.search(r"[ \-()]", text.lstrip("+")) or len(groups) < 3:
            return False
        if len(groups) == 4 and all(len(g) <= 3 for g in groups):
            return False
    if len(groups) > 7:
        return False
    if international:
        return digits[0] != "0"
    # National numbers start with a trunk 0 (most of the world) or follow NANP shapes.
    if text.lstrip("(")[0] == "0":
        return len(groups) >= 2 and all(len(g) >= 2 for g in groups[1:])
    return _NANP.fullmatch(text) is not None


def _is_ipv4(candidate: str) -> bool:
    parts = candidate.split(".")
    # 0.x.x.x is no host; four single digits are a version (5.3.1.0), seldom a user's IP.
    if len(parts) != 4 or parts[0] == "0" or all(len(p) == 1 for p in parts):
        return False
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def _is_ipv6(candidate: str) -> bool:
    """An IPv6 address, also when a label such as ``id:`` is glued to its front."""
    text = candidate.rstrip(".")
    for attempt in (text, text.partition(":")[2]):
        if attempt.count(":") >= 2 and attempt != "::":
            try:
                ipaddress.IPv6Address(attempt)
            except ValueError:
                continue
            return True
    return False


def _is_mac(candidate: str) -> bool:
    separators = {ch for ch in candidate if ch in ":-"}
    hexdigits = candidate.replace(":", "").replace("-", "").lower()
    return len(separators) == 1 and hexdigits not in ("000000000000", "ffffffffffff")


def _is_uuid(candidate: str) -> bool:
    return candidate.replace("-", "").strip("0") != ""  # the nil (zeroed-out IDFA) is not


def _is_imei(candidate: str) -> bool:
    separators = {ch for ch in candidate if ch in " -"}
    digits = _ascii_digits(candidate)
    return len(separators) <= 1 and len(digits) == 15 and luhn_valid(digits)


def _card_length_fits(digits: str) -> bool:
    """Whether the issuer prefix (IIN) is a known brand and the length is one it issues."""
    n = len(digits)
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if digits[0] not in "2356":  # no other brand starts with these
        return False
    two, three, four, six = (int(digits[:k]) for k in (2, 3, 4, 6))
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if four == 6011 or two == 65 or 644 <= three <= 649 or 622126 <= six <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    return False


def _is_card(candidate: str) -> bool:
    plain = candidate.isascii() and candidate.isdigit()  # most candidates: no separators
    digits = candidate if plain else _ascii_digits(candidate)
    separators = set() if plain else {ch for ch in candidate if ch in " -"}
    if len(separators) > 1 or not 13 <= len(digits) <= 19:
        return False
    if separators:
        groups = _DIGITS.findall(candidate)
        if len(groups[0]) != 4 or not all(3 <= len(g) <= 6 for g in groups[1:-1]):
            return False
    return _card_length_fits(digits) and luhn_valid(digits)


_PAIR = re.compile(r"([-+]?\d{1,3})\.(\d+)(?:\s*,\s*|\s+)([-+]?\d{1,3})\.(\d+)")


def _is_lat_lon(candidate: str) -> bool:
    match = _PAIR.fullmatch(candidate)
    if match is None:
        return False
    int_a, dec_a, int_b, dec_b = match.groups()
    if len(dec_a) < 3 or len(dec_b) < 3:
        return False
    a, b = abs(float(f"{int_a}.{dec_a}")), abs(float(f"{int_b}.{dec_b}"))
    if a <= 1 and b <= 1:  # normalised screen coordinates, not a place (Null Island)
        return False
    return (a <= 90 and b <= 180) or (b <= 90 and a <= 180)


@dataclass(frozen=True)
class _Detector:
    kind: str
    pattern: str  # shared by Polars (Rust regex) and Python's re: no look-around
    validate: Callable[[str], bool]

    @property
    def regex(self) -> re.Pattern[str]:
        return _COMPILED[self.kind]


_HEX = "[0-9A-Fa-f]"
_DETECTORS = (
    _Detector(
        "email",
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)+",
        _is_email,
    ),
    _Detector("phone", r"\+?\(?\d[\d ().\-]{5,24}\d", _is_phone),
    _Detector("ipv4", r"\b\d+(?:\.\d+){3,}\b", _is_ipv4),
    _Detector("ipv6", r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*", _is_ipv6),
    _Detector("mac", rf"\b{_HEX}{{2}}(?:[:\-]{_HEX}{{2}}){{5}}\b", _is_mac),
    _Detector(
        "advertising_id_or_uuid",
        rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b",
        _is_uuid,
    ),
    _Detector("imei", r"\b\d{2}[ \-]?\d{6}[ \-]?\d{6}[ \-]?\d\b", _is_imei),
    _Detector("card_number", r"\b(?:\d{13,19}|\d{4}(?:[ \-]\d{3,6}){2,4})\b", _is_card),
    _Detector(
        "lat_lon",
        r"[-+]?\b\d{1,3}\.\d{3,}(?:\s*,\s*|\s+)[-+]?\d{1,3}\.\d{3,}\b",
        _is_lat_lon,
    ),
)
_WHOLE_TOKEN_DETECTORS = tuple(d for d in _DETECTORS if d.kind in ("advertising_id_or_uuid", "mac"))
_COMPILED = {d.kind: re.compile(d.pattern) for d in _DETECTORS}
_BY_KIND = {d.kind: d for d in _DETECTORS}
_DIGIT_DETECTORS = (_BY_KIND["imei"], _BY_KIND["card_number"])
_NO_UUID = tuple(d for d in _DETECTORS if d.kind != "advertising_id_or_uuid")


def detect_value(text: str) -> set[str]:
    """The kinds of personal data one text holds: every match is validated, not guessed.

    Parameters
    ----------
    text : str
        Any text: a cell, a line, a log message.

    Returns
    -------
    set of str
        Kinds from :data:`VALUE_KINDS`; empty when nothing was found.

    Examples
    --------
    >>> sorted(detect_value("mail jane.doe+news@mail.example.co.uk or +44 20 7946 0958"))
    ['email', 'phone']
    >>> detect_value("checkout 2.10.3 at 2026-11-30T12:00:00Z, 0.4531, #ff00aa")
    set()
    """
    found = set()
    # Identifiers made of hex groups (UUIDs, MACs) are taken out first: their digit runs
    # joined by dashes otherwise pass for phone numbers (1.5% of random UUIDs did).
    for detector in _WHOLE_TOKEN_DETECTORS:
        matches = [m for m in detector.regex.finditer(text) if detector.validate(m.group())]
        if matches:
            found.add(detector.kind)
            for m in matches:
                text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    for detector in _DETECTORS:
        if detector in _WHOLE_TOKEN_DETECTORS:
            continue
        if any(detector.validate(m.group()) for m in detector.regex.finditer(text)):
            found.add(detector.kind)
    return found


def _redact(kind: str, value: str) -> str:
    """The shape of a value without its content: ``j***@***.com``, ``****-****-****-****``."""
    if kind == "email":
        local, _, domain = value.rpartition("@")
        return f"{local[:1]}***@***.{domain.rsplit('.', 1)[-1]}"
    return re.sub(r"[0-9A-Za-z]", "*", value)


# ----------------------------------------------------------------------------------------
# Column names.

_WORDS = re.compile(r"[A-Z]+(?![a-z])\d*|[A-Z]?[a-z]+\d*|\d+")
# Rules in the order they are tried, the first match wins: words that appear in a row in
# the name ("e mail" matches e_mail and eMail), or, marked "=", that are the whole name.
_NAME_SPEC = {
    "email": "email | e mail | emailaddress | mail",
    "phone": "phone | phonenumber | telephone | tel | msisdn | mobile number | mobile no"
    " | cellphone",
    "ip_address": "ip | ipv4 | ipv6 | ipaddress | ipaddr | remote addr",
    "mac": "=mac | mac address | mac addr | macaddress | macaddr | wifi mac | bssid",
    "advertising_id_or_uuid": "idfa | idfv | gaid | adid | aaid | ad id | advertising id"
    " | advertisingid | advertiser id",
    "imei": "imei | meid",
    "card_number": "=card | =pan | card number | card no | card num | card pan | cardnumber"
    " | credit card | debit card | creditcard | ccnum | cc number",
    "lat_lon": "lat | latitude | lon | lng | longitude | gps | geolocation | geo location",
    "date_of_birth": "dob | birth | birthday | birthdate | dateofbirth",
    "person_name": "=name | first name | last name | full name | given name | family name"
    " | middle name | user name | customer name | firstname | lastname | fullname | surname"
    " | forename | username",
    "user_identifier": "user id | userid | customer id | account id | member id | device id"
    " | deviceid",
    "postal_address": "address | street | postcode | postal code | zip code | zipcode | =zip",
}
_NAME_RULES = tuple(
    (tuple(rule.lstrip("=").split()), kind, rule.startswith("="))
    for kind, spec in _NAME_SPEC.items()
    for rule in (part.strip() for part in spec.split("|"))
)
# UUIDs in columns or JSON keys named like these are run, trace or release ids.
_TECHNICAL_ID_WORDS = frozenset(
    {"run", "request", "trace", "span", "job", "build", "batch", "release", "commit"}
)


def _words(name: str) -> list[str]:
    """Lower-case words of a column name, split on ``_ - .``, spaces and camelCase."""
    return [w.lower() for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORDS.findall(part)]


def _contains_run(words: list[str], tokens: tuple[str, ...]) -> bool:
    n = len(tokens)
    return any(tuple(words[i : i + n]) == tokens for i in range(len(words) - n + 1))


def detect_name(column: str) -> str | None:
    """The kind of personal data a column name suggests, or ``None``.

    Parameters
    ----------
    column : str
        A column name; split into words on ``_``, ``-``, ``.``, spaces and camelCase, so
        ``userEmail``, ``e_mail`` and ``home.lat`` are all recognised. Ambiguous words
        count only as the whole name: ``name``, ``card``, ``pan``, ``mac`` and ``zip``
        (``screen_name``, ``pan_x`` and ``mac_os_version`` are not personal data).

    Returns
    -------
    str or None
        A kind from :data:`VALUE_KINDS` or :data:`NAME_KINDS`; the first rule that
        matches wins, so ``ip_address`` is an IP address, not a postal address.

    Examples
    --------
    >>> detect_name("userEmail"), detect_name("ip_address"), detect_name("screen_name")
    ('email', 'ip_address', None)
    """
    words = _words(column)
    for tokens, kind, whole in _NAME_RULES:
        if (tuple(words) == tokens) if whole else _contains_run(words, tokens):
            return kind
    return None


def _is_technical_id(name: str) -> bool:
    return not _TECHNICAL_ID_WORDS.isdisjoint(_words(name))


# ----------------------------------------------------------------------------------------
# Reports.


@dataclass(frozen=True)
class Finding:
    """One kind of personal data seen in one column (or one part of an output file).

    ``hits`` counts sampled values with at least one validated match (for ``source ==
    "name"``: every non-null sampled value, as the name marks them all); ``sampled``
    counts the non-null values examined. ``redacted_example`` shows a match's shape only.
    """

    column: str
    kind: str
    source: Literal["name", "value"]
    hits: int
    sampled: int
    redacted_example: str | None = None
    file: str | None = None

    @property
    def location(self) -> str:
        """``column``, or ``file::column`` for a finding in an output file."""
        return self.column if self.file is None else f"{self.file}::{self.column}"


@dataclass(frozen=True)
class PiiReport:
    """What a scan found: kinds, where and how often; never a matched value.

    Attributes
    ----------
    findings : tuple of Finding
        One per (column, kind, source) with at least one hit.
    skipped : tuple of str
        Files, or arrays inside files, that could not be read as text (binary files of an
        unknown type, object arrays in ``.npz``).
    """

    findings: tuple[Finding, ...] = ()
    skipped: tuple[str, ...] = ()

    def columns_with_pii(self) -> list[str]:
        """Sorted locations (:attr:`Finding.location`) with at least one finding."""
        return sorted({f.location for f in self.findings})

    def kinds(self) -> set[str]:
        """The kinds found anywhere."""
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: kinds, locations, findings and skipped files."""
        return {
            "kinds": sorted(self.kinds()),
            "columns_with_pii": self.columns_with_pii(),
            "findings": [asdict(f) for f in self.findings],
            "skipped": list(self.skipped),
        }

    def effectiveness(self, outputs: PiiReport) -> float:
        """:func:`anonymisation_effectiveness` with this report as the input's."""
        return anonymisation_effectiveness(self, outputs)


_CATEGORY = {"ipv4": "ip_address", "ipv6": "ip_address"}


def anonymisation_effectiveness(input_report: PiiReport, outputs_report: PiiReport) -> float:
    """Share of the personal-data kinds seen that the outputs are free of.

    With ``I`` the kinds found in the input and ``O`` those found in the outputs (IPv4
    and IPv6 both counted as ``ip_address``, so an ``ip`` column and its values are one
    kind), the score is ``|I - O| / |I | O|``: 1.0 when the outputs hold no personal data
    at all, 0.0 when every kind seen reappears in the outputs. A kind found only in the
    outputs counts against the score, as the outputs must not hold it either way.

    Parameters
    ----------
    input_report, outputs_report : PiiReport
        From :func:`scan_input` (or :func:`scan_frame`) and :func:`scan_outputs`.

    Returns
    -------
    float
        In ``[0, 1]``; 1.0 when neither report found anything.

    Examples
    --------
    >>> seen = PiiReport((Finding("email", "email", "name", 5, 5), Finding("ip", "ipv4", "value", 4, 5)))
    >>> out = PiiReport((Finding("notes", "ipv6", "value", 1, 9, file="m.json"),))
    >>> anonymisation_effectiveness(seen, out), anonymisation_effectiveness(seen, PiiReport())
    (0.5, 1.0)
    """  # noqa: E501
    seen = {_CATEGORY.get(k, k) for k in input_report.kinds()}
    kept = {_CATEGORY.get(k, k) for k in outputs_report.kinds()}
    if not kept:
        return 1.0
    return len(seen - kept) / len(seen | kept)


# ----------------------------------------------------------------------------------------
# Frames.


def _check_sample_rows(sample_rows: int | None) -> None:
    if sample_rows is not None and (isinstance(sample_rows, bool) or sample_rows < 1):
        msg = f"sample_rows must be a positive number of rows or None, got {sample_rows!r}"
        raise ValueError(msg)


def _sample_lazy(lf: pl.LazyFrame, height: int, rows: int | None, seed: int) -> pl.DataFrame:
    """``rows`` consecutive rows from a seeded random start (all when ``rows`` is None or
    enough). A run of rows, not scattered ones, so a Parquet file is read only where the
    sample lies: a scattered sample read every row of every file (2 s for 100M taps)."""
    if rows is None or rows >= height:
        return lf.collect()
    start = int(np.random.default_rng(seed).integers(0, height - rows + 1))
    return lf.slice(start, rows).collect()


def _as_strings(series: pl.Series) -> pl.Series:
    """Any column as text: nested values as JSON."""
    if series.dtype.is_nested():
        return series.to_frame().select(pl.struct(pl.all()).struct.json_encode()).to_series()
    return series.cast(pl.String)


def _text_view(series: pl.Series) -> tuple[pl.Series, tuple[_Detector, ...]] | None:
    """The series as text and the detectors that apply to it, or None to skip it."""
    dtype = series.dtype
    detectors = _NO_UUID if _is_technical_id(series.name) else _DETECTORS
    if dtype == pl.String:
        return series, detectors
    if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return series.cast(pl.String), detectors
    if dtype.is_integer():
        return series.cast(pl.String), _DIGIT_DETECTORS
    if dtype.is_nested():
        return _as_strings(series), detectors
    return None


def _value_hits(text: pl.Series, detectors: Iterable[_Detector]) -> Iterator[tuple[str, int, str]]:
    """(kind, rows with a validated match, redacted example) for each kind found.

    Polars runs each pattern over every row; Python validates each distinct match once.
    """
    masked = pl.col("text")
    for whole in _WHOLE_TOKEN_DETECTORS:  # as in detect_value: UUIDs are not phones
        masked = masked.str.replace_all(whole.pattern, " ")
    frame = (
        pl.DataFrame({"text": text.rename("text")})
        .with_row_index("row")
        .lazy()
        .with_columns(masked.alias("masked"))
    )
    detectors = tuple(detectors)
    queries = [
        frame.filter(pl.col(source).str.contains(d.pattern))
        .select("row", pl.col(source).str.extract_all(d.pattern).alias("match"))
        .explode("match")
        .drop_nulls("match")
        for d in detectors
        for source in ["text" if d in _WHOLE_TOKEN_DETECTORS else "masked"]
    ]
    for detector, candidates in zip(detectors, pl.collect_all(queries), strict=True):
        if candidates.is_empty():
            continue
        distinct = candidates.get_column("match").unique(maintain_order=True).to_list()
        valid = [match for match in distinct if detector.validate(match)]
        if valid:
            matched = candidates.filter(pl.col("match").is_in(valid))
            hits = matched.get_column("row").n_unique()
            yield detector.kind, hits, _redact(detector.kind, valid[0])


def _column_label(name: str, index: int) -> tuple[str, set[str]]:
    """A name fit for a report, and the kinds the name itself holds (then it is hidden)."""
    held = detect_value(name)
    return (f"<column {index}: name redacted>" if held else name), held


_LAT_WORDS = frozenset({"lat", "latitude"})
_LON_WORDS = frozenset({"lon", "lng", "longitude"})


def _lat_lon_pairs(frame: pl.DataFrame) -> list[tuple[str, str]]:
    """(latitude, longitude) column pairs, matched by the rest of their names."""

    def rest(name: str, words: frozenset[str]) -> str | None:
        split = _words(name)
        return "_".join(w for w in split if w not in words) if words & set(split) else None

    lats = {n: r for n in frame.columns if (r := rest(n, _LAT_WORDS)) is not None}
    lons = {n: r for n in frame.columns if (r := rest(n, _LON_WORDS)) is not None}
    pairs = [(a, b) for a, ra in lats.items() for b, rb in lons.items() if ra == rb and a != b]
    paired = {c for pair in pairs for c in pair}
    left = [a for a in lats if a not in paired], [b for b in lons if b not in paired]
    if len(left[0]) == 1 and len(left[1]) == 1 and left[0][0] != left[1][0]:
        pairs.append((left[0][0], left[1][0]))
    return pairs


def _numeric(frame: pl.DataFrame, column: str) -> pl.Expr | None:
    dtype = frame.schema[column]
    if dtype.is_numeric():
        return pl.col(column).cast(pl.Float64)
    if dtype == pl.String:
        return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    return None


def _pair_hits(frame: pl.DataFrame, lat: str, lon: str) -> int:
    a, b = _numeric(frame, lat), _numeric(frame, lon)
    if a is None or b is None:
        return 0
    valid = (a.abs() <= 90) & (b.abs() <= 180) & ~((a == 0) & (b == 0))
    return int(frame.select(valid.fill_null(False).sum()).item())


def _frame_findings(frame: pl.DataFrame, file: str | None) -> list[Finding]:
    counts = frame.select(pl.all().count()).row(0, named=True) if frame.width else {}
    labels = {}
    findings = []
    for index, name in enumerate(frame.columns):
        label, held = _column_label(name, index)
        labels[name] = label
        sampled = counts[name]
        named = detect_name(name)
        for kind in dict.fromkeys(([named] if named else []) + sorted(held)):
            findings.append(Finding(label, kind, "name", sampled, sampled, None, file))
        view = _text_view(frame.get_column(name))
        if view is not None:
            for kind, hits, example in _value_hits(*view):
                findings.append(Finding(label, kind, "value", hits, sampled, example, file))
    for lat, lon in _lat_lon_pairs(frame):
        hits = _pair_hits(frame, lat, lon)
        if hits:
            for name in (lat, lon):
                findings.append(
                    Finding(labels[name], "lat_lon", "value", hits, counts[name], None, file)
                )
    return findings


def scan_frame(
    df: pl.DataFrame | pl.LazyFrame, sample_rows: int | None = SAMPLE_ROWS, seed: int = 0
) -> PiiReport:
    """Scan a frame's column names and a seeded sample of its values for personal data.

    Text columns (and nested ones, as JSON) are checked for every kind in
    :data:`VALUE_KINDS`; integer columns for IMEIs and card numbers; numeric or text
    columns named like latitude and longitude (``lat``/``lon``, ``home_lat``/
    ``home_lng``) for coordinate pairs in range. UUIDs in columns named like technical
    ids (``run_id``, ``request_id``, ``trace_id``) are not reported.

    Parameters
    ----------
    df : polars.DataFrame or polars.LazyFrame
        The frame; a LazyFrame is only collected for the sampled rows.
    sample_rows : int or None
        Rows to sample (the same rows for every column); None scans every row.
    seed : int
        Seed of the sample: equal seeds give equal reports.

    Returns
    -------
    PiiReport
        Counts and kinds only: no value is ever copied into it.

    Raises
    ------
    ValueError
        ``sample_rows`` is not positive.

    Examples
    --------
    >>> frame = pl.DataFrame({"note": ["call +1-202-555-0147", "ok"], "x": [0.25, 0.5]})
    >>> [(f.column, f.kind, f.hits, f.sampled) for f in scan_frame(frame).findings]
    [('note', 'phone', 1, 2)]
    """
    _check_sample_rows(sample_rows)
    if isinstance(df, pl.DataFrame):
        if sample_rows is not None and df.height > sample_rows:
            df = df.sample(n=sample_rows, seed=seed)
        return PiiReport(tuple(_frame_findings(df, None)))
    height = df.select(pl.len()).collect().item()
    return PiiReport(tuple(_frame_findings(_sample_lazy(df, height, sample_rows, seed), None)))


def _quotas(heights: list[int], rows: int | None) -> list[int | None]:
    """Sample rows per file, proportional to the file's rows, adding up to ``rows``."""
    total = sum(heights)
    if rows is None or total <= rows:
        return [None] * len(heights)
    shares = [h * rows / total for h in heights]
    quotas = [int(s) for s in shares]
    by_remainder = sorted(range(len(heights)), key=lambda i: quotas[i] - shares[i])
    for i in by_remainder[: rows - sum(quotas)]:
        quotas[i] += 1
    return list(quotas)


def scan_input(source: Sources, sample_rows: int | None = SAMPLE_ROWS, seed: int = 0) -> PiiReport:
    """Scan tap inputs as the pipeline reads them: files, directories, globs or frames.

    Every column of CSV and NDJSON files is read as text, so ``007`` and a card number
    keep their digits. The sample is spread over the files in proportion to their rows.

    Parameters
    ----------
    source : frame, path, glob, directory or list of paths
        Anything :func:`heatengine.io.scan_batches` accepts.
    sample_rows : int or None
        Rows to sample over all files together; None reads every row.
    seed : int
        Seed of the sample.

    Returns
    -------
    PiiReport
        Findings per column (columns present in some files only are null elsewhere).

    Raises
    ------
    HeatengineError
        The source names no readable input.
    ValueError
        ``sample_rows`` is not positive.
    """
    _check_sample_rows(sample_rows)
    names = {name for lf in scan_batches(source) for name in lf.collect_schema().names()}
    batches = scan_batches(source, text_columns=sorted(names))
    heights = [lf.select(pl.len()).collect().item() for lf in batches]
    parts = [
        _sample_lazy(lf, height, quota, seed + i)
        for i, (lf, height, quota) in enumerate(
            zip(batches, heights, _quotas(heights, sample_rows), strict=True)
        )
    ]
    frame = pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]
    return PiiReport(tuple(_frame_findings(frame, None)))


# ----------------------------------------------------------------------------------------
# Output files.

_TEXT_SUFFIXES = frozenset({".html", ".htm", ".csv", ".tsv", ".txt", ".md", ".log", ".svg", ".xml"})


def _files(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """Every file the paths name, directories searched recursively, each once, sorted."""
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: dict[Path, Path] = {}
    for item in given:
        path = Path(item)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            candidates = [path]
        else:
            msg = f"output path not found: {str(path)!r}"
            raise HeatengineError(msg)
        for file in candidates:
            found.setdefault(file.resolve(), file)
    return sorted(found.values())


def _string_findings(
    column: str, strings: list[str], detectors: Iterable[_Detector], file: str
) -> list[Finding]:
    if not strings:
        return []
    series = pl.Series("text", strings, dtype=pl.String)
    return [
        Finding(column, kind, "value", hits, len(strings), example, file)
        for kind, hits, example in _value_hits(series, detectors)
    ]


def _json_strings(value: Any, technical: bool, out: dict[str, list[str]]) -> None:
    """Collect keys and string values (``text``), strings under run/trace-id keys
    (``technical``, checked for everything but UUIDs) and integers (``digits``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            out["text"].append(str(key))
            _json_strings(item, _is_technical_id(str(key)), out)
    elif isinstance(value, list):
        for item in value:
            _json_strings(item, technical, out)
    elif isinstance(value, str):
        out["technical" if technical else "text"].append(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        out["digits"].append(str(value))


def _json_findings(documents: list[Any], file: str) -> list[Finding]:
    out: dict[str, list[str]] = {"text": [], "technical": [], "digits": []}
    for document in documents:
        _json_strings(document, False, out)
    return (
        _string_findings("(json strings)", out["text"], _DETECTORS, file)
        + _string_findings("(json strings under run ids)", out["technical"], _NO_UUID, file)
        + _string_findings("(json integers)", out["digits"], _DIGIT_DETECTORS, file)
    )


def _scan_json(path: Path, file: str) -> list[Finding]:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return _json_findings([json.loads(text)], file)
    except ValueError:
        return _scan_text(path, file)


def _scan_jsonl(path: Path, file: str) -> list[Finding]:
    documents, loose = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            documents.append(json.loads(line))
        except ValueError:
            loose.append(line)
    return _json_findings(documents, file) + _string_findings("(text)", loose, _DETECTORS, file)


def _scan_text(path: Path, file: str) -> list[Finding]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return _string_findings("(text)", lines, _DETECTORS, file)


def _scan_parquet(path: Path, file: str) -> list[Finding]:
    return _frame_findings(pl.read_parquet(path, hive_partitioning=False), file)


def _name_findings(column: str, names: list[str], file: str) -> list[Finding]:
    """Names of arrays or text chunks: each checked as a name and as a value."""
    findings = _string_findings(column, names, _DETECTORS, file)
    for index, name in enumerate(names):
        kind = detect_name(name)
        if kind:
            label, _ = _column_label(name, index)
            findings.append(Finding(label, kind, "name", 1, 1, None, file))
    return findings


def _scan_npz(path: Path, file: str) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    skipped = []
    with np.load(path, allow_pickle=False) as arrays:
        names = list(arrays.files)
        findings += _name_findings("(array names)", names, file)
        for index, name in enumerate(names):
            try:
                array = arrays[name]
            except ValueError:  # object arrays need pickle, which is never enabled
                skipped.append(f"{file}::{_column_label(name, index)[0]}")
                continue
            if array.dtype.kind in "US":
                values = array.ravel().astype(str).tolist()
                label = _column_label(name, index)[0]
                findings += _string_findings(label, values, _DETECTORS, file)
    return findings, skipped


def _png_text(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as image:
        return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}


def _scan_png(path: Path, file: str) -> list[Finding]:
    chunks = _png_text(path)
    return _name_findings("(png text keys)", list(chunks), file) + _string_findings(
        "(png text)", list(chunks.values()), _DETECTORS, file
    )


def _looks_binary(path: Path) -> bool:
    with open(path, "rb") as handle:
        return b"\x00" in handle.read(8192)


def scan_outputs(paths: PathLike | Iterable[PathLike]) -> PiiReport:
    """Scan every file a run wrote, in full (outputs are small), for personal data.

    Parquet: every column and row, as :func:`scan_frame` with no sampling. JSON and
    JSONL: every key and string value, recursively, and integers for IMEIs and card
    numbers (UUIDs under keys such as ``run_id`` are run ids, not reported). HTML, CSV,
    text, and any other file that is not binary: each line. NPZ: array names and string
    arrays. PNG: text chunks. File names are checked too; one that holds personal data
    is replaced by ``<file N: name redacted>`` in the report.

    Parameters
    ----------
    paths : path or iterable of paths
        Files and directories (searched recursively, hidden files included).

    Returns
    -------
    PiiReport
        Findings with ``file`` set; binary files of other types are listed in ``skipped``.

    Raises
    ------
    HeatengineError
        A path does not exist.
    """
    scanners: dict[str, Callable[[Path, str], list[Finding]]] = {
        ".parquet": _scan_parquet,
        ".pq": _scan_parquet,
        ".json": _scan_json,
        ".jsonl": _scan_jsonl,
        ".ndjson": _scan_jsonl,
        ".png": _scan_png,
        **dict.fromkeys(_TEXT_SUFFIXES, _scan_text),
    }
    findings: list[Finding] = []
    skipped: list[str] = []
    for index, path in enumerate(_files(paths)):
        held = detect_value(path.name)
        file = f"<file {index}: name redacted>" if held else str(path)
        findings += [Finding("(file name)", kind, "name", 1, 1, None, file) for kind in held]
        suffix = path.suffix.lower()
        if suffix == ".npz":
            found, missed = _scan_npz(path, file)
            findings += found
            skipped += missed
        elif suffix in scanners:
            findings += scanners[suffix](path, file)
        elif _looks_binary(path):
            skipped.append(file)
        else:
            findings += _scan_text(path, file)
    return PiiReport(tuple(findings), tuple(skipped))


# ----------------------------------------------------------------------------------------
# Raw values.

_CHUNK = 1 << 22


def _byte_views(path: Path) -> list[bytes]:
    """The file's bytes, plus its decoded content where the bytes are compressed or
    encoded (Parquet pages, NPZ members and string arrays, PNG text chunks, JSON)."""
    raw = path.read_bytes()
    views = [raw]
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pl.read_parquet(path, hive_partitioning=False)
            parts = [name.encode() for name in frame.columns]
            for column in frame.columns:
                series = frame.get_column(column)
                if series.dtype == pl.Binary:
                    parts += [v for v in series.to_list() if v is not None]
                else:
                    parts += [v.encode() for v in _as_strings(series).drop_nulls().to_list()]
            views.append(b"\n".join(parts))
        elif suffix in (".npz", ".zip"):
            with zipfile.ZipFile(path) as archive:
                views += [archive.read(name) for name in archive.namelist()]
            if suffix == ".npz":
                with np.load(path, allow_pickle=False) as arrays:
                    texts = list(arrays.files)
                    for name in arrays.files:
                        try:
                            array = arrays[name]
                        except ValueError:
                            continue
                        if array.dtype.kind in "US":
                            texts += array.ravel().astype(str).tolist()
                views.append("\n".join(texts).encode())
        elif suffix == ".png":
            chunks = _png_text(path)
            views.append("\n".join([*chunks, *chunks.values()]).encode())
        elif suffix in (".json", ".jsonl", ".ndjson"):
            out: dict[str, list[str]] = {"text": [], "technical": [], "digits": []}
            for line in [raw] if suffix == ".json" else raw.splitlines():
                _json_strings(json.loads(line), False, out)
            views.append("\n".join(out["text"] + out["technical"] + out["digits"]).encode())
    except (ValueError, OSError, zipfile.BadZipFile, pl.exceptions.PolarsError):
        pass  # the raw bytes are still searched
    return views


def _occurrences(data: bytes, needles: dict[int, np.ndarray], odd: list[bytes]) -> int:
    """Positions where any needle starts, one fixed-width window view per length.

    NumPy's bytes type ignores trailing NULs, so the rare values ending in one (``odd``)
    are counted one by one.
    """
    total = sum(data.count(value) for value in odd)
    for length, targets in needles.items():
        for start in range(0, max(len(data) - length + 1, 0), _CHUNK):
            segment = data[start : start + _CHUNK + length - 1]
            count = len(segment) - length + 1
            windows = np.ndarray((count,), dtype=f"S{length}", buffer=segment, strides=(1,))
            total += int(np.isin(windows, targets).sum())
    return total


def leaked_values(
    paths: PathLike | Iterable[PathLike], values: Iterable[str]
) -> list[tuple[Path, int]]:
    """Files holding any of the given raw values (user ids, emails) byte for byte.

    Each value is searched as UTF-8 bytes in the file and in its decoded content
    (Parquet values, NPZ members and string arrays, PNG text chunks, JSON strings), so
    compression does not hide a value. Thousands of values are searched at once.

    Parameters
    ----------
    paths : path or iterable of paths
        Files and directories (searched recursively).
    values : iterable of str
        Raw values that must not appear; empty strings are ignored.

    Returns
    -------
    list of (Path, int)
        Files with at least one occurrence and the number of occurrences (positions where
        a value starts, in whichever view holds most), sorted by path. The values
        themselves are not returned.

    Raises
    ------
    HeatengineError
        A path does not exist.
    """
    encoded = {v.encode() for v in values if v}
    odd = sorted(v for v in encoded if v.endswith(b"\x00"))
    by_length: dict[int, list[bytes]] = {}
    for value in encoded.difference(odd):
        by_length.setdefault(len(value), []).append(value)
    needles = {n: np.array(sorted(group), dtype=f"S{n}") for n, group in by_length.items()}
    leaks = []
    for path in _files(paths):
        count = max(_occurrences(view, needles, odd) for view in _byte_views(path))
        if count:
            leaks.append((path, count))
    return leaks


# ----------------------------------------------------------------------------------------
# The step of every run.


def input_summary(report: PiiReport) -> dict[str, Any]:
    """What a run records about its input: kinds and the columns that carried them.

    Counts, shapes and examples are left out: this goes into manifests and audit logs.
    """
    columns: dict[str, set[str]] = {}
    for finding in report.findings:
        columns.setdefault(finding.location, set()).add(finding.kind)
    return {
        "kinds": sorted(report.kinds()),
        "columns": {column: sorted(kinds) for column, kinds in sorted(columns.items())},
    }


class PersonalDataInOutputs(HeatengineError):
    """Outputs about to be published hold personal data; they were not published.

    ``scan`` is the :func:`check_outputs` result (kinds and places, never values).
    """

    def __init__(self, scan: dict[str, Any]) -> None:
        self.scan = scan
        where = ", ".join(scan["locations"])
        super().__init__(
            f"personal data found in outputs ({', '.join(scan['kinds'])}): {where}; "
            "nothing was published"
        )


def check_outputs(summary: dict[str, Any], paths: PathLike | Iterable[PathLike]) -> dict[str, Any]:
    """Scan every written output and score it against the input's :func:`input_summary`.

    Returns
    -------
    dict
        ``files_scanned``, ``clean`` (no personal data in any output), the output
        ``locations`` and ``kinds`` found, and the anonymisation ``effectiveness``
        (:func:`anonymisation_effectiveness`; the target is 1.0).
    """
    files = list(_files(paths))
    outputs = scan_outputs(files) if files else PiiReport()
    seen = PiiReport(
        tuple(
            Finding(column, kind, "value", 1, 1)
            for column, kinds in summary["columns"].items()
            for kind in kinds
        )
    )
    return {
        "files_scanned": len(files),
        "clean": not outputs.findings,
        "locations": outputs.columns_with_pii(),
        "kinds": sorted(outputs.kinds()),
        "effectiveness": anonymisation_effectiveness(seen, outputs),
    }
