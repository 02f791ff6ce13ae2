"""Keyed pseudonyms: HMAC-SHA256 of each distinct raw user id.

Only distinct identifiers are hashed (a few hundred thousand), never rows; the caller
joins the tokens back. A token is the first 8 bytes of the HMAC, big-endian, as uint64:
within a run the chance that two of a million users share one is about 3e-8.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

from heatengine.errors import HeatengineError

KEY_ENV_VAR = "HEATENGINE_KEY"
MIN_KEY_BYTES = 32
SHA256_BLOCK = 64


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104 with SHA-256, checked against RFC 4231's test vectors)."""
    return hmac.digest(key, message, "sha256")


class PseudonymKey:
    """A secret HMAC key that never shows itself.

    The key is kept out of ``repr``, ``str``, pickles and error messages; only its
    *epoch*, a short public fingerprint, is shown so audit records can tell keys apart.

    Parameters
    ----------
    secret
        At least 32 bytes of secret material.

    Examples
    --------
    >>> key = PseudonymKey(b"k" * 32)
    >>> key
    PseudonymKey(epoch='...', secret=<redacted>)
    """

    __slots__ = ("_inner", "_outer", "_secret")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray):
            msg = "the pseudonym key must be bytes"
            raise TypeError(msg)
        if len(secret) < MIN_KEY_BYTES:
            msg = (
                f"the pseudonym key is {len(secret)} bytes long; it must be at least "
                f"{MIN_KEY_BYTES} bytes (for example: python -c "
                f'"import secrets; print(secrets.token_hex(32))")'
            )
            raise HeatengineError(msg)
        self._secret = bytes(secret)
        # HMAC's padded-key hash states, computed once: each digest then copies them
        # instead of hashing the key again (twice as fast over many distinct ids).
        block = self._secret
        if len(block) > SHA256_BLOCK:  # RFC 2104: long keys are hashed first
            block = hashlib.sha256(block).digest()
        block = block.ljust(SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    @property
    def epoch(self) -> str:
        """Public fingerprint of the key: 12 hex digits of a hash of a hash of it."""
        inner = hmac_sha256(self._secret, b"heatengine key epoch")
        return hashlib.sha256(inner).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"PseudonymKey(epoch={self.epoch!r}, secret=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> None:  # type: ignore[override]
        msg = "a PseudonymKey cannot be pickled; pass the key file or environment instead"
        raise TypeError(msg)

    def digest(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under this key (32 bytes), equal to
        :func:`hmac_sha256` (RFC 2104), from the precomputed padded-key states."""
        return self.digests([message])

    def digests(self, messages: Iterable[bytes]) -> bytes:
        """:meth:`digest` of each message, concatenated (32 bytes each): one call for
        many ids, with the per-id work kept to the hashing itself."""
        inner_state, outer_state = self._inner, self._outer
        out = bytearray()
        for message in messages:
            inner = inner_state.copy()
            inner.update(message)
            outer = outer_state.copy()
            outer.update(inner.digest())
            out += outer.digest()
        return bytes(out)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PseudonymKey:
        """Read a key file: its bytes, with one trailing newline removed."""
        file = Path(path)
        try:
            data = file.read_bytes()
        except OSError as exc:
            msg = f"cannot read the key file {str(file)!r}: {exc.strerror}"
            raise HeatengineError(msg) from None
        return cls(data.removesuffix(b"\n").removesuffix(b"\r"))

    @classmethod
    def from_environment(cls) -> PseudonymKey | None:
        """The key in ``HEATENGINE_KEY`` (its UTF-8 bytes), or ``None`` when unset."""
        value = os.environ.get(KEY_ENV_VAR)
        if not value:
            return None
        return cls(value.encode())


def missing_key_error() -> HeatengineError:
    """The error for raw user ids without a key, saying how to provide one."""
    msg = (
        "the input has raw user ids, which must be pseudonymised with a secret key: set "
        f"{KEY_ENV_VAR} to at least {MIN_KEY_BYTES} bytes of secret, pass --key-file FILE "
        "(Python: key=PseudonymKey.from_file(...)), or supply already pseudonymised ids "
        "in a user_token column"
    )
    return HeatengineError(msg)


def pseudonymise_ids(ids: pl.Series, key: PseudonymKey) -> np.ndarray:
    """uint64 tokens for distinct raw ids (strings or integers, no nulls).

    Integers are hashed as their decimal text, so ``42`` and ``"42"`` share a token.
    """
    digests = key.digests(text.encode() for text in ids.cast(pl.String).to_list())
    # A token is each digest's first 8 bytes, read big-endian.
    return np.frombuffer(digests, ">u8")[::4].astype(np.uint64)


def tokens_from_text(tokens: pl.Series) -> np.ndarray:
    """uint64 tokens for distinct caller-made pseudonyms given as text (no key needed)."""
    values = tokens.to_list()
    out = np.empty(len(values), np.uint64)
    for i, text in enumerate(values):
        out[i] = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    return out
