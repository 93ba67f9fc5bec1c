"""Stored records change: each stored record type carries `format_version`, and a record written by an older
version is brought up to date on its raw dict, before pydantic validates it.

Validating first cannot work: records forbid unknown fields, so a record with a renamed or removed field
would fail to load before any migration saw it. So every change to a stored type is one step here, a
function raw dict -> raw dict from version N to N+1, and `load` applies the steps a record needs, in order,
then validates. Writing stamps the current version, the `format_version` field's default (`dump`, `dumps`).
A record with no version field is version 1: no stored type had the field before its first change.

Derived fields (an outcome's failure detail, row, ...) are computed once, when a record is written. A record
from a version that lacked them gets them after validation, by the function `derive` names.

How to change a stored record: docs/records.md.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

Raw = dict[str, Any]
Step = Callable[[Raw], Raw]
M = TypeVar("M", bound=BaseModel)

_STEPS: dict[type[BaseModel], dict[int, Step]] = {}
_DERIVE: dict[type[BaseModel], tuple[int, str]] = {}  # type -> (first version that stored them, "module:fn")


class FormatError(ValueError):
    """A stored record this code cannot bring up to date (newer than the code, or a step is missing)."""


def current(model_cls: type[BaseModel]) -> int:
    """The version this code writes: the default of the type's `format_version` field."""
    field = model_cls.model_fields.get("format_version")
    if field is None:
        raise TypeError(f"{model_cls.__name__} is not a stored record: it has no format_version field")
    return int(field.default)


def version_of(raw: Raw | list) -> int:
    """A record with no version field is format 1; so is one first stored as a bare JSON list (its step 1
    makes it a dict)."""
    return 1 if isinstance(raw, list) else int(raw.get("format_version", 1))


def migration(model_cls: type[BaseModel], from_version: int) -> Callable[[Step], Step]:
    """Register `step` as the change of `model_cls` records from `from_version` to `from_version + 1`."""

    def register(step: Step) -> Step:
        steps = _STEPS.setdefault(model_cls, {})
        if from_version in steps:
            raise ValueError(f"{model_cls.__name__} already has a migration from version {from_version}")
        steps[from_version] = step
        return step

    return register


def derive(model_cls: type[M], since: int, target: str) -> None:
    """Records of `model_cls` stored before version `since` lack derived fields: after validation they go
    through `target` ("module:function", imported when first needed, so audioprobe/ need not import tasks/)."""
    _DERIVE[model_cls] = (since, target)


def missing_steps(model_cls: type[BaseModel]) -> list[int]:
    """Versions below the current one with no registered step out of them (a test keeps this empty)."""
    return [v for v in range(1, current(model_cls)) if v not in _STEPS.get(model_cls, {})]


def upgrade(model_cls: type[BaseModel], raw: Raw) -> Raw:
    """The raw dict of a stored record, brought to the current version (a copy; `raw` is not changed)."""
    found, target = version_of(raw), current(model_cls)
    if found > target:
        raise FormatError(f"{model_cls.__name__} of format {found} is newer than this code reads ({target})")
    raw = list(raw) if isinstance(raw, list) else dict(raw)
    for version in range(found, target):
        step = _STEPS.get(model_cls, {}).get(version)
        if step is None:
            raise FormatError(f"{model_cls.__name__} has no migration from format {version} to {version + 1}")
        raw = step(raw)
    raw["format_version"] = target
    return raw


def load(model_cls: type[M], raw: Raw | str | bytes) -> M:
    """A stored record (its raw dict or JSON text), migrated, validated and, if it predates its derived
    fields, completed: the one way stored records are read."""
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    found = version_of(data)
    record = model_cls.model_validate(upgrade(model_cls, data))
    since, target = _DERIVE.get(model_cls, (0, ""))
    if found < since:
        module, name = target.split(":")
        record = getattr(importlib.import_module(module), name)(record)
    return record


def load_all(model_cls: type[M], raws: Iterable[Raw]) -> list[M]:
    return [load(model_cls, raw) for raw in raws]


def stamp(record: M) -> M:
    record.format_version = current(type(record))  # type: ignore[attr-defined]
    return record


def dump(record: BaseModel) -> Raw:
    """The record as a JSON-ready dict, stamped with the current version."""
    return stamp(record).model_dump(mode="json")


def dumps(record: BaseModel, indent: int | None = None) -> str:
    return stamp(record).model_dump_json(indent=indent)
