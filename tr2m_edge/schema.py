"""Strict, typed reading of JSON into the toolkit's frozen dataclasses (configs, manifests).

:func:`build` checks every field against the dataclass's type hints before the dataclass
is made: whole numbers are ``int`` (not ``1.5``, not ``true``), numbers are finite, strings
are strings, tuples have their length, nested dataclasses are read the same way, unknown
and missing fields are named. Range rules (min < max, sizes, limits) stay in each
dataclass's ``__post_init__``; their errors come back prefixed with where the value was
read. Every message names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Union

from tr2m_edge.errors import ConfigError, Tr2mError

_NAMES = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(t) for t in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin is dict:
        return "a JSON object"
    if dataclasses.is_dataclass(tp):
        return f"a {tp.__name__} object"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Mismatch(Exception):
    """A value does not have its field's type (internal: turned into the caller's error)."""


def _convert(value: Any, tp: Any, where: str, error: type[Tr2mError], labels: dict[type, str] | None) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        for member in members:
            if member is type(None):
                continue
            try:
                return _convert(value, member, where, error, labels)
            except _Mismatch:
                continue
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise error(f"{where} = {_show(value)}: expected a finite number.")
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            items = [_convert(v, a, f"{where}[{i}]", error, labels) for i, (v, a) in enumerate(zip(value, args))]
        else:
            item = args[0] if args else Any
            items = [_convert(v, item, f"{where}[{i}]", error, labels) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        args = typing.get_args(tp)
        if args and args[1] is not Any:
            return {k: _convert(v, args[1], f"{where}.{k}", error, labels) for k, v in value.items()}
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        return build(tp, value, where, error, labels)
    return value


def build(kind: type, data: Any, where: str, error: type[Tr2mError] = ConfigError,
          labels: dict[type, str] | None = None) -> Any:
    """Read ``data`` (parsed JSON) into the dataclass ``kind``, checking every field.

    Args:
        kind: a dataclass type.
        data: the parsed JSON value.
        where: how to name it in messages, e.g. ``"train config"`` or ``"/b/manifest.json"``.
        error: the Tr2mError subclass to raise.
        labels: how to call each dataclass in messages (default: its class name).

    Raises:
        ``error``: naming the field, the value given and what is allowed.
    """
    label = (labels or {}).get(kind, kind.__name__)
    if not isinstance(data, dict):
        raise error(f"{where} must be a JSON object ({label}); got {_show(data)}.")
    hints = typing.get_type_hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise error(f"Unknown {label} field(s): {', '.join(unknown)}. Known: {', '.join(sorted(fields))}.")
    values = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise error(f"{where} is missing the field '{name}' ({_describe(hints[name])}).")
            continue
        try:
            values[name] = _convert(data[name], hints[name], f"{where}.{name}", error, labels)
        except _Mismatch:
            raise error(f"{where}.{name} = {_show(data[name])}: expected {_describe(hints[name])}.") from None
    try:
        return kind(**values)
    except Tr2mError as exc:
        raise error(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise error(f"{where} is invalid: {exc}.") from None
