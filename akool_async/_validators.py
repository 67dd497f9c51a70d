"""The attrs validators the configuration classes share (``Timeout``, ``Limits``, ``RateLimit``...).

Each raises ``ValidationError`` naming the field, before anything is sent; ``bool`` is never
taken for a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from ._errors import ValidationError

__all__ = ["integer_at_least", "positive_or_none"]

Validator = Callable[[object, "attrs.Attribute[Any]", object], None]


def positive_or_none(unit: str) -> Validator:
    """A validator: a finite number > 0 (of ``unit``, for the message), or None."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValidationError(
                f"must be a positive number of {unit} or None, got {value!r}",
                field=attribute.name,
            )

    return check


def integer_at_least(minimum: int) -> Validator:
    """A validator: an ``int`` (not a ``bool``) >= ``minimum``."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidationError(
                f"must be an integer >= {minimum}, got {value!r}", field=attribute.name
            )

    return check
