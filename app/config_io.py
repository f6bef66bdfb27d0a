"""Dataclass <-> dict / YAML / JSON, strict: unknown keys and wrong types raise.

Used for run configs written beside checkpoints (``run.yaml``) and for model configs stored
inside our checkpoints, so a run can always be rebuilt with ``Config(**saved)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from app.fileio import atomic_write_text
from app.messages import Message, said

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or dict does not match the dataclass it is read into."""


def to_dict(obj: Any) -> Any:
    """Recursively turn dataclasses (and tuples, paths) into plain YAML/JSON-safe values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    kind = type(value).__name__
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, hint, args, where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            template = "{where}: expected a mapping for {name}, got {kind}"
            raise ConfigError(
                Message("config.err.mapping_for", template, where=where, name=hint.__name__, kind=kind)
            )
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        return _convert_sequence(value, origin, args, where)
    if origin is dict:
        if not isinstance(value, dict):
            template = "{where}: expected a mapping, got {kind}"
            raise ConfigError(Message("config.err.mapping", template, where=where, kind=kind))
        key_t, val_t = args if args else (Any, Any)
        return {_convert(k, key_t, where): _convert(v, val_t, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            template = "{where}: {value!r} is not one of {choices}"
            raise ConfigError(
                Message("config.err.literal", template, where=where, value=value, choices=str(list(args)))
            )
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if isinstance(hint, type):
        if hint is int and isinstance(value, bool):
            raise ConfigError(Message("config.err.bool", "{where}: expected int, got bool", where=where))
        if not isinstance(value, hint):
            template = "{where}: expected {name}, got {kind} {value!r}"
            fields = {"where": where, "name": hint.__name__, "kind": kind, "value": value}
            raise ConfigError(Message("config.err.type", template, **fields))
    return value


def _convert_union(value: Any, hint: Any, args: tuple[Any, ...], where: str) -> Any:
    """``value`` as the first member of the union ``hint`` it fits."""
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg, where)
        except ConfigError:
            continue
    template = "{where}: {value!r} matches none of {hint}"
    raise ConfigError(Message("config.err.union", template, where=where, value=value, hint=str(hint)))


def _convert_sequence(value: Any, origin: Any, args: tuple[Any, ...], where: str) -> Any:
    """``value`` as a list, a fixed-length tuple or a ``tuple[X, ...]``."""
    if not isinstance(value, (list, tuple)):
        template = "{where}: expected a list, got {kind}"
        raise ConfigError(Message("config.err.list", template, where=where, kind=type(value).__name__))
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            template = "{where}: expected {count} items, got {got}"
            raise ConfigError(
                Message("config.err.items", template, where=where, count=len(args), got=len(value))
            )
        return tuple(
            _convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    item = args[0] if args else Any
    converted = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(converted) if origin is tuple else converted


def from_dict(cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and type mismatches raise :class:`ConfigError`."""
    where = where or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        template = "{where}: unknown keys {unknown}; known keys are {known}"
        known = str(sorted(fields))
        raise ConfigError(
            Message("config.err.unknown_keys", template, where=where, unknown=str(unknown), known=known)
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            Message("config.err.build", "{where}: {problem}", where=where, problem=said(exc))
        ) from exc


def save(obj: Any, path: str | os.PathLike) -> Path:
    """Write a dataclass (or plain dict) to ``.yaml``/``.yml``/``.json`` atomically."""
    path = Path(path)
    data = to_dict(obj)
    if path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    elif path.suffix == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        template = "{path}: config files must end in .yaml, .yml or .json"
        raise ConfigError(Message("config.err.suffix", template, path=str(path)))
    atomic_write_text(path, text)
    return path


def load(cls: type[T], path: str | os.PathLike) -> T:
    """Read ``path`` (YAML or JSON) into dataclass ``cls``; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        template = "{path}: cannot read config ({problem})"
        raise ConfigError(
            Message("config.err.read", template, path=str(path), problem=str(exc.strerror))
        ) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        template = "{path}: not valid {kind} ({problem})"
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(
            Message("config.err.syntax", template, path=str(path), kind=kind, problem=str(exc))
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            Message("config.err.top", "{path}: expected a mapping at the top level", path=str(path))
        )
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(
            Message("config.err.in_file", "{path}: {problem}", path=str(path), problem=said(exc))
        ) from exc
