"""Errors a user can act on: the CLI prints their message as one line."""

from __future__ import annotations


class HeatengineError(ValueError):
    """Base class for input, configuration and store errors with an actionable message."""


class SchemaError(HeatengineError):
    """A required column is missing or holds values of the wrong type."""


class QuarantineError(HeatengineError):
    """Rows would be quarantined while ``strict=True`` was asked for."""


class StoreError(HeatengineError):
    """An output store is missing, incomplete or does not match its manifest."""
