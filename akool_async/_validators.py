"""The attrs validators the configuration classes share (``Timeout``, ``PollConfig``...).

Each raises ``ValidationError`` naming the field, before anything is sent; ``bool`` is never
taken for a number. The factories name what they accept: ``integer_at_least(0)`` is a count
that may be zero, ``integer_at_least(1)`` one that may not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from ._errors import ValidationError

__all__ = [
    "finite_number_at_least",
    "finite_positive_number",
    "integer_at_least",
    "number_at_least",
    "or_none",
    "positive_or_none",
    "require_integer_at_least",
]

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


def require_integer_at_least(value: object, minimum: int, field: str) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) >= ``minimum``, else ValidationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"must be an integer >= {minimum}, got {value!r}", field=field)
    return value


def integer_at_least(minimum: int) -> Validator:
    """A validator: an ``int`` (not a ``bool``) >= ``minimum``."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        require_integer_at_least(value, minimum, attribute.name)

    return check


def finite_number_at_least(minimum: int) -> Validator:
    """A validator: a finite number (``int`` or ``float``) >= ``minimum``."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < minimum
        ):
            raise ValidationError(
                f"must be a finite number >= {minimum}, got {value!r}", field=attribute.name
            )

    return check


def number_at_least(minimum: int) -> Validator:
    """A validator: a number (``int`` or ``float``) >= ``minimum``; infinity passes."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
            raise ValidationError(f"must be >= {minimum}, got {value!r}", field=attribute.name)

    return check


def finite_positive_number() -> Validator:
    """A validator: a finite number (``int`` or ``float``) > 0."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValidationError(f"must be a positive number, got {value!r}", field=attribute.name)
        if not math.isfinite(value):
            raise ValidationError(f"must be finite, got {value!r}", field=attribute.name)

    return check


def or_none(validator: Validator) -> Validator:
    """A validator: None, or whatever ``validator`` accepts."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check
