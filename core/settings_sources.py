"""Where :class:`core.config.Settings` values come from, highest first: the values given, the
environment (``IOT_*``, any case), the ``.env`` file, files in ``IOT_SECRETS_DIR`` (one per setting,
named like ``iot_influxdb_token``), then the field defaults.

This is what pydantic-settings (``BaseSettings`` with ``env_prefix="IOT_"``, ``env_file=".env"``,
``secrets_dir``) did for this project, its rules kept: names match in any case; a list or mapping
setting is JSON unless marked ``NoDecode``; a mapping given by several sources is merged (the higher
wins per key); a secret file is read as UTF-8 and stripped, and one that resolves outside its
directory is skipped with a warning. Reading it here spares every command pydantic-settings' import
(~30 ms: its cloud and command-line sources). The fields' own rules stay in ``Settings``.
"""

from __future__ import annotations

import json
import os
import types
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo

PREFIX = "iot_"
ENV_FILE = ".env"


class NoDecode:
    """Annotation marker: the setting takes the raw string (its validator splits it), not JSON."""


class SettingsError(ValueError):
    """A source's value cannot be read (e.g. a mapping setting that is not JSON)."""


_CONTAINERS = (list, set, frozenset, tuple, dict)


def _is_complex(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_complex(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_is_complex(a) for a in get_args(annotation))
    base = origin or annotation
    return isinstance(base, type) and issubclass(base, _CONTAINERS)


def _decodes_json(field: FieldInfo) -> bool:
    return _is_complex(field.annotation) and not any(m is NoDecode or isinstance(m, NoDecode) for m in field.metadata)


def _layer(fields: Mapping[str, FieldInfo], items: Iterable[tuple[str, str | None]], source: str) -> dict[str, Any]:
    """The settings named in ``items`` (``IOT_``-prefixed names, any case), JSON-decoded where the
    field is a list or mapping; other names and values of None are ignored."""
    out: dict[str, Any] = {}
    for key, raw in items:
        name = key.lower()
        if raw is None or not name.startswith(PREFIX) or name[len(PREFIX) :] not in fields:
            continue
        name = name[len(PREFIX) :]
        if _decodes_json(fields[name]):
            try:
                out[name] = json.loads(raw)
            except ValueError as e:
                raise SettingsError(f'error parsing value for field "{name}" from source "{source}"') from e
        else:
            out[name] = raw
    return out


def _dotenv(path: Path) -> list[tuple[str, str | None]]:
    from dotenv import dotenv_values  # only when there is a .env file

    return list(dotenv_values(path, encoding="utf-8").items())


def _secret_files(fields: Mapping[str, FieldInfo], directory: Path) -> list[tuple[str, str | None]]:
    directory = directory.expanduser()
    if not directory.exists():
        warnings.warn(f'directory "{directory}" does not exist', stacklevel=4)
        return []
    if not directory.is_dir():
        raise SettingsError(f"secrets_dir must reference a directory, not a file: {directory}")
    root = directory.resolve()
    entries: dict[str, Path] = {}
    for f in directory.iterdir():
        entries.setdefault(f.name.lower(), f)
    found: list[tuple[str, str | None]] = []
    for name in fields:
        path = entries.get(PREFIX + name)
        if path is None:
            continue
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as e:
            warnings.warn(f'attempted to load secret file "{path}" but it could not be resolved: {e}', stacklevel=4)
            continue
        if not path.is_file():
            warnings.warn(f'attempted to load secret file "{path}" but found something else instead.', stacklevel=4)
        elif root not in resolved.parents:
            warnings.warn(
                f'attempted to load secret file "{path}" but it resolves outside of "{directory}".', stacklevel=4
            )
        else:
            found.append((PREFIX + name, path.read_text(encoding="utf-8").strip()))
    return found


def _merged(low: dict[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for k, v in high.items():
        out[k] = _merged(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def gather(fields: Mapping[str, FieldInfo], given: Mapping[str, Any]) -> dict[str, Any]:
    """The values to validate: ``given`` (besides ``_env_file``, default ``.env``, None for none,
    and ``_secrets_dir``) over the environment, the ``.env`` file and the secrets directory."""
    given = dict(given)
    env_file = given.pop("_env_file", ENV_FILE)
    secrets_dir = given.pop("_secrets_dir", None)
    layers = [given, _layer(fields, os.environ.items(), "EnvSettingsSource")]
    if env_file is not None and Path(env_file).expanduser().is_file():
        layers.append(_layer(fields, _dotenv(Path(env_file).expanduser()), "DotEnvSettingsSource"))
    if secrets_dir is not None:
        layers.append(_layer(fields, _secret_files(fields, Path(secrets_dir)), "SecretsSettingsSource"))
    values: dict[str, Any] = {}
    for layer in reversed(layers):
        values = _merged(values, layer)
    return values
