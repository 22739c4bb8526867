"""The native dialect: Azure ML v2 ``type: parallel`` job / component YAML (plus ``cluster:``)."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..spec import (
    FILE_TYPES,
    LITERAL_TYPES,
    OUTPUT_TYPES,
    AppendRowSettings,
    ClusterSpec,
    InputSpec,
    JobSpec,
    OutputSpec,
    RetrySettings,
    TaskSpec,
    closest,
)
from ._common import (
    V2_EQUIVALENTS,
    apply_switches,
    as_bool,
    as_float,
    as_int,
    as_mapping,
    check_keys,
    is_asset,
    no_asset,
    resolve_path,
)
from .overrides import apply_override

TOP_KEYS = {
    "type", "name", "inputs", "outputs", "input_data", "mini_batch_size", "partition_keys",
    "resources", "max_concurrency_per_instance", "mini_batch_error_threshold", "error_threshold",
    "retry_settings", "logging_level", "environment_variables", "task", "cluster",
}
TASK_KEYS = {"type", "code", "entry_script", "program_arguments", "append_row_to"}
INPUT_KEYS = {"type", "path", "mode", "optional", "default", "value", "description"}
OUTPUT_KEYS = {"type", "path", "mode", "description", "name", "version"}
CLUSTER_KEYS = {
    "type", "address", "n_workers", "threads_per_worker", "memory_limit", "gpus_per_instance",
    "dashboard_address", "processes",
}
JOBQUEUE_TYPES = ("slurm", "pbs", "sge", "lsf", "htcondor", "oar", "moab")

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_INPUT_REF = re.compile(r"^\s*\$\{\{\s*inputs\.([^}\s]+)\s*\}\}\s*$")
_OUTPUT_REF = re.compile(r"^\s*\$\{\{\s*outputs\.([^}\s]+)\s*\}\}\s*$")


def detect(mapping: Mapping[str, Any]) -> bool:
    return mapping.get("type") == "parallel"


def load(
    mapping: Mapping[str, Any],
    *,
    base_dir: str,
    overrides: list[tuple[str, Any]] = (),
    job: str | None = None,
    where: str = "",
) -> JobSpec:
    """Build a JobSpec from a v2 parallel mapping; ``where`` prefixes keys in messages."""
    raw = copy.deepcopy(dict(mapping))
    for key, value in overrides:
        apply_override(raw, _strip_job_prefix(key, job), value)
    return from_mapping(raw, base_dir=base_dir, where=where)


def _strip_job_prefix(key: str, job: str | None) -> str:
    if job and key.startswith(f"jobs.{job}."):
        return key[len(f"jobs.{job}."):]
    return key


def _k(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def from_mapping(raw: Mapping[str, Any], *, base_dir: str, where: str = "") -> JobSpec:
    check_keys(raw, TOP_KEYS, where or "spec", equivalents=V2_EQUIVALENTS)
    explicit = set(raw)
    inputs = _inputs(as_mapping(raw.get("inputs"), _k(where, "inputs")), base_dir, where)
    outputs = _outputs(as_mapping(raw.get("outputs"), _k(where, "outputs")), base_dir, where)

    task_raw = as_mapping(raw.get("task"), _k(where, "task"))
    if not task_raw:
        raise SpecError(f"{_k(where, 'task')}: missing; give task.code and task.entry_script.")
    check_keys(task_raw, TASK_KEYS, _k(where, "task"), equivalents=V2_EQUIVALENTS)
    if task_raw.get("type", "run_function") != "run_function":
        raise SpecError(
            f"{_k(where, 'task.type')}: {task_raw['type']!r} is not supported; use run_function."
        )
    entry = task_raw.get("entry_script")
    if not entry or not isinstance(entry, str):
        raise SpecError(f"{_k(where, 'task.entry_script')}: missing; name the entry script file.")
    code = resolve_path(task_raw.get("code", "."), base_dir, _k(where, "task.code"))
    program_arguments = task_raw.get("program_arguments") or ""
    if isinstance(program_arguments, list):
        program_arguments = " ".join(str(a) for a in program_arguments)
    append_row_to = task_raw.get("append_row_to")
    if append_row_to is not None:
        m = _OUTPUT_REF.match(str(append_row_to))
        if not m:
            raise SpecError(
                f"{_k(where, 'task.append_row_to')}: expected '${{{{outputs.NAME}}}}', "
                f"got {append_row_to!r}."
            )
        if m.group(1) not in outputs:
            raise SpecError(
                f"{_k(where, 'task.append_row_to')}: output '{m.group(1)}' is not declared."
                f"{closest(m.group(1), list(outputs))} Declare it under outputs:."
            )
        append_row_to = m.group(1)

    input_data = raw.get("input_data")
    if input_data is None:
        raise SpecError(
            f"{_k(where, 'input_data')}: missing; e.g. input_data: ${{{{inputs.data}}}}.")
    m = _INPUT_REF.match(str(input_data))
    if not m:
        raise SpecError(
            f"{_k(where, 'input_data')}: expected '${{{{inputs.NAME}}}}', got {input_data!r}."
        )
    input_data = m.group(1)

    resources = as_mapping(raw.get("resources"), _k(where, "resources"))
    retry_raw = as_mapping(raw.get("retry_settings"), _k(where, "retry_settings"))
    check_keys(retry_raw, {"max_retries", "timeout"}, _k(where, "retry_settings"), ignored=())
    for key in retry_raw:
        explicit.add(f"retry_settings.{key}")

    fields: dict[str, Any] = {
        "retry": {},
        "append_row": {},
    }
    if "max_retries" in retry_raw:
        fields["retry"]["max_retries"] = as_int(
            retry_raw["max_retries"], _k(where, "retry_settings.max_retries"), minimum=0)
    if "timeout" in retry_raw:
        fields["retry"]["timeout"] = as_float(retry_raw["timeout"],
                                              _k(where, "retry_settings.timeout"))
    for key in ("mini_batch_error_threshold", "error_threshold"):
        if raw.get(key) is not None:
            fields[key] = as_int(raw[key], _k(where, key))
    if raw.get("max_concurrency_per_instance") is not None:
        fields["max_concurrency_per_instance"] = as_int(
            raw["max_concurrency_per_instance"], _k(where, "max_concurrency_per_instance"),
            minimum=1)
    if raw.get("logging_level") is not None:
        fields["logging_level"] = str(raw["logging_level"]).upper()
    apply_switches(fields, program_arguments, explicit)
    retry = RetrySettings(**fields.pop("retry"))
    append_row = _append_row_settings(code, fields.pop("append_row"))

    mini_batch_size = raw.get("mini_batch_size")
    if mini_batch_size is not None:
        mini_batch_size = str(mini_batch_size)
    partition_keys = raw.get("partition_keys")
    if isinstance(partition_keys, str):
        # A JSON-dumped list, as Azure's SDK sends it, or a single key.
        try:
            partition_keys = json.loads(partition_keys)
        except ValueError:
            partition_keys = [partition_keys]
    if partition_keys is not None:
        if not isinstance(partition_keys, list | tuple) or not all(
            isinstance(k, str) for k in partition_keys
        ):
            raise SpecError(
                f"{_k(where, 'partition_keys')}: expected a list of column names, "
                f"got {partition_keys!r}."
            )
        partition_keys = tuple(partition_keys)

    env = as_mapping(raw.get("environment_variables"), _k(where, "environment_variables"))
    return JobSpec(
        name=str(raw.get("name") or raw.get("display_name") or "parallel-job"),
        task=TaskSpec(code=code, entry_script=entry, program_arguments=str(program_arguments),
                      append_row_to=append_row_to),
        input_data=input_data,
        inputs=inputs,
        outputs=outputs,
        mini_batch_size=mini_batch_size,
        partition_keys=partition_keys,
        instance_count=as_int(resources.get("instance_count", 1),
                              _k(where, "resources.instance_count")),
        retry_settings=retry,
        append_row=append_row,
        environment_variables={str(k): str(v) for k, v in env.items()},
        cluster=_cluster(as_mapping(raw.get("cluster"), _k(where, "cluster")), where),
        **fields,
    )


def _inputs(raw: Mapping[str, Any], base_dir: str, where: str) -> dict[str, InputSpec]:
    inputs = {}
    for name, decl in raw.items():
        key = _k(where, f"inputs.{name}")
        if not isinstance(decl, Mapping):
            inputs[name] = InputSpec(name=name, type=_literal_type(decl), value=decl)
            continue
        check_keys(decl, INPUT_KEYS, key, ignored={"datastore_mode", "is_resource"})
        no_asset(decl.get("path"), f"{key}.path")
        path = resolve_path(decl.get("path"), base_dir, f"{key}.path")
        kind = decl.get("type") or _infer_type(path)
        if kind in LITERAL_TYPES:
            value = decl.get("value", decl.get("default"))
            inputs[name] = InputSpec(name=name, type=kind, value=value,
                                     optional=bool(decl.get("optional", False)))
            continue
        if kind not in FILE_TYPES:
            raise SpecError(
                f"{key}.type: {kind!r} is not an input type.{closest(str(kind), FILE_TYPES)} "
                f"Use one of: {', '.join(sorted(FILE_TYPES | LITERAL_TYPES))}."
            )
        inputs[name] = InputSpec(name=name, type=kind, path=path, mode=decl.get("mode"),
                                 optional=as_bool(decl.get("optional", False), f"{key}.optional"))
    return inputs


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _infer_type(path: str | None) -> str:
    if path is None or "://" in path:
        return "uri_folder"
    if os.path.isfile(path):
        return "mltable" if os.path.basename(path) == "MLTable" else "uri_file"
    if os.path.isfile(os.path.join(path, "MLTable")):
        return "mltable"
    return "uri_folder"


def _outputs(raw: Mapping[str, Any], base_dir: str, where: str) -> dict[str, OutputSpec]:
    outputs = {}
    for name, decl in raw.items():
        key = _k(where, f"outputs.{name}")
        if not _SAFE_NAME.match(str(name)) or name in (".", ".."):
            raise SpecError(
                f"{key}: output names must be plain names (letters, digits, '_', '-', '.'), "
                "because an output without a path becomes RUN_DIR/outputs/NAME.")
        if decl is None:
            decl = {}
        if isinstance(decl, str):
            decl = {"path": decl}
        if not isinstance(decl, Mapping):
            raise SpecError(f"{key}: expected a mapping with type/path, got {decl!r}.")
        check_keys(decl, OUTPUT_KEYS, key, ignored={"datastore_mode", "is_link_mode"})
        kind = decl.get("type") or "uri_folder"
        if kind not in OUTPUT_TYPES:
            raise SpecError(
                f"{key}.type: {kind!r} is not an output type.{closest(str(kind), OUTPUT_TYPES)}"
            )
        path = decl.get("path")
        if is_asset(path):
            # A datastore path means nothing offline: keep the file name, place it in the run dir.
            path = "azureml:" + os.path.basename(path.rstrip("/"))
        else:
            path = resolve_path(path, base_dir, f"{key}.path")
        outputs[name] = OutputSpec(name=name, type=kind, path=path, mode=decl.get("mode"))
    return outputs


def _append_row_settings(code: str, fields: dict[str, Any]) -> AppendRowSettings:
    """Merge PRS switches with ``parallel_run_step.settings.json`` from the code folder."""
    to_csv: dict[str, Any] = {}
    settings_path = os.path.join(code, "parallel_run_step.settings.json")
    if os.path.isfile(settings_path):
        try:
            with open(settings_path, encoding="utf-8") as f:
                settings = json.load(f)
            to_csv = dict(settings.get("append_row", {}).get("pandas.DataFrame.to_csv", {}))
        except (OSError, ValueError, AttributeError) as e:
            raise SpecError(f"{settings_path}: cannot read append_row settings: {e}.") from None
    if to_csv.pop("header", False) is True:  # one header line atop the file, not one per chunk
        fields = {**fields, "dataframe_header": True}
    return AppendRowSettings(to_csv=to_csv, **fields)


def _cluster(raw: Mapping[str, Any], where: str) -> ClusterSpec:
    if not raw:
        return ClusterSpec()
    kind = str(raw.get("type") or ("address" if raw.get("address") else "local")).lower()
    known = ("local", "address", *JOBQUEUE_TYPES)
    if kind not in known:
        raise SpecError(
            f"{_k(where, 'cluster.type')}: {kind!r} is not a cluster type.{closest(kind, known)} "
            f"Use one of: {', '.join(known)}."
        )
    options = {k: v for k, v in raw.items() if k not in CLUSTER_KEYS}
    if kind in ("local", "address"):
        check_keys(raw, CLUSTER_KEYS, _k(where, "cluster"), ignored=())
    kwargs: dict[str, Any] = {"type": kind, "options": options}
    if raw.get("address"):
        kwargs["address"] = str(raw["address"])
    if raw.get("n_workers") is not None:
        kwargs["n_workers"] = as_int(raw["n_workers"], _k(where, "cluster.n_workers"), minimum=1)
    if raw.get("threads_per_worker") is not None:
        kwargs["threads_per_worker"] = as_int(raw["threads_per_worker"],
                                              _k(where, "cluster.threads_per_worker"), minimum=1)
    if raw.get("memory_limit") is not None:
        kwargs["memory_limit"] = str(raw["memory_limit"])
    if raw.get("gpus_per_instance") is not None:
        kwargs["gpus_per_instance"] = as_int(raw["gpus_per_instance"],
                                             _k(where, "cluster.gpus_per_instance"), minimum=0)
    if raw.get("dashboard_address") is not None:
        kwargs["dashboard_address"] = str(raw["dashboard_address"])
    if raw.get("processes") is not None:
        kwargs["processes"] = as_bool(raw["processes"], _k(where, "cluster.processes"))
    return ClusterSpec(**kwargs)
