"""Input validation for the frozen config dataclasses of condensers and protocols.

Every config checks its fields when it is built (``__post_init__``), so a bad value -- from code, a
``--set FIELD=VALUE`` override or a sweep file -- fails at once with one line that names the field
and what it accepts, never after minutes of training. In the spirit of scikit-learn's parameter
validation: each field's type comes from its annotation, and a :class:`Rule` adds the range or the
choices.

>>> @dataclass(frozen=True)
... class Config:
...     rounds: int = 10
...     def __post_init__(self):
...         check_config(self, "rs2", rounds=Rule(lo=1))
>>> Config(rounds=0)                                  # doctest: +SKIP
ValueError: rs2.rounds must be an integer >= 1, got 0
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """The values a field accepts beyond its type: a closed or open interval, or a set of choices."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    nonempty: bool = False           # sequences: at least one element

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return ""

    def accepts(self, v) -> bool:
        if self.choices is not None:
            return v in self.choices
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
                return False
            if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
                return False
        return True


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1000 else f"{v:g}"


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}


def _describe_type(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe_type(a) for a in args)
    if origin is tuple:
        return f"a list of {_plural(args[0])}"
    return _TYPE_WORDS.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(tp) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(tp, _describe_type(tp))


class _Mismatch(Exception):
    pass


def _coerce(v, tp):
    """``v`` as type ``tp`` (ints widen to floats, lists become tuples), else raise _Mismatch."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(v, a)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            raise _Mismatch
        elem = args[0] if args else Any
        return tuple(_coerce(x, elem) for x in v)
    if tp is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        raise _Mismatch
    if tp in (bool, int, str, dict):
        if isinstance(v, tp) and (tp is bool or not isinstance(v, bool)):
            return v
        raise _Mismatch
    return v  # other annotations are not checked here


def check_config(obj, owner: str, **rules: Rule) -> None:
    """Check (and normalise) every field of the frozen dataclass ``obj`` against its annotation and
    ``rules[field]``; raise ``ValueError("owner.field must be ..., got ...")`` on the first bad one."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        tp = hints.get(f.name, Any)
        rule = rules.get(f.name)
        optional = typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)
        base = [a for a in typing.get_args(tp) if a is not type(None)] if optional else [tp]
        want = " or ".join(_describe_type(a) for a in base)
        if rule is not None and rule.describe():
            want = rule.describe() if rule.choices is not None else f"{want} {rule.describe()}"
        if optional:
            want += " (or null)"
        try:
            norm = _coerce(v, tp)
        except _Mismatch:
            raise ValueError(f"{owner}.{f.name} must be {want}, got {v!r}") from None
        if rule is not None and norm is not None:
            items = norm if isinstance(norm, tuple) and rule.choices is None else (norm,)
            if rule.nonempty and isinstance(norm, tuple) and not norm:
                raise ValueError(f"{owner}.{f.name} must be a non-empty list, got {v!r}")
            if not all(rule.accepts(x) for x in items):
                raise ValueError(f"{owner}.{f.name} must be {want}, got {v!r}")
        if norm is not v:
            object.__setattr__(obj, f.name, norm)


def parse_value(text: str):
    """A ``FIELD=VALUE`` override's value: JSON where it parses (``5``, ``0.1``, ``true``,
    ``["a", "b"]``, ``null``), else the plain string (then checked against the field's type)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
