"""What a preset is: a name, the options a mapping may give it, and the rules it expands to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest.decoding.mapping_rule import MappingRule


class PresetError(ValueError):
    """A preset's option is wrong (message: which and why)."""


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    options: Mapping[str, str]  # option -> what it is (for errors and `iot mappings check`)
    build: Callable[[Mapping[str, Any]], list[MappingRule]]


def text_option(options: Mapping[str, Any], key: str, default: str) -> str:
    value = options.get(key, default)
    if type(value) is not str or not value or "/" in value or "+" in value or "#" in value or "{" in value:
        raise PresetError(f"{key} must be one topic level (no '/', '+', '#' or braces)")
    return value
