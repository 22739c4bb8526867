"""``--set KEY=VALUE`` overrides on a raw spec mapping, as ``az ml job create --set`` does."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import SpecError
from ._common import is_asset

# Keys whose values are paths: a relative override path resolves against the current directory.
_PATH_KEYS = ("code",)


def parse_overrides(overrides: Mapping[str, Any] | list[str] | None) -> list[tuple[str, Any]]:
    """``["a.b=1", ...]`` or ``{"a.b": 1}`` -> ``[("a.b", 1), ...]`` with YAML-typed values."""
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    pairs = []
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set mini_batch_size=10.")
        pairs.append((key.strip(), _typed(key.strip(), raw)))
    return pairs


def _typed(key: str, raw: str) -> Any:
    """YAML-typed value (``2`` -> int, ``[a,b]`` -> list), but paths, sizes and environment
    variables stay strings (``environment_variables.DEBUG=on`` is "on", not True)."""
    last = key.rsplit(".", 1)[-1]
    if last in ("path", "mini_batch_size", "program_arguments") or key.startswith(
        ("inputs.", "outputs.")
    ) and key.count(".") == 1 or key.startswith("environment_variables."):
        return raw
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def absolute(value: Any) -> Any:
    """Resolve a relative override path against the current directory (URLs unchanged)."""
    if (isinstance(value, str) and value and "://" not in value and not os.path.isabs(value)
            and not is_asset(value)):  # refused by name (dialects), not as a missing path
        return os.path.abspath(value)
    return value


LITERAL_TYPES = ("string", "integer", "number", "boolean")


def apply_override(mapping: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted ``key`` in a nested mapping, creating mappings on the way.

    ``inputs.NAME=P`` / ``outputs.NAME=P`` set the declared port's ``path`` (or a literal
    input's value); relative paths resolve against the current directory.
    """
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in ("inputs", "outputs"):
        ports = mapping.setdefault(parts[0], {})
        if not isinstance(ports, dict):
            raise SpecError(f"--set {key}: '{parts[0]}' is not a mapping in the spec.")
        port = ports.get(parts[1])
        if isinstance(value, dict):
            ports[parts[1]] = {**port, **value} if isinstance(port, dict) else value
        elif isinstance(port, dict) and port.get("type") in LITERAL_TYPES:
            port["default"] = value
        elif isinstance(port, dict):
            port["path"] = absolute(value)
        elif port is not None and parts[0] == "inputs":
            ports[parts[1]] = value  # a bare literal input stays a literal
        else:
            ports[parts[1]] = {"path": absolute(value)}
        return
    if parts[-1] in ("path", *_PATH_KEYS):
        value = absolute(value)
    node: dict[str, Any] = mapping
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            if parts[0] in ("inputs", "outputs") and i == 1:
                child = node[part] = {"path": child}
            else:
                raise SpecError(
                    f"--set {key}: '{'.'.join(parts[: i + 1])}' is not a mapping, cannot set "
                    f"'{parts[i + 1]}' in it."
                )
        node = child
    node[parts[-1]] = value
