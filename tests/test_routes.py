"""Screen-name cleaning: documented examples, properties, and scalar against Polars."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatengine.routes import clean_route, clean_routes

EXAMPLES = [
    ("/u/jane@x.com/orders/12345", "/u/{email}/orders/{id}"),
    ("/orders/12345?ref=mail#top", "/orders/{id}"),
    ("https://shop.example.com/p/9f8e7d6c-1a2b-4c3d-8e9f-001122334455", "/p/{uuid}"),
    ("checkout", "checkout"),
    ("Home Screen", "Home Screen"),
    ("/search/", "/search/"),
    ("/v2/items", "/v2/items"),
    ("/users/+4915112345678/profile", "/users/{phone}/profile"),
    # scheme and host
    ("HTTPS://user:pw@shop.example.com:8443/cart", "/cart"),
    ("https://shop.example.com", "/"),
    ("http://shop.example.com?q=jane", "/"),
    ("myapp://orders/7?from=push", "/orders/{id}"),
    # query and fragment
    ("/search?q=jane+doe", "/search"),
    ("#/inbox", ""),
    ("Step #2", "Step #2"),
    ("What's new?", "What's new"),
    # e-mail, uuid, ip, phone, token
    ("mailto:jane.doe+shop@mail.example.co.uk", "mailto:{email}"),
    ("/u/jane%40x.com", "/u/{email}"),
    ("/files/9F8E7D6C-1A2B-4C3D-8E9F-001122334455.pdf", "/files/{uuid}.pdf"),
    ("/admin/10.0.0.12/logs", "/admin/{ip}/logs"),
    ("Call +1 (555) 123-4567", "Call {phone}"),
    ("/reset/3q2-9a8b7c6d5e4f3a2b1c", "/reset/{token}"),
    ("/s/eyJhbGciOiJIUzI1NiJ9_abc", "/s/{token}"),
    ("/settings/notifications-and-privacy", "/settings/notifications-and-privacy"),
    ("/k/ab12cd34ef56gh7", "/k/ab12cd34ef56gh7"),  # 15 characters: not a token
    # ids
    ("/day/2024-05-01/slot/7", "/day/{id}/slot/{id}"),
    ("/price/1,250.00", "/price/{id}"),
    ("/orders/12345/", "/orders/{id}/"),
    ("/orders//12", "/orders//{id}"),
    ("Level 3", "Level 3"),
    ("order1234567", "order{id}"),
    ("Receipt 20240501 ready", "Receipt {id} ready"),
    ("/ab12345", "/ab12345"),
    ("", ""),
]


@pytest.mark.parametrize(("name", "expected"), EXAMPLES)
def test_documented_examples(name, expected):
    assert clean_route(name) == expected


def test_documented_examples_vectorised():
    names = pl.Series("screen", [name for name, _ in EXAMPLES])
    cleaned = clean_routes(names)
    assert cleaned.name == "screen"
    assert cleaned.dtype == pl.String
    assert cleaned.to_list() == [expected for _, expected in EXAMPLES]


FRAGMENTS = [
    "/", "/", "?", "#", "@", "%40", ".", "-", "_", "+", " ", ":", "(", ")", "{", "}",
    "http://", "https://", "app://", "jane", "x.com", "a", "Z", "v2", "7", "12", "999",
    "12345", "123456", "0", "+49", "192.168.0.1", "1.2.3", "9f8e7d6c-1a2b-4c3d-8e9f-001122334455",
    "deadbeef", "cafe", "0123456789", "abcdefgh", "\n", "\t", "é", "٣", "{id}", "{email}",
]  # fmt: skip
#: Names built from pieces that the rules react to, so examples hit the rules often.
route_like = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)
any_name = st.one_of(route_like, st.text(max_size=40))

CONVENTIONAL_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
SIX_DIGITS = re.compile(r"[0-9]{6}")


@given(any_name)
def test_cleaning_is_idempotent(name):
    once = clean_route(name)
    assert clean_route(once) == once


@given(any_name)
def test_output_holds_no_email_and_no_long_number(name):
    cleaned = clean_route(name)
    assert CONVENTIONAL_EMAIL.search(cleaned) is None
    assert SIX_DIGITS.search(cleaned) is None


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_/ ", max_size=40))
def test_clean_names_are_unchanged(name):
    assert clean_route(name) == name


@given(st.lists(st.one_of(st.none(), any_name), max_size=12))
def test_vectorised_equals_scalar(names):
    cleaned = clean_routes(pl.Series("screen", names, dtype=pl.String)).to_list()
    assert cleaned == [None if name is None else clean_route(name) for name in names]


def test_categorical_and_all_null_columns():
    names = pl.Series("screen", ["/a/1", "/a/2", "/a/1"], dtype=pl.Categorical)
    assert clean_routes(names).to_list() == ["/a/{id}"] * 3
    assert clean_routes(pl.Series("screen", [None, None])).to_list() == [None, None]
    assert clean_routes(pl.Series("screen", [], dtype=pl.String)).len() == 0


def test_non_text_is_refused():
    with pytest.raises(TypeError, match=r"column 'screen' has type Int64, expected text"):
        clean_routes(pl.Series("screen", [1, 2]))
    with pytest.raises(TypeError, match=r"a screen name must be a string, got int 5"):
        clean_route(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "expected"), [("42", "42"), ("/orders/42", "/orders/{id}")])
def test_a_bare_short_number_names_a_screen(name, expected):
    assert clean_route(name) == expected
    assert clean_routes(pl.Series([name])).to_list() == [expected]


def test_routes_with_personal_data_become_one_layer():
    from heatengine.pipeline import aggregate
    from tests.factory import KEY, small_config, taps_frame

    rows = [
        {"screen": f"/u/user{i}@example.com/orders/{1000 + i}", "user_id": f"u{i}"}
        for i in range(6)
    ]
    result = aggregate(taps_frame(rows), small_config(k=5), key=KEY)
    assert result.layers["screen"].to_list() == ["/u/{email}/orders/{id}"]
    assert result.stats.screens_renamed == 6
    assert "example.com" not in result.cells.write_csv()
