"""Spec dialects: the only place that reads YAML. Each dialect turns a mapping into a JobSpec.

A dialect is a module with ``detect(mapping) -> bool`` and
``load(mapping, base_dir, overrides, job) -> JobSpec``; the registry below maps a name to the
module path and imports it lazily. ``load_spec`` reads the file (``yaml.safe_load`` only),
picks the dialect, and applies ``--set`` overrides.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import yaml

from ..errors import SpecError
from ..spec import JobSpec

log = logging.getLogger("daskprs")

_registry: dict[str, str] = {
    "v2": "daskprs.dialects.v2", "pipeline": "daskprs.dialects.pipeline",
    "sdk15": "daskprs.dialects.sdk15", "module_spec": "daskprs.dialects.module_spec",
    "v1": "daskprs.dialects.v1",
}
registry = MappingProxyType(_registry)


def register_dialect(name: str, module: str) -> None:
    """Register a dialect module (``detect``/``load``) under ``name``; checked in order."""
    _registry[name] = module


def _dialect_for(mapping: Mapping[str, Any], source: str) -> Any:
    for path in _registry.values():
        module = importlib.import_module(path)
        if module.detect(mapping):
            return module
    kind = mapping.get("type", mapping.get("jobType"))
    if kind is not None:
        raise SpecError(
            f"{source}: type: {kind!r} is not a parallel job. daskprs runs `type: parallel` jobs "
            "and `type: pipeline` jobs that contain them."
        )
    raise SpecError(
        f"{source}: this is not a parallel job spec: no `type: parallel` at the top level "
        f"(found keys: {', '.join(map(str, mapping)) or 'none'})."
    )


def read_yaml(path: str) -> Any:
    """Read a YAML file with ``safe_load``; syntax errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found.") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder; give the spec's YAML file.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"{path}:{where}: YAML syntax error: {problem}. Fix the YAML.") from None


def load_spec(
    source: str | os.PathLike | Mapping[str, Any],
    overrides: Mapping[str, Any] | list[str] | None = None,
    job: str | None = None,
) -> JobSpec:
    """Load a spec file (or a mapping) of any dialect into a validated JobSpec.

    ``overrides`` are ``--set`` style: a mapping of dotted keys, or ``"KEY=VALUE"`` strings.
    Relative paths in the file resolve against its folder; in overrides, against the cwd.
    """
    if isinstance(source, Mapping):
        mapping, base_dir, name = dict(source), os.getcwd(), "<mapping>"
    else:
        name = os.fspath(source)
        mapping = read_yaml(name)
        base_dir = os.path.dirname(os.path.abspath(name))
        if not isinstance(mapping, Mapping):
            raise SpecError(
                f"{name}: the spec must be a YAML mapping (key: value), "
                f"got {type(mapping).__name__}."
            )
    from .overrides import parse_overrides

    pairs = parse_overrides(overrides)
    module = _dialect_for(mapping, name)
    spec = module.load(mapping, base_dir=base_dir, overrides=pairs, job=job)
    from ..bindings import check_bindings

    check_bindings(spec)
    if not isinstance(source, Mapping):
        spec = spec.replace(source=os.path.abspath(name))
    return spec
