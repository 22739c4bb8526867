"""The SDK v1 ``parallel_run_config:`` YAML (``ParallelRunConfig.save_to_yaml``).

The file holds the run settings and the script; the data came from the ``ParallelRunStep``, so
it comes from ``--set`` here: ``inputs.NAME=PATH`` for each input to split (several are processed
as one file list, sorted by path), ``side_inputs.NAME=PATH`` for inputs that are not split,
``output=PATH`` (or ``outputs.NAME=PATH``) for the step output (default ``RUN_DIR/outputs/output``)
and ``arguments="--model ${{inputs.model}}"`` for the script's arguments. ``environment``,
``compute_target_name`` and ``description`` are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..spec import JobSpec
from ._common import AZURE_ONLY, as_mapping, check_keys, resolve_path
from .sdk15 import binding, finish, prepare

CONFIG_KEYS = {
    "mini_batch_size", "error_threshold", "output_action", "logging_level", "node_count",
    "process_count_per_node", "entry_script", "source_directory", "run_invocation_timeout",
    "run_max_try", "append_row_file_name", "allowed_failed_count", "allowed_failed_percent",
    "partition_keys", "environment_variables",
}
CONFIG_IGNORED = AZURE_ONLY | {"compute_target_name", "compute_target", "environment_dir_path",
                               "environment_name", "description"}
_SAME = ("mini_batch_size", "error_threshold", "logging_level", "partition_keys",
         "environment_variables", "allowed_failed_percent", "append_row_file_name")
_ALIASED = ("node_count", "process_count_per_node", "run_invocation_timeout", "run_max_try",
            "allowed_failed_count")


def detect(mapping: Mapping[str, Any]) -> bool:
    return "parallel_run_config" in mapping


def load(
    mapping: Mapping[str, Any],
    *,
    base_dir: str,
    overrides: list[tuple[str, Any]] = (),
    job: str | None = None,
) -> JobSpec:
    raw, kwargs = _raw(mapping, base_dir, overrides)
    return finish(raw, base_dir=base_dir, **kwargs)


def to_v2(mapping: Mapping[str, Any], *, base_dir: str,
          overrides: list[tuple[str, Any]] = ()) -> dict[str, Any]:
    """The v2 parallel-job mapping of a v1 config plus ``--set`` pairs (for pipelines).

    Settings without a v2 key stay in it as top-level keys, which the pipeline dialect accepts.
    """
    raw, kwargs = _raw(mapping, base_dir, overrides)
    return prepare(raw, base_dir=base_dir, **kwargs)


def _raw(mapping: Mapping[str, Any], base_dir: str, overrides: list[tuple[str, Any]]
         ) -> tuple[dict[str, Any], dict[str, Any]]:
    check_keys(mapping, {"parallel_run_config"}, "v1 spec", ignored=AZURE_ONLY | {"name"})
    cfg = as_mapping(mapping.get("parallel_run_config"), "parallel_run_config")
    check_keys(cfg, CONFIG_KEYS, "parallel_run_config", ignored=CONFIG_IGNORED)
    entry = cfg.get("entry_script")
    if not isinstance(entry, str) or not entry.strip():
        raise SpecError("parallel_run_config.entry_script: missing; name the entry script.")
    action = cfg.get("output_action")
    if action is None:
        raise SpecError("parallel_run_config.output_action: missing; use append_row or "
                        "summary_only.")
    code = resolve_path(str(cfg.get("source_directory") or ".").strip(), base_dir,
                        "parallel_run_config.source_directory")
    raw: dict[str, Any] = {
        "type": "parallel",
        "name": str(mapping.get("name") or "parallel-run-step"),
        "inputs": {},
        "outputs": {},
        "task": {"code": code, "entry_script": entry.strip(), "program_arguments": ""},
    }
    for key in _SAME:
        if cfg.get(key) is not None:
            raw[key] = cfg[key]
    pairs = [(key, cfg[key]) for key in _ALIASED if cfg.get(key) is not None]

    data_names: list[str] = []
    outputs: list[str] = []
    output_path: list[Any] = []
    for key, value in overrides:
        head, _, rest = key.partition(".")
        name = rest.split(".", 1)[0]
        if head == "side_inputs" and name:
            pairs.append((f"inputs.{rest}", value))
            continue
        if head == "inputs" and name and name not in data_names:
            data_names.append(name)
        if head == "outputs" and name and name not in outputs:
            outputs.append(name)
        if key == "output":
            output_path.append(value)
            continue
        if key == "arguments":
            key = "task.program_arguments"
            if isinstance(value, list | tuple):
                value = " ".join(str(v) for v in value)
        pairs.append((key, value))
    if not outputs:
        outputs.append("output")
        raw["outputs"]["output"] = {}
    for value in output_path:
        pairs.append((f"outputs.{outputs[0]}", value))
    if not data_names:
        raise SpecError(
            "a parallel_run_config YAML names no data: give the input to split with "
            "--set inputs.NAME=PATH (a folder or file list; add --set inputs.NAME.type=mltable "
            "for a table), and side inputs with --set side_inputs.NAME=PATH."
        )
    for name in data_names:
        raw["inputs"][name] = {}
    raw["input_data"] = binding("inputs", data_names[0])
    return raw, {"overrides": pairs, "data_names": data_names, "output_data": outputs[0],
                 "what": "inputs", "default_action": str(action)}
