"""HMAC-SHA256 token prefixes of many short messages at once, in parallel.

Python's ``hashlib`` holds the GIL for short messages and costs about 0.6 µs of
interpreter work per id; with 200,000 distinct ids that was a third of a raw-id run.
This kernel computes the same HMAC (RFC 2104 over FIPS 180-4 SHA-256) in Numba over a
flat byte buffer, several threads at once. It returns only what a token needs: the
first 8 bytes of each digest, big-endian. :mod:`heatengine.pseudonym` checks it
against ``hashlib`` in the tests, RFC 4231's vectors included.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from heatengine.config import NJIT, NJIT_PARALLEL
from heatengine.kernels import chunk_bounds

_MASK = np.uint64(0xFFFFFFFF)
# SHA-256's initial hash value and round constants (FIPS 180-4, 5.3.3 and 4.2.2).
_IV = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
     0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19],
    np.uint64,
)  # fmt: skip
_K = np.array(
    [0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
     0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
     0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
     0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
     0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
     0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
     0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
     0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
     0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
     0xC67178F2],
    np.uint64,
)  # fmt: skip


@njit(**NJIT)
def _rotr(x, n):
    """Rotate a 32-bit word (held in a uint64) right by ``n``."""
    return ((x >> np.uint64(n)) | (x << np.uint64(32 - n))) & _MASK


@njit(**NJIT)
def _compress(state, w):
    """One SHA-256 block: ``w[:16]`` holds the block's big-endian words; ``w`` (64
    words) is the message schedule's scratch. ``state`` (8 words) is updated in place.

    Words are 32-bit values kept in uint64, masked after every addition: Numba widens
    small unsigned integers, and the mask keeps the arithmetic modulo 2**32.
    """
    for t in range(16, 64):
        s0 = _rotr(w[t - 15], 7) ^ _rotr(w[t - 15], 18) ^ (w[t - 15] >> np.uint64(3))
        s1 = _rotr(w[t - 2], 17) ^ _rotr(w[t - 2], 19) ^ (w[t - 2] >> np.uint64(10))
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _MASK
    a, b, c, d = state[0], state[1], state[2], state[3]
    e, f, g, h = state[4], state[5], state[6], state[7]
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        choose = (e & f) ^ ((e ^ _MASK) & g)
        t1 = (h + s1 + choose + _K[t] + w[t]) & _MASK
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        majority = (a & b) ^ (a & c) ^ (b & c)
        t2 = (s0 + majority) & _MASK
        h, g, f, e = g, f, e, (d + t1) & _MASK
        d, c, b, a = c, b, a, (t1 + t2) & _MASK
    state[0] = (state[0] + a) & _MASK
    state[1] = (state[1] + b) & _MASK
    state[2] = (state[2] + c) & _MASK
    state[3] = (state[3] + d) & _MASK
    state[4] = (state[4] + e) & _MASK
    state[5] = (state[5] + f) & _MASK
    state[6] = (state[6] + g) & _MASK
    state[7] = (state[7] + h) & _MASK


@njit(**NJIT)
def _load_words(data, start, w):
    """``w[:16]`` = the 64 bytes of ``data`` from ``start``, as big-endian words."""
    for t in range(16):
        i = start + 4 * t
        w[t] = (
            (np.uint64(data[i]) << np.uint64(24))
            | (np.uint64(data[i + 1]) << np.uint64(16))
            | (np.uint64(data[i + 2]) << np.uint64(8))
            | np.uint64(data[i + 3])
        )


@njit(**NJIT)
def _state_after(block):
    """SHA-256 state after one 64-byte block from the initial value."""
    state = _IV.copy()
    w = np.empty(64, np.uint64)
    _load_words(block, 0, w)
    _compress(state, w)
    return state


@njit(**NJIT_PARALLEL)
def hmac_sha256_prefixes(
    inner_pad: np.ndarray, outer_pad: np.ndarray, data: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """First 8 bytes, big-endian, of HMAC-SHA256 of each message.

    Parameters
    ----------
    inner_pad, outer_pad : uint8 arrays of 64 bytes
        The padded key XOR 0x36 and XOR 0x5C (RFC 2104).
    data : uint8 array
        The messages, one after another.
    offsets : int64 array
        Message ``i`` is ``data[offsets[i]:offsets[i + 1]]``.

    Returns
    -------
    uint64 array, one per message.
    """
    inner_start, outer_start = _state_after(inner_pad), _state_after(outer_pad)
    n = offsets.size - 1
    out = np.empty(n, np.uint64)
    n_blocks = max(1, min(n, 64))
    bounds = chunk_bounds(n, n_blocks)
    for part in prange(n_blocks):
        w = np.empty(64, np.uint64)
        tail = np.empty(128, np.uint8)  # the last partial block, padding and length
        state = np.empty(8, np.uint64)
        for i in range(bounds[part], bounds[part + 1]):
            start, length = offsets[i], offsets[i + 1] - offsets[i]
            state[:] = inner_start
            whole = length // 64
            for block in range(whole):  # whole blocks straight from the data
                _load_words(data, start + 64 * block, w)
                _compress(state, w)
            rest = length - 64 * whole
            tail_size = 64 if rest + 9 <= 64 else 128
            tail[:tail_size] = 0
            tail[:rest] = data[start + 64 * whole : start + length]
            tail[rest] = 0x80
            bits = (64 + length) * 8  # the key block came first
            for j in range(8):
                tail[tail_size - 1 - j] = (bits >> (8 * j)) & 0xFF
            for block in range(0, tail_size, 64):
                _load_words(tail, block, w)
                _compress(state, w)
            # Outer hash: the 32-byte inner digest, 0x80, and the length (64 + 32) * 8.
            w[:8] = state
            w[8] = np.uint64(0x80000000)
            w[9:15] = 0
            w[15] = np.uint64((64 + 32) * 8)
            state[:] = outer_start
            _compress(state, w)
            out[i] = (state[0] << np.uint64(32)) | state[1]
    return out
