"""Screen names from URLs and routes, without personal data or one layer per user.

Apps often name a screen after its route, and routes carry whatever identifies the thing
on screen: ``/u/jane@x.com/orders/12345``. Published as is, such a name leaks personal
data in the layer table, and every user gets a layer of their own whose cells never
reach ``k``. :func:`clean_routes` rewrites the variable parts into placeholders,
so ``/u/{email}/orders/{id}`` is one layer that many users share.

Rules, applied in this order (patterns are ASCII-only, so ``[0-9]`` means the ten
ASCII digits and ``[A-Za-z]`` the 52 ASCII letters):

1. **Scheme and host.** ``http://`` and ``https://`` URLs (any case) lose the scheme and
   the host (with any ``user:password@`` and port) and keep the path, so the name never
   starts without a slash: ``https://shop.example.com/p/1`` is ``/p/1`` and a bare
   ``https://shop.example.com`` is ``/``. Hosts vary by environment, CDN and tenant
   (``jane.example.com``) while the screen does not. Other schemes are app deep links,
   whose "host" is the first part of the route, so only ``scheme://`` goes and the rest
   becomes the path: ``myapp://orders/7`` is ``/orders/7``.
2. **Query string and fragment.** A ``?`` or ``#`` that starts the name or follows a
   character other than ASCII whitespace (space, tab, newline, return, form feed,
   vertical tab) cuts the name there: its values are ids or terms the user typed, and
   its keys are not needed to tell screens apart. A ``?`` or ``#`` after whitespace is
   title text (``Step #2``) and stays, as unescaped whitespace never occurs in a URL.
3. **E-mail addresses**, ``LOCAL@DOMAIN.TLD`` (also with ``@`` written ``%40``), where
   the three parts are runs of characters other than whitespace and
   ``@ / : ; , < > ( ) [ ] { } " ' ? # \\``: ``{email}``.
4. **UUIDs**, 8-4-4-4-12 hex digits of either case: ``{uuid}``.
5. **IPv4 addresses**, four groups of 1 to 3 digits joined by dots: ``{ip}``.
6. **Phone numbers**: ``+`` and 7 to 15 digits, where up to two of the separators
   ``space . ( ) -`` may stand between consecutive digits: ``{phone}``.
7. **Tokens**: a maximal run of 16 or more ``[A-Za-z0-9_-]`` characters that holds at
   least one digit and one letter (hex ids, base64url keys, session ids): ``{token}``.
   Long slugs that contain a number (``summer-sale-2024-collection``) are tokens too.
8. **Numeric path segments**: in a name with a ``/``, a segment made of digits,
   optionally in groups joined by one of ``space . , : _ -`` (``12345``, ``2024-05-01``,
   ``1,250``): ``{id}``. A name without ``/`` that is a short number (``42``) names a
   screen and stays; short numbers inside other text stay (``v2``, ``Level 3``).
9. **Long digit runs**: any remaining run of 6 or more digits (``order1234567``,
   a number in a title): ``{id}``.

Everything else is kept as given: case, spaces, trailing slashes and names that are not
routes at all (``Home Screen``). Cleaning is idempotent, and names the rules do not touch
come back unchanged. Ids of fewer than six digits inside a segment (``ab12345``) and
e-mail addresses or numbers in other scripts or other digit sets are not recognised.

Only the distinct names of a column are worth cleaning: a few hundred values, not
millions of rows. :func:`clean_route` is the same rules for one name, in plain Python.
"""

from __future__ import annotations

import re

import polars as pl

__all__ = ["clean_route", "clean_routes"]

EMAIL = "{email}"
UUID = "{uuid}"
IP = "{ip}"
PHONE = "{phone}"
TOKEN = "{token}"
ID = "{id}"

# Every pattern below means the same in Python's ``re`` and in Rust's ``regex`` (which
# Polars uses): ASCII classes only, no lookaround, no case-insensitive flag, no ``$``.
_HTTP = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]*/?"
_SCHEME = r"^[A-Za-z][A-Za-z0-9+.\-]*://"
_QUERY = r"(?s)(^|[^ \t\n\r\f\v])[?#].*"
_EMAIL_CHAR = r"[^@/:;,<>()\[\]{}\"'?#\\ \t\n\r\f\v]"
_EMAIL = rf"{_EMAIL_CHAR}+(?:@|%40){_EMAIL_CHAR}+\.{_EMAIL_CHAR}+"
_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_IP = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
_PHONE = r"\+[0-9](?:[ .()\-]{0,2}[0-9]){6,14}"
_RUN = r"[A-Za-z0-9_\-]+"
_PIECE = rf"{_RUN}|[^A-Za-z0-9_\-]+"
_TOKEN_LENGTH = 16
_DIGIT = r"[0-9]"
_LETTER = r"[A-Za-z]"
_NUMERIC_SEGMENT = r"[0-9]+(?:[ .,:_\-][0-9]+)*"
_DIGIT_RUN = r"[0-9]{6,}"

#: Substring rules 3 to 6, in order: (pattern, placeholder).
_REPLACEMENTS = ((_EMAIL, EMAIL), (_UUID, UUID), (_IP, IP), (_PHONE, PHONE))

_COMPILED = {
    pattern: re.compile(pattern)
    for pattern in (
        *(_HTTP, _SCHEME, _QUERY, _RUN, _DIGIT, _LETTER, _NUMERIC_SEGMENT, _DIGIT_RUN),
        *(pattern for pattern, _ in _REPLACEMENTS),
    )
}


def clean_route(name: str) -> str:
    """One screen name with personal data and ids replaced by placeholders.

    The rules are listed in the module documentation (:mod:`heatengine.routes`);
    :func:`clean_routes` applies the same rules to a column.

    Parameters
    ----------
    name
        A screen name, a route or a URL.

    Returns
    -------
    str
        The name with e-mail addresses, UUIDs, IPv4 addresses, phone numbers, tokens and
        numeric ids replaced, and without scheme, host, query string and fragment.

    Raises
    ------
    TypeError
        ``name`` is not a string.

    Examples
    --------
    >>> clean_route("/u/jane@x.com/orders/12345")
    '/u/{email}/orders/{id}'
    >>> clean_route("https://shop.example.com/p/9f8e7d6c-1a2b-4c3d-8e9f-001122334455?ref=mail")
    '/p/{uuid}'
    >>> clean_route("/users/+4915112345678/profile")
    '/users/{phone}/profile'
    >>> clean_route("Home Screen")
    'Home Screen'
    """
    if not isinstance(name, str):
        msg = f"a screen name must be a string, got {type(name).__name__} {name!r}"
        raise TypeError(msg)
    text = _COMPILED[_HTTP].sub("/", name, count=1)
    text = _COMPILED[_SCHEME].sub("/", text, count=1)
    text = _COMPILED[_QUERY].sub(r"\g<1>", text, count=1)
    for pattern, placeholder in _REPLACEMENTS:
        text = _COMPILED[pattern].sub(placeholder, text)
    text = _COMPILED[_RUN].sub(_token_or_run, text)
    if "/" in text:  # a bare short number names a screen, not a record in a path
        text = "/".join(
            ID if _COMPILED[_NUMERIC_SEGMENT].fullmatch(segment) else segment
            for segment in text.split("/")
        )
    return _COMPILED[_DIGIT_RUN].sub(ID, text)


def _token_or_run(match: re.Match[str]) -> str:
    run = match.group()
    is_token = (
        len(run) >= _TOKEN_LENGTH
        and _COMPILED[_DIGIT].search(run) is not None
        and _COMPILED[_LETTER].search(run) is not None
    )
    return TOKEN if is_token else run


def clean_routes(values: pl.Series) -> pl.Series:
    """A column of screen names cleaned by Polars string expressions.

    Equal to :func:`clean_route` on every value, nulls stay null. Meant for the distinct
    names of a column (see :func:`heatengine.layers.distinct_codes`), not for every row.

    Parameters
    ----------
    values
        Screen names as text (``String``, ``Categorical`` or ``Enum``; an all-null
        column of type ``Null`` is accepted too).

    Returns
    -------
    pl.Series
        ``String`` values of the same name and length.

    Raises
    ------
    TypeError
        The column does not hold text.

    Examples
    --------
    >>> names = pl.Series("screen", ["/orders/12345?ref=mail#top", "/v2/items", None])
    >>> clean_routes(names).to_list()
    ['/orders/{id}', '/v2/items', None]
    """
    dtype = values.dtype
    if not (dtype in (pl.String, pl.Categorical, pl.Null) or isinstance(dtype, pl.Enum)):
        msg = f"column {values.name!r} has type {dtype}, expected text screen names"
        raise TypeError(msg)
    column = pl.col(values.name)
    return values.cast(pl.String).to_frame().select(_clean(column)).to_series()


def _clean(text: pl.Expr) -> pl.Expr:
    text = text.str.replace(_HTTP, "/").str.replace(_SCHEME, "/").str.replace(_QUERY, "${1}")
    for pattern, placeholder in _REPLACEMENTS:
        text = text.str.replace_all(pattern, placeholder)
    piece = pl.element()
    is_token = (
        (piece.str.len_chars() >= _TOKEN_LENGTH)
        & piece.str.contains(_DIGIT)
        & piece.str.contains(_LETTER)
    )
    text = (
        text.str.extract_all(_PIECE)
        .list.eval(pl.when(is_token).then(pl.lit(TOKEN)).otherwise(piece))
        .list.join("")
    )
    numeric = piece.str.contains(f"^{_NUMERIC_SEGMENT}$")
    by_segment = (
        text.str.split("/")
        .list.eval(pl.when(numeric).then(pl.lit(ID)).otherwise(piece))
        .list.join("/")
    )
    text = pl.when(text.str.contains("/", literal=True)).then(by_segment).otherwise(text)
    return text.str.replace_all(_DIGIT_RUN, ID)
