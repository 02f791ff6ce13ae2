"""Keyed pseudonyms: RFC 4231 vectors, key handling, and the key never showing itself."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatengine.errors import HeatengineError
from heatengine.pseudonym import (
    KEY_ENV_VAR,
    PseudonymKey,
    hmac_sha256,
    missing_key_error,
    pseudonymise_ids,
)

LONG_KEY = b"\xaa" * 131
RFC_4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        LONG_KEY,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        LONG_KEY,
        b"This is a test using a larger than block-size key and a larger than block-size data. "
        b"The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


@pytest.mark.parametrize(("key", "message", "expected"), RFC_4231)
def test_hmac_matches_rfc_4231(key, message, expected):
    assert hmac_sha256(key, message).hex() == expected


def prefixes_of(key: PseudonymKey, messages: list[bytes]) -> list[int]:
    data = np.frombuffer(b"".join(messages), np.uint8)
    offsets = np.cumsum([0, *map(len, messages)], dtype=np.int64)
    return key.token_prefixes(data, offsets).tolist()


def test_token_kernel_and_digest_use_rfc_4231_hmac():
    for key, message, expected in RFC_4231:
        if len(key) >= 32:  # the vectors with keys a PseudonymKey accepts, 131 bytes too
            assert PseudonymKey(key).digest(message).hex() == expected
            assert prefixes_of(PseudonymKey(key), [message]) == [int(expected[:16], 16)]


# Lengths where SHA-256's padding changes: 55 bytes fit one block with the length field,
# 56 need a second; the kernel hashes the key block first, so these are message lengths.
BOUNDARY_LENGTHS = st.sampled_from([0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 128])


@given(
    st.binary(min_size=32, max_size=200),
    st.lists(st.binary(max_size=300) | BOUNDARY_LENGTHS.map(lambda n: b"\xa5" * n), max_size=40),
)
def test_token_kernel_equals_hashlib_hmac_for_any_key_and_messages(key, messages):
    expected = [int.from_bytes(hmac_sha256(key, m)[:8], "big") for m in messages]
    assert prefixes_of(PseudonymKey(key), messages) == expected


def test_token_kernel_reuses_its_scratch_across_many_messages_of_falling_length():
    # More messages than the kernel's 64 parallel blocks, longest first: each block hashes
    # several, so a longer message's padding left in the scratch would change the next.
    key = PseudonymKey(LONG_KEY)
    messages = [bytes([i % 251]) * (300 - i) for i in range(300)]
    expected = [int.from_bytes(hmac_sha256(LONG_KEY, m)[:8], "big") for m in messages]
    assert prefixes_of(key, messages) == expected


@pytest.mark.parametrize(
    ("data", "offsets"),
    [
        (np.zeros(4, np.uint8), np.array([0, 5], np.int64)),  # past the data
        (np.zeros(4, np.uint8), np.array([0, 3, 2], np.int64)),  # decreasing
        (np.zeros(4, np.uint8), np.array([-1, 2], np.int64)),  # before the data
        (np.zeros(4, np.uint8), np.array([], np.int64)),  # not even a start
        (np.zeros(4, np.int64), np.array([0, 2], np.int64)),  # not bytes
    ],
)
def test_token_kernel_refuses_offsets_that_do_not_slice_the_data(data, offsets):
    with pytest.raises(ValueError, match=r"data|offsets"):
        PseudonymKey(LONG_KEY).token_prefixes(data, offsets)


def test_tokens_are_the_first_eight_bytes_of_the_hmac_of_each_distinct_id():
    key = PseudonymKey(LONG_KEY)
    tokens = pseudonymise_ids(pl.Series(["alice", "bob"]), key)
    expected = [int.from_bytes(hmac_sha256(LONG_KEY, n)[:8], "big") for n in (b"alice", b"bob")]
    assert tokens.tolist() == expected
    # Text is hashed as UTF-8, a token per id in order, empty and non-ASCII ids too.
    ids = ["é" * 40, "", "x" * 500, "日本"]
    expected = [int.from_bytes(hmac_sha256(LONG_KEY, n.encode())[:8], "big") for n in ids]
    assert pseudonymise_ids(pl.Series(ids), key).tolist() == expected
    integer_tokens = pseudonymise_ids(pl.Series([42]), key)
    assert integer_tokens.tolist() == pseudonymise_ids(pl.Series(["42"]), key).tolist()


def test_short_keys_are_refused_with_advice():
    with pytest.raises(HeatengineError, match="at least 32 bytes"):
        PseudonymKey(b"short")


def test_missing_key_message_says_how_to_provide_one():
    message = str(missing_key_error())
    assert KEY_ENV_VAR in message
    assert "--key-file" in message
    assert "user_token" in message


def test_key_never_shows_in_repr_str_or_pickle(caplog):
    secret = b"super-secret-material-0123456789abcdef"
    key = PseudonymKey(secret)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("heatengine").info("using %s / %r", key, key)
    for text in (repr(key), str(key), f"{key}", caplog.text):
        assert secret.decode() not in text
        assert "redacted" in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_key_from_environment_and_file(monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV_VAR, "e" * 40)
    from_env = PseudonymKey.from_environment()
    assert from_env is not None
    assert from_env.digest(b"x") == hmac_sha256(b"e" * 40, b"x")
    monkeypatch.delenv(KEY_ENV_VAR)
    assert PseudonymKey.from_environment() is None
    path = tmp_path / "key"
    path.write_bytes(b"f" * 32 + b"\n")
    assert PseudonymKey.from_file(path).digest(b"x") == hmac_sha256(b"f" * 32, b"x")
    with pytest.raises(HeatengineError, match="cannot read the key file"):
        PseudonymKey.from_file(tmp_path / "absent")


def test_epoch_tells_keys_apart_without_revealing_them():
    one, two = PseudonymKey(b"a" * 32), PseudonymKey(b"b" * 32)
    assert one.epoch != two.epoch
    assert len(one.epoch) == 12
    assert one.epoch not in (b"a" * 32).hex()
