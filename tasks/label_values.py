"""How a label written in a manifest is read, by every command that reads one (analyze, train, labels import)."""

from __future__ import annotations

import math

from models.artifact import NEGATIVE_LABEL, POSITIVE_LABEL
from voxflow.errors import SourceError

_TRUE: frozenset[str | float] = frozenset({1.0, "true", "yes", POSITIVE_LABEL})
_FALSE: frozenset[str | float] = frozenset({0.0, "false", "no", NEGATIVE_LABEL})


def _label_key(value: object) -> str | float:
    """A label as labels are compared: a finite number by its value, other text in lower case."""
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def label_name(value: object) -> str | None:
    """``pathological`` or ``healthy`` for a label written 1/0 (1.0, true, yes...) or either name, in any case and
    spacing; None for any other value.

    Examples
    --------
    >>> label_name(" Pathological "), label_name(0), label_name("1.0"), label_name("sick")
    ('pathological', 'healthy', 'pathological', None)
    """
    key = _label_key(value)
    return POSITIVE_LABEL if key in _TRUE else NEGATIVE_LABEL if key in _FALSE else None


def binary_label(value: object, *, positive: str | None = None) -> int:
    """1 for the positive class, 0 otherwise; case is ignored and numbers compare by value.

    With ``positive``, every other value is negative (``LabelledRows.negative_labels`` says which values were).
    Without it, labels are read by :func:`label_name`.

    Raises
    ------
    SourceError
        When the value cannot be read as a binary label.

    Examples
    --------
    >>> binary_label("1.0", positive="1"), binary_label(" Pathological", positive="pathological"), binary_label("1.00")
    (1, 1, 1)
    """
    if positive is not None:
        return int(_label_key(value) == _label_key(positive))
    if (name := label_name(value)) is None:
        raise SourceError(f"label {str(value).strip()!r} is not 0/1 nor {POSITIVE_LABEL}/{NEGATIVE_LABEL}: name the positive label with --positive")
    return int(name == POSITIVE_LABEL)
