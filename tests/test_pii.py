"""The personal-data scanner: recall on injected values, false positives on clean
analytics values, validators, output files, raw-value leaks and reports free of values."""

from __future__ import annotations

import ipaddress
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from heatengine.errors import HeatengineError
from heatengine.pii import (
    NAME_KINDS,
    VALUE_KINDS,
    Finding,
    PiiReport,
    anonymisation_effectiveness,
    detect_name,
    detect_value,
    leaked_values,
    luhn_valid,
    scan_frame,
    scan_input,
    scan_outputs,
)
from heatengine.synthetic import generate_taps

PER_KIND = 500
EMAIL = "jane.doe+heat@mail.example.co.uk"

# ----------------------------------------------------------------------------------------
# Generators of personal data.


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def _email(rng: random.Random) -> str:
    first = rng.choice(["jane", "john", "li", "maria", "Ahmed", "o.k", "zoe"])
    last = rng.choice(["doe", "smith", "nguyen", "garcia", "MULLER"])
    domain = rng.choice(
        ["example.com", "example.co.uk", "mail.example.org", "corp-mail.example.net", "ex.io"]
    )
    forms = [
        f"{first}.{last}@{domain}",
        f"{first}+{rng.choice(['news', 'heat', 'x1'])}@{domain}",
        f"{first}_{last}{rng.randint(1, 999)}@eu.{domain}",
        f"{first}.{last}.{rng.randint(1, 99)}@a.b.{domain}",
        f"{last}{rng.randint(1, 9999)}@{domain}".upper(),
    ]
    return rng.choice(forms)


def _phone(rng: random.Random) -> str:
    npa = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
    nxx = f"{rng.randint(2, 9)}{_digits(rng, 2)}"
    d = lambda n: _digits(rng, n)  # noqa: E731
    forms = [
        f"+44 20 {d(4)} {d(4)}",
        f"+1-{npa}-{nxx}-{d(4)}",
        f"+1 ({npa}) {nxx}-{d(4)}",
        f"({npa}) {nxx}-{d(4)}",
        f"{npa}-{nxx}-{d(4)}",
        f"{npa}.{nxx}.{d(4)}",
        f"020 {d(4)} {d(4)}",
        f"07{d(3)} {d(6)}",
        f"06 {d(2)} {d(2)} {d(2)} {d(2)}",
        f"01.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
        f"030 {d(8)}",
        f"(030) {d(7)}",
        f"+49 30 {d(7)}",
        f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
        f"+81 3-{d(4)}-{d(4)}",
        f"+44{rng.randint(1, 9)}{d(9)}",
        f"+44 (0)20 {d(4)} {d(4)}",
    ]
    return rng.choice(forms)


def _ipv4(rng: random.Random) -> str:
    return ".".join(str(o) for o in [rng.randint(1, 223), *(rng.randint(0, 255) for _ in "123")])


def _ipv6(rng: random.Random) -> str:
    groups = [rng.getrandbits(16) for _ in range(8)]
    start = rng.randint(1, 5)
    for i in range(start, start + rng.randint(0, 3)):  # a run of zeros to compress
        groups[i] = 0
    address = ipaddress.IPv6Address(int("".join(f"{g:04x}" for g in groups), 16))
    return rng.choice([address.compressed, address.exploded, address.compressed.upper()])


def _mac(rng: random.Random) -> str:
    text = rng.choice([":", "-"]).join(f"{rng.getrandbits(8):02x}" for _ in range(6))
    return rng.choice([text, text.upper()])


def _uuid(rng: random.Random) -> str:
    text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return rng.choice([text, text.upper()])  # IDFAs are upper case, GAIDs lower


def _imei(rng: random.Random) -> str:
    number = _with_check_digit(rng.choice(["35", "86", "01", "99", "49"]) + _digits(rng, 12))
    if rng.random() < 0.25:
        return f"{number[:2]}-{number[2:8]}-{number[8:14]}-{number[14]}"
    return number


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [
            ("4", 16),
            ("4", 13),
            (str(rng.randint(51, 55)), 16),
            (str(rng.randint(2221, 2720)), 16),
            (rng.choice(["34", "37"]), 15),
            ("6011", 16),
            ("65", 16),
            (str(rng.randint(3528, 3589)), 16),
        ]
    )
    number = _with_check_digit(prefix + _digits(rng, length - len(prefix) - 1))
    if length == 16 and rng.random() < 0.5:
        return rng.choice([" ", "-"]).join(number[i : i + 4] for i in range(0, 16, 4))
    if length == 15 and rng.random() < 0.5:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    return number


def _lat_lon(rng: random.Random) -> str:
    places = rng.randint(3, 6)
    lat = f"{rng.uniform(-90, 90):.{places}f}"
    lon = f"{rng.uniform(-180, 180):.{places}f}"
    return f"{lat}{rng.choice([',', ', ', ' '])}{lon}"


GENERATORS = {
    "email": _email,
    "phone": _phone,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "mac": _mac,
    "advertising_id_or_uuid": _uuid,
    "imei": _imei,
    "card_number": _card,
    "lat_lon": _lat_lon,
}
TEMPLATES = ["{}", "contact {} please", "user wrote: {} (support)", "note={};", "[{}]"]


def _clean_value(rng: random.Random) -> str:
    moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 30_000_000))
    kinds = [
        lambda: rng.choice(["checkout", "home", "search", "settings", "onboarding", "cart"]),
        lambda: rng.choice(["/orders/list", "/orders/detail", "/account/settings"]),
        lambda: f"/product/{rng.randint(1, 99999)}/reviews",
        lambda: f"{rng.randint(1, 12)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}",
        lambda: (
            f"v{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-rc.{rng.randint(1, 9)}"
        ),
        lambda: f"1.{rng.randint(0, 9)}.{rng.randint(0, 9)}-beta.1+build.{rng.randint(1, 999)}",
        lambda: moment.isoformat(),
        lambda: moment.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        lambda: moment.strftime("%Y-%m-%d %H:%M:%S"),
        lambda: moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z"),
        lambda: moment.date().isoformat(),
        lambda: str(int(moment.timestamp())),
        lambda: str(int(moment.timestamp() * 1000)),
        lambda: f"{rng.random():.4f}",
        lambda: f"{rng.uniform(0, 1000):.6f}",
        lambda: f"{rng.random():.4f}, {rng.random():.4f}",  # normalised tap coordinates
        lambda: str(rng.randint(0, 1_000_000)),
        lambda: f"#{rng.getrandbits(24):06x}",
        lambda: str(rng.randint(10_000, 99_999)),
        lambda: f"SKU-{rng.randint(1000, 9999)}-{rng.choice(['XY', 'AB', 'QZ'])}",
        lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        lambda: rng.choice(["Add to cart", "Pay now", "tap", "rage_tap", "long_press"]),
        lambda: f"u{rng.randint(0, 9_999_999):07d}",
        lambda: f"s{rng.randint(0, 9_999_999_999):010d}",
        lambda: f"{rng.getrandbits(256):064x}",
        lambda: f"{rng.randint(1, 500)} items, total {rng.uniform(1, 999):.2f} EUR",
    ]
    return rng.choice(kinds)()


@pytest.fixture(scope="module")
def injected() -> tuple[pl.DataFrame, list[tuple[str, str, str, str]]]:
    """A frame of three text columns, with PER_KIND values of each kind spread over
    them in varied sentences among clean rows; and (kind, value, text, column) per value."""
    rng = random.Random(7)
    columns = ["message", "note", "payload"]
    rows = {
        c: [_clean_value(rng) for _ in range(PER_KIND * len(GENERATORS) + 2000)] for c in columns
    }
    slots = rng.sample(range(len(rows["message"])), PER_KIND * len(GENERATORS))
    placed = []
    for i, (kind, make) in enumerate(
        (kind, make) for kind, make in GENERATORS.items() for _ in range(PER_KIND)
    ):
        value = make(rng)
        text = rng.choice(TEMPLATES).format(value)
        column = rng.choice(columns)
        rows[column][slots[i]] = text
        placed.append((kind, value, text, column))
    return pl.DataFrame(rows), placed


@pytest.fixture(scope="module")
def clean_values() -> list[str]:
    rng = random.Random(11)
    return [_clean_value(rng) for _ in range(6000)]


# ----------------------------------------------------------------------------------------
# Recall and false positives.


def test_value_detector_recall_per_kind(injected):
    _, placed = injected
    for kind in VALUE_KINDS:
        texts = [text for k, _, text, _ in placed if k == kind]
        recall = np.mean([kind in detect_value(text) for text in texts])
        bare = np.mean([kind in detect_value(value) for k, value, _, _ in placed if k == kind])
        assert len(texts) >= PER_KIND
        assert recall >= 0.95, (kind, recall)
        assert bare >= 0.95, (kind, bare)


def test_scan_frame_recall_per_kind(injected):
    frame, placed = injected
    report = scan_frame(frame, sample_rows=None)
    reported = {(f.column, f.kind) for f in report.findings if f.source == "value"}
    for kind in VALUE_KINDS:
        mine = [(text, column) for k, _, text, column in placed if k == kind]
        found = [(column, kind) in reported and kind in detect_value(text) for text, column in mine]
        assert np.mean(found) >= 0.95, kind
        hits = sum(f.hits for f in report.findings if f.kind == kind and f.source == "value")
        assert hits >= 0.95 * len(mine), (kind, hits)
    assert all(f.sampled == frame.height for f in report.findings)


def test_false_positive_rate_on_clean_values(clean_values):
    flagged = [v for v in clean_values if detect_value(v)]
    assert len(flagged) / len(clean_values) < 0.01
    report = scan_frame(pl.DataFrame({"event_detail": clean_values}), sample_rows=None)
    hits = sum(f.hits for f in report.findings)
    assert hits / len(clean_values) < 0.01


def test_demo_taps_only_flag_the_user_id_column():
    report = scan_frame(generate_taps(3000, seed=3))
    assert [(f.column, f.kind, f.source) for f in report.findings] == [
        ("user_id", "user_identifier", "name")
    ]


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("+44 20 7946 0958", {"phone"}),
        ("+1-202-555-0147", {"phone"}),
        ("(202) 555-0147", {"phone"}),
        ("call 020 7946 0958 3 times", {"phone"}),
        ("1732924800", set()),  # a plain integer is not a phone number
        ("2026-11-30 12:00:00", set()),
        ("12345678", set()),
        ("1000-2000", set()),
        ("v1.2.3.4", set()),
        ("10.0.19041.1", set()),
        ("5.3.1.0", set()),  # four single digits: an app version
        ("ip 10.0.0.1.", {"ipv4"}),
        ("::1", {"ipv6"}),
        ("id:fe80::1ff:fe23:4567:890a", {"ipv6"}),
        ("12:30:45", set()),
        ("00000000-0000-0000-0000-000000000000", set()),  # a zeroed-out IDFA
        ("00:00:00:00:00:00", set()),
        ("icon@2x.png", set()),
        ("0.4531, 0.1234", set()),  # normalised screen coordinates
        ("51.5074,-0.1278", {"lat_lon"}),
        ("51.51,-0.12", set()),  # two decimals: too coarse to be told from prices
        ("91.5074, 12.4567", {"lat_lon"}),  # lon, lat order is accepted
        ("91.5074, 181.4567", set()),
    ],
)
def test_detect_value_cases(text, kinds):
    assert detect_value(text) == kinds


# ----------------------------------------------------------------------------------------
# Luhn, cards and IMEIs.


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("79927398713", True),
        ("79927398710", False),
        ("0", True),
        ("00", True),
        ("18", True),
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("", False),
        ("4111 1111 1111 1111", False),  # digits only
        ("-18", False),
        ("\u0661\u0668", False),  # non-ASCII digits
    ],
)
def test_luhn_edge_cases(digits, valid):
    assert luhn_valid(digits) is valid


def _break_luhn(number: str) -> str:
    last = number[-1]
    return number[:-1] + str((int(last) + 1) % 10)


def test_cards_failing_luhn_are_not_cards():
    rng = random.Random(3)
    for _ in range(300):
        card = _card(rng)
        assert "card_number" in detect_value(card)
        assert "card_number" not in detect_value(_break_luhn(card))


def test_cards_need_a_known_issuer_and_length():
    assert detect_value(_with_check_digit("123456781234567")) == set()  # no brand starts 1
    assert "card_number" not in detect_value(_with_check_digit("4" + "1" * 13))  # Visa 15
    assert "card_number" not in detect_value(_with_check_digit("37" + "1" * 13))  # Amex 16
    assert detect_value("4111 1111-1111 1111") == set()  # mixed separators


def test_fifteen_digits_failing_luhn_are_not_imeis():
    rng = random.Random(4)
    for _ in range(300):
        imei = _imei(rng)
        assert "imei" in detect_value(imei)
        assert "imei" not in detect_value(_break_luhn(imei))
    assert detect_value(_with_check_digit("35" + "0" * 13)[:-1] + "1") == set()


def test_integer_columns_are_checked_for_imeis_and_cards_only():
    frame = pl.DataFrame(
        {
            "device_serial": [490154203237518, 12, None],
            "amount": [4111111111111111, 7, 8],
            "count": [1732924800, 202_555_0147, 5],
        }
    )
    found = {(f.column, f.kind, f.hits) for f in scan_frame(frame).findings}
    assert found == {("device_serial", "imei", 1), ("amount", "card_number", 1)}


# ----------------------------------------------------------------------------------------
# Names.


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("email", "email"),
        ("e_mail", "email"),
        ("userEmail", "email"),
        ("contact.e-mail", "email"),
        ("phone_number", "phone"),
        ("msisdn", "phone"),
        ("ip", "ip_address"),
        ("client_ip_address", "ip_address"),
        ("IPAddress", "ip_address"),
        ("mac", "mac"),
        ("wifi_mac_address", "mac"),
        ("idfa", "advertising_id_or_uuid"),
        ("deviceIDFA", "advertising_id_or_uuid"),
        ("gaid", "advertising_id_or_uuid"),
        ("advertising_id", "advertising_id_or_uuid"),
        ("imei", "imei"),
        ("card", "card_number"),
        ("pan", "card_number"),
        ("credit_card_number", "card_number"),
        ("lat", "lat_lon"),
        ("homeLatitude", "lat_lon"),
        ("lng", "lat_lon"),
        ("name", "person_name"),
        ("first_name", "person_name"),
        ("lastName", "person_name"),
        ("billing_address", "postal_address"),
        ("dob", "date_of_birth"),
        ("date_of_birth", "date_of_birth"),
        ("user_id", "user_identifier"),
        ("userId", "user_identifier"),
        ("screen", None),
        ("screen_name", None),
        ("pan_x", None),
        ("card_tapped", None),
        ("mac_os_version", None),
        ("latency_ms", None),
        ("platform", None),
        ("session_id", None),
        ("x", None),
    ],
)
def test_detect_name(name, kind):
    assert detect_name(name) == kind
    assert kind is None or kind in VALUE_KINDS + NAME_KINDS


def test_lat_lon_column_pairs_are_checked_by_name():
    frame = pl.DataFrame(
        {
            "home_lat": [51.5074, 48.8566, None, 95.0],
            "home_lng": [-0.1278, 2.3522, 1.0, 1.0],
            "x": [0.1, 0.2, 0.3, 0.4],
        }
    )
    findings = {(f.column, f.kind, f.source, f.hits) for f in scan_frame(frame).findings}
    assert findings == {
        ("home_lat", "lat_lon", "name", 3),
        ("home_lng", "lat_lon", "name", 4),
        ("home_lat", "lat_lon", "value", 2),
        ("home_lng", "lat_lon", "value", 2),
    }


def test_a_column_name_holding_personal_data_is_redacted():
    frame = pl.DataFrame({EMAIL: [1, 2], "screen": ["home", "cart"]})
    report = scan_frame(frame)
    assert [(f.column, f.kind, f.source) for f in report.findings] == [
        ("<column 0: name redacted>", "email", "name")
    ]
    assert EMAIL not in repr(report)


def test_uuids_in_technical_id_columns_are_not_reported():
    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(3)]
    report = scan_frame(pl.DataFrame({"run_id": ids, "device": ids}))
    assert {(f.column, f.kind) for f in report.findings} == {("device", "advertising_id_or_uuid")}


# ----------------------------------------------------------------------------------------
# Reports.


def test_report_never_contains_a_matched_value(injected):
    frame, placed = injected
    report = scan_frame(frame)
    dumped, shown = json.dumps(report.to_dict()), repr(report)
    for _, value, _, _ in placed:
        assert value not in dumped
        assert value not in shown
    examples = {f.kind: f.redacted_example for f in report.findings}
    assert examples["email"].count("*") >= 6
    assert set(examples["card_number"]) <= set("* -")


def test_report_accessors():
    report = PiiReport(
        (
            Finding("email", "email", "name", 4, 4),
            Finding("note", "phone", "value", 1, 4, "+** ** **** ****"),
            Finding("(text)", "email", "value", 1, 9, "j***@***.com", "out/index.html"),
        )
    )
    assert report.kinds() == {"email", "phone"}
    assert report.columns_with_pii() == ["email", "note", "out/index.html::(text)"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["kinds"] == ["email", "phone"]
    assert data["findings"][2]["file"] == "out/index.html"


def test_sampling_is_seeded_and_bounded(injected):
    frame, _ = injected
    first, again = scan_frame(frame, 1000, seed=5), scan_frame(frame.lazy(), 1000, seed=5)
    assert first == scan_frame(frame, 1000, seed=5)
    assert all(f.sampled == 1000 for f in first.findings + again.findings)
    assert first.kinds() == again.kinds() == set(VALUE_KINDS)


@pytest.mark.parametrize("rows", [0, -3, True])
def test_sample_rows_must_be_positive(rows):
    with pytest.raises(ValueError, match=f"sample_rows must be a positive .*, got {rows!r}"):
        scan_frame(pl.DataFrame({"a": ["x"]}), rows)


def _report(*kinds: str) -> PiiReport:
    return PiiReport(tuple(Finding("c", k, "value", 1, 1) for k in kinds))


@pytest.mark.parametrize(
    ("seen", "kept", "score"),
    [
        ((), (), 1.0),
        (("email", "phone"), (), 1.0),
        (("email", "phone"), ("phone",), 0.5),
        (("email", "ipv4"), ("ipv6",), 0.5),  # one kind: ip_address
        (("email",), ("email",), 0.0),
        ((), ("phone",), 0.0),
        (("email", "phone", "imei"), ("mac",), 0.75),
    ],
)
def test_anonymisation_effectiveness(seen, kept, score):
    assert anonymisation_effectiveness(_report(*seen), _report(*kept)) == score
    assert _report(*seen).effectiveness(_report(*kept)) == score


# ----------------------------------------------------------------------------------------
# Inputs and outputs.


def test_scan_input_reads_every_file_as_text(tmp_path):
    (tmp_path / "day=2026-11-01").mkdir()
    pl.DataFrame({"screen": ["home"] * 3, "device_imei": ["490154203237518", "1", "2"]}).write_csv(
        tmp_path / "day=2026-11-01" / "a.csv"
    )
    (tmp_path / "b.ndjson").write_text(
        json.dumps({"screen": "cart", "comment": f"mail {EMAIL}"}) + "\n"
    )
    pl.DataFrame({"screen": ["home"], "ip": ["192.168.10.12"]}).write_parquet(
        tmp_path / "c.parquet"
    )
    report = scan_input(tmp_path, sample_rows=100)
    found = {(f.column, f.kind, f.source) for f in report.findings}
    assert found == {
        ("device_imei", "imei", "name"),
        ("device_imei", "imei", "value"),
        ("comment", "email", "value"),
        ("ip", "ip_address", "name"),
        ("ip", "ipv4", "value"),
    }
    assert scan_input(str(tmp_path / "*.parquet")).kinds() == {"ip_address", "ipv4"}


def test_scan_input_spreads_the_sample_over_files(tmp_path):
    for name, rows in (("a", 300), ("b", 100)):
        emails = [f"user{i}@example.com" for i in range(rows)]
        pl.DataFrame({"email": emails}).write_parquet(tmp_path / f"{name}.parquet")
    report = scan_input(tmp_path, sample_rows=100, seed=1)
    assert {(f.source, f.hits, f.sampled) for f in report.findings} == {
        ("name", 100, 100),
        ("value", 100, 100),
    }
    assert report == scan_input(tmp_path, sample_rows=100, seed=1)
    with pytest.raises(HeatengineError, match="input not found"):
        scan_input(tmp_path / "missing.parquet")


def _write_outputs(directory: Path, text: str) -> None:
    directory.mkdir()
    pl.DataFrame({"screen": ["home", "cart"], "label": ["ok", text]}).write_parquet(
        directory / "cells.parquet"
    )
    (directory / "manifest.json").write_text(json.dumps({"layers": [{"title": ["a", text]}]}))
    (directory / "index.html").write_text(f"<html><body><p>{text}</p></body></html>")
    np.savez(directory / "grids.npz", home=np.zeros((2, 2)), labels=np.array(["x", text]))
    info = PngInfo()
    info.add_text("Comment", text)
    Image.new("RGB", (4, 4)).save(directory / "home.png", pnginfo=info)


def test_scan_outputs_flags_every_file_holding_an_email(tmp_path):
    _write_outputs(tmp_path / "leaky", f"contact {EMAIL}")
    _write_outputs(tmp_path / "clean", "checkout 2.10.3 0.4531")
    report = scan_outputs(tmp_path / "leaky")
    flagged = {Path(f.file).name for f in report.findings if f.kind == "email"}
    assert flagged == {"cells.parquet", "manifest.json", "index.html", "grids.npz", "home.png"}
    assert report.kinds() == {"email"}
    assert EMAIL not in json.dumps(report.to_dict()) + repr(report)
    assert scan_outputs([tmp_path / "clean"]) == PiiReport()


def test_scan_outputs_names_text_and_skips(tmp_path):
    np.savez(tmp_path / "grids.npz", **{EMAIL: np.zeros(2)})
    (tmp_path / f"{EMAIL}.log").write_text("nothing here\n")
    (tmp_path / "audit.jsonl").write_text(
        json.dumps({"run_id": str(uuid.uuid4()), "actor": "root"}) + "\nnot json +1-202-555-0147\n"
    )
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" + EMAIL.encode())
    report = scan_outputs(tmp_path)
    found = {(Path(f.file).name, f.column, f.kind) for f in report.findings}
    assert found == {
        ("grids.npz", "(array names)", "email"),  # the name holds an email
        ("grids.npz", "<column 0: name redacted>", "email"),  # and has the word "mail"
        ("<file 3: name redacted>", "(file name)", "email"),
        ("audit.jsonl", "(text)", "phone"),  # not the run id under "run_id"
    }
    assert report.skipped == (str(tmp_path / "blob.bin"),)
    assert EMAIL not in repr(report)


def test_scan_outputs_of_a_missing_path():
    with pytest.raises(HeatengineError, match="output path not found: 'no/such/dir'"):
        scan_outputs("no/such/dir")


def test_leaked_values_finds_raw_ids_even_when_compressed(tmp_path):
    present, absent = "u3654583", "u7167501"
    pl.DataFrame({"user_id": [present] * 3 + ["u0000001"]}).write_parquet(
        tmp_path / "cells.parquet", compression="zstd"
    )
    np.savez_compressed(tmp_path / "grids.npz", ids=np.array([present]))
    (tmp_path / "manifest.json").write_text(json.dumps({"note": f"by {present}!"}))
    (tmp_path / "clean.json").write_text(json.dumps({"note": "u36545830"[1:]}))
    others = {f"u{i:07d}" for i in range(2, 3000)}  # many values: the vectorised search
    leaks = leaked_values(tmp_path, {present, absent, "", *others})
    assert [p.name for p, _ in leaks] == ["cells.parquet", "grids.npz", "manifest.json"]
    counts = {p.name: n for p, n in leaks}
    # Three rows, and the raw bytes may hold more copies (column statistics).
    assert counts["cells.parquet"] >= 3
    # Deflated UTF-32 in the raw bytes: only the decoded array shows the id.
    assert present.encode() not in (tmp_path / "grids.npz").read_bytes()
    assert counts["grids.npz"] == counts["manifest.json"] == 1
    assert leaked_values(tmp_path, {absent}) == []
    assert leaked_values(tmp_path / "manifest.json", {"by u3"}) == [(tmp_path / "manifest.json", 1)]


def test_uuids_are_never_taken_for_phone_numbers():
    rng = np.random.default_rng(11)
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(5000)]
    assert all(detect_value(u) == {"advertising_id_or_uuid"} for u in ids)
    assert scan_frame(pl.DataFrame({"note": ids})).kinds() == {"advertising_id_or_uuid"}
