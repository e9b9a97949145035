"""Typed decoding of a record's plain JSON (``study.json``, ``external.json``) into its dataclasses,
strictly: a missing or unknown key is an error, never a silent default, so a change to a format means a
new version number (see :mod:`bcdet_helpers.research.study`)."""
from __future__ import annotations

import dataclasses
import math
import types
import typing

from ...errors import BcdetError


def _build(tp, value, where: str):
    """``value`` (plain JSON) as type ``tp``: dataclasses field by field, lists, dicts, optionals;
    ``null`` for a float is NaN (written so by :func:`runinfo.jsonable`)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [t for t in options if t is not type(None)]
        return _build(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise BcdetError(f"study.json: {where} should be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        required = {f.name for f in dataclasses.fields(tp)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        unknown, missing = set(value) - names, required - set(value)
        if unknown or missing:
            raise BcdetError(f"study.json: {where} ({tp.__name__}) has unknown keys {sorted(unknown)} and lacks "
                             f"{sorted(missing)} -- written by another version of bcdet?")
        return tp(**{k: _build(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    if origin is list:
        (inner,) = typing.get_args(tp) or (typing.Any,)
        return [_build(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, inner = typing.get_args(tp) or (str, typing.Any)
        return {str(k): _build(inner, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        return math.nan if value is None else float(value)
    if tp is int:
        return int(value)
    if tp is bool:
        return bool(value)
    if tp is str:
        return str(value)
    return value  # dict / Any
