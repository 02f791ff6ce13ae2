"""Keyed pseudonyms: HMAC-SHA256 of each distinct raw user id.

Only distinct identifiers are hashed (a few hundred thousand), never rows; the caller
joins the tokens back. A token is the first 8 bytes of the HMAC, big-endian, as uint64:
within a run the chance that two of a million users share one is about 3e-8.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import numpy as np
import polars as pl

from heatengine.errors import HeatengineError
from heatengine.hmac_tokens import hmac_sha256_prefixes

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

    __slots__ = ("_pads", "_secret")

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
        # HMAC's padded key blocks (RFC 2104), for the token kernel.
        block = self._secret
        if len(block) > SHA256_BLOCK:  # long keys are hashed first
            block = hashlib.sha256(block).digest()
        block = np.frombuffer(block.ljust(SHA256_BLOCK, b"\0"), np.uint8)
        self._pads = (block ^ np.uint8(0x36), block ^ np.uint8(0x5C))

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
        """HMAC-SHA256 of ``message`` under this key (32 bytes), as :func:`hmac_sha256`."""
        return hmac_sha256(self._secret, message)

    def token_prefixes(self, data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The first 8 bytes, big-endian, of :meth:`digest` of each message, computed in
        parallel (:func:`heatengine.hmac_tokens.hmac_sha256_prefixes`).

        Message ``i`` is ``data[offsets[i]:offsets[i + 1]]`` (``data`` uint8, ``offsets``
        int64, never decreasing, within ``data``).

        Raises
        ------
        ValueError
            The arrays have other types, or the offsets do not describe slices of ``data``.
        """
        data, offsets = np.asarray(data), np.asarray(offsets)
        if data.dtype != np.uint8 or data.ndim != 1 or offsets.dtype != np.int64:
            msg = "data must be a one-dimensional uint8 array and offsets an int64 array"
            raise ValueError(msg)
        within = offsets.size > 0 and offsets[0] >= 0 and offsets[-1] <= data.size
        if offsets.ndim != 1 or not within or np.any(np.diff(offsets) < 0):
            msg = (
                "offsets must hold at least one value, never decrease and lie within the "
                f"{data.size:,} bytes of data"
            )
            raise ValueError(msg)
        return hmac_sha256_prefixes(*self._pads, data, np.ascontiguousarray(offsets))

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
    text = ids.cast(pl.String)
    data = np.frombuffer(b"".join(text.cast(pl.Binary).to_list()), np.uint8)
    offsets = np.zeros(text.len() + 1, np.int64)
    np.cumsum(text.str.len_bytes().to_numpy(), out=offsets[1:])
    return key.token_prefixes(data, offsets)  # a token is a digest's first 8 bytes


def tokens_from_text(tokens: pl.Series) -> np.ndarray:
    """uint64 tokens for distinct caller-made pseudonyms given as text (no key needed)."""
    values = tokens.to_list()
    out = np.empty(len(values), np.uint64)
    for i, text in enumerate(values):
        out[i] = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    return out
