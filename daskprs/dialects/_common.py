"""Pieces shared by the dialects: key checks, typed getters, PRS switches, path resolution."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import SpecError
from ..spec import closest

log = logging.getLogger("daskprs")

# Keys of Azure's schemas that mean nothing offline: accepted, ignored with one INFO line.
AZURE_ONLY = frozenset({
    "$schema", "environment", "compute", "tags", "properties", "experiment_name", "identity",
    "is_deterministic", "display_name", "description", "version", "services", "creation_context",
    "id", "status", "queue_settings", "instance_type", "shm_size", "docker_args", "mode",
    "resources", "settings", "code_configuration", "datastore", "is_anonymous", "is_archived",
    "stage", "latest_version", "outputs_mode", "component",
})

# SDK v1 (ParallelRunConfig), sdk-1-5 runsettings and PRS-switch names that a v2 spec spells
# differently: an unknown key among them is answered with its v2 form, not with a look-alike key.
V2_EQUIVALENTS = {
    "node_count": "that is resources.instance_count",
    "instance_count": "that is resources.instance_count",
    "resource_layout": "that is resources.instance_count",
    "process_count_per_node": "that is max_concurrency_per_instance",
    "run_invocation_timeout": "that is retry_settings.timeout",
    "timeout": "that is retry_settings.timeout",
    "max_retries": "that is retry_settings.max_retries",
    "run_max_try": ("that is retry_settings.max_retries, which counts retries, not tries "
                    "(run_max_try 3 is max_retries 2)"),
    "allowed_failed_count": "that is mini_batch_error_threshold (failed mini-batches allowed)",
    "output_action": ("append_row is task.append_row_to: ${{outputs.NAME}} (an output declared "
                      "under outputs:), and summary_only is the default (no append_row_to)"),
    "source_directory": "that is task.code",
    "code": "that is task.code",
    "entry_script": "that is task.entry_script",
    "entry": "that is task.entry_script",
    "arguments": "that is task.program_arguments",
    "args": "that is task.program_arguments",
    "program_arguments": "that is task.program_arguments",
    "append_row_to": "that is task.append_row_to",
    **{name: f"that is the PRS switch --{name} VALUE in task.program_arguments"
       for name in ("allowed_failed_percent", "append_row_file_name",
                    "append_row_dataframe_header", "task_overhead_timeout",
                    "progress_update_timeout", "first_task_creation_timeout")},
}

# PRS switches that may appear in program arguments, and the JobSpec field each one sets.
PRS_SWITCHES = {
    "--error_threshold": "error_threshold",
    "--allowed_failed_count": "mini_batch_error_threshold",
    "--allowed_failed_percent": "allowed_failed_percent",
    "--run_invocation_timeout": "timeout",
    "--score_run_timeout": "timeout",
    "--run_max_try": "run_max_try",
    "--progress_update_timeout": "progress_update_timeout",
    "--first_task_creation_timeout": "first_task_creation_timeout",
    "--task_overhead_timeout": "task_overhead_timeout",
    "--append_row_file_name": "append_row_file_name",
    "--append_row_dataframe_header": "append_row_dataframe_header",
    "--process_count_per_node": "max_concurrency_per_instance",
    "--logging_level": "logging_level",
}
# The YAML key each switch competes with, for the "given twice" warning.
SWITCH_YAML_KEY = {
    "error_threshold": "error_threshold",
    "mini_batch_error_threshold": "mini_batch_error_threshold",
    "timeout": "retry_settings.timeout",
    "run_max_try": "retry_settings.max_retries",
    "max_concurrency_per_instance": "max_concurrency_per_instance",
    "logging_level": "logging_level",
}


def check_keys(
    mapping: Mapping[str, Any], known: Iterable[str], where: str,
    ignored: Iterable[str] = AZURE_ONLY, equivalents: Mapping[str, str] | None = None,
) -> None:
    """Unknown keys are errors naming the closest known key; Azure-only keys get one INFO line.

    Only known keys are suggested: an ignored one would be accepted and do nothing. A key in
    ``equivalents`` (another schema's name) gets its replacement instead of a suggestion.
    """
    known = set(known)
    ignored = set(ignored) - known
    skipped = []
    for key in mapping:
        if key in known:
            continue
        if key in ignored:
            skipped.append(key)
            continue
        if equivalents and key in equivalents:
            raise SpecError(f"{where}: unknown key '{key}'; in a v2 spec, {equivalents[key]}.")
        raise SpecError(
            f"{where}: unknown key '{key}'.{closest(str(key), known)} "
            f"Known keys here: {', '.join(sorted(known))}."
        )
    if skipped:
        prefix = f"{where}: " if where else ""
        log.info("%signoring Azure-only keys (daskprs runs in this Python environment): %s",
                 prefix, ", ".join(sorted(skipped)))


def as_int(value: Any, key: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise SpecError(f"{key}: expected a whole number, got {value!r}.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise SpecError(f"{key}: expected a whole number, got {value!r}.") from None
    if not isinstance(value, int):
        raise SpecError(f"{key}: expected a whole number, got {type(value).__name__} {value!r}.")
    if minimum is not None and value < minimum:
        raise SpecError(f"{key}: must be at least {minimum}, got {value}.")
    return value


def as_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise SpecError(f"{key}: expected a number of seconds, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{key}: expected a number, got {value!r}.") from None


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
        return False
    raise SpecError(f"{key}: expected true or false, got {value!r}.")


def as_mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{key}: expected a mapping (key: value), got {type(value).__name__}.")
    return value


def is_asset(path: Any) -> bool:
    """An Azure ML asset or datastore path (``azureml:name:1``, ``azureml://...``)."""
    return isinstance(path, str) and path.startswith("azureml:")


def no_asset(path: Any, where: str) -> None:
    """Refuse an Azure ML asset as an input path: taken as a relative path it would name a
    file that does not exist."""
    if is_asset(path):
        raise SpecError(f"{where}: {path!r} is an Azure ML data asset or datastore path, which "
                        "daskprs cannot read offline. Give a local path or URL with --set.")


def resolve_path(path: Any, base_dir: str, key: str) -> str | None:
    """Relative paths resolve against ``base_dir``; URLs and absolute paths are kept."""
    if path is None:
        return None
    if not isinstance(path, str):
        raise SpecError(f"{key}: expected a path string, got {type(path).__name__} {path!r}.")
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def prs_switches(arguments: str | list[str]) -> dict[str, tuple[str, Any]]:
    """Azure's PRS switches found in program arguments: ``{field: (switch, value)}``."""
    tokens = arguments.split() if isinstance(arguments, str) else [str(a) for a in arguments]
    found: dict[str, tuple[str, Any]] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, value = token.partition("=")
        if name in PRS_SWITCHES:
            if not eq:
                if i + 1 >= len(tokens):
                    raise SpecError(f"program_arguments: {name} needs a value.")
                value = tokens[i + 1]
                i += 1
            found[PRS_SWITCHES[name]] = (name, value)
        i += 1
    return found


def apply_switches(fields: dict[str, Any], arguments: str | list[str], explicit: set[str]) -> None:
    """Let PRS switches in the program arguments override YAML keys, warning when both are set.

    ``fields`` holds JobSpec keyword arguments plus ``retry``/``append_row`` dicts.
    """
    for name, (switch, raw) in prs_switches(arguments).items():
        yaml_key = SWITCH_YAML_KEY.get(name)
        if yaml_key and yaml_key in explicit:
            log.warning("%s %s in program_arguments overrides %s from the spec.", switch, raw,
                        yaml_key)
        key = f"program_arguments {switch}"
        if name == "error_threshold":
            fields[name] = as_int(math.ceil(as_float(raw, key)), key)
        elif name == "mini_batch_error_threshold":
            fields[name] = as_int(raw, key)
        elif name == "allowed_failed_percent":
            fields[name] = as_float(raw, key)
        elif name == "timeout":
            fields["retry"]["timeout"] = as_float(raw, key)
        elif name == "run_max_try":
            fields["retry"]["max_retries"] = as_int(raw, key, minimum=1) - 1
        elif name in ("progress_update_timeout", "first_task_creation_timeout",
                      "task_overhead_timeout"):
            fields[name] = as_float(raw, key)
        elif name == "append_row_file_name":
            fields["append_row"]["file_name"] = str(raw).lower()
        elif name == "append_row_dataframe_header":
            fields["append_row"]["dataframe_header"] = as_bool(raw, key)
        elif name == "max_concurrency_per_instance":
            fields[name] = as_int(raw, key, minimum=1)
        elif name == "logging_level":
            fields[name] = str(raw).upper()


# --- Run settings for the dialects that do not carry them (sdk-1-5, module spec, v1, pipeline) ---

# v1 / runsettings names -> the v2 key they set. ``run_max_try`` counts tries, v2 counts retries.
RUN_SETTING_ALIASES = {
    "node_count": "resources.instance_count",
    "instance_count": "resources.instance_count",
    "resource_layout.instance_count": "resources.instance_count",
    "resource_layout.node_count": "resources.instance_count",
    "process_count_per_node": "max_concurrency_per_instance",
    "run_invocation_timeout": "retry_settings.timeout",
    "timeout": "retry_settings.timeout",
    "max_retries": "retry_settings.max_retries",
    "run_max_try": "retry_settings.max_retries",
    "allowed_failed_count": "mini_batch_error_threshold",
}
# Settings without a key in the v2 schema (PRS switches there); set on the JobSpec once built.
EXTRA_SETTINGS = (
    "allowed_failed_percent", "append_row_file_name", "append_row_dataframe_header",
    "task_overhead_timeout", "progress_update_timeout", "first_task_creation_timeout",
)


def setting_key(key: str, value: Any) -> tuple[str, Any]:
    """A run-setting ``--set`` key in v2 form: v1 names become v2 keys (Azure's defaults stay).

    ``run_max_try=3`` (tries) becomes ``retry_settings.max_retries=2`` (retries).
    """
    for prefix in ("runsettings.parallel.", "runsettings."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    if key == "run_max_try":
        value = as_int(value, key, minimum=1) - 1
    return RUN_SETTING_ALIASES.get(key, key), value


def apply_settings(raw: dict[str, Any], pairs: Iterable[tuple[str, Any]]) -> None:
    """Apply ``--set`` pairs to a v2-shaped mapping, accepting the v1 names as aliases."""
    from .overrides import apply_override

    for key, value in pairs:
        apply_override(raw, *setting_key(key, value))


def pop_extras(raw: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Remove the ``EXTRA_SETTINGS`` from a v2-shaped mapping; return them typed."""
    extras: dict[str, Any] = {}
    for key in EXTRA_SETTINGS:
        value = raw.pop(key, None)
        if value is None:
            continue
        name = f"{where}.{key}" if where else key
        if key == "append_row_file_name":
            extras[key] = str(value).lower()  # PRS lowercases it
        elif key == "append_row_dataframe_header":
            extras[key] = as_bool(value, name)
        else:
            extras[key] = as_float(value, name)
    return extras


def apply_extras(spec: Any, extras: Mapping[str, Any]) -> Any:
    """The JobSpec with the settings ``pop_extras`` took out (validated again by JobSpec)."""
    import dataclasses

    changes: dict[str, Any] = {}
    append: dict[str, Any] = {}
    for key, value in extras.items():
        if key == "append_row_file_name":
            append["file_name"] = value
        elif key == "append_row_dataframe_header":
            append["dataframe_header"] = value
        else:
            changes[key] = value
    if append:
        changes["append_row"] = dataclasses.replace(spec.append_row, **append)
    return spec.replace(**changes) if changes else spec


def combined_mltable(paths: list[str], what: str, transforms: list[Any] | None = None) -> str:
    """An MLTable file listing several inputs, for a job that splits more than one data input.

    The JobSpec has one data input, so several (a module spec's ``inputData`` list, v1
    ``inputs=[...]``) become one generated MLTable in the temp folder, named by a hash of its
    content: their files form one list, sorted by path as an MLTable lists them.
    """
    from ..errors import InputError

    entries = []
    for path in paths:
        if "://" in path:
            entries.append({"folder": path})
        elif set("*?[") & set(path):
            entries.append({"pattern": path})
        elif os.path.isdir(path):
            if os.path.isfile(os.path.join(path, "MLTable")):
                raise InputError(f"{what}: {path} is an MLTable; several data inputs must be "
                                 "folders or files.")
            entries.append({"folder": path})
        elif os.path.isfile(path):
            entries.append({"file": path})
        else:
            raise InputError(f"{what}: {path} does not exist. Check the path, or set it with "
                             "--set.")
    doc: dict[str, Any] = {"type": "mltable", "paths": entries}
    if transforms:
        doc["transformations"] = list(transforms)
    return _write_mltable(doc)


def output_mltable(folder: str, transforms: list[Any], glob: str | None = None) -> str:
    """An MLTable reading the files a pipeline step writes to ``folder`` (SDK v1
    ``OutputFileDatasetConfig.read_delimited_files()``), or those matching ``glob`` in it.

    The folder need not exist yet: the MLTable is read when the job that uses it starts.
    """
    entry = {"pattern": os.path.join(folder, glob.lstrip("/"))} if glob else {"folder": folder}
    return _write_mltable({"type": "mltable", "paths": [entry],
                           "transformations": list(transforms)})


def _write_mltable(doc: dict[str, Any]) -> str:
    """Write ``doc`` to the temp folder, named by a hash of its content; return its path."""
    import hashlib
    import tempfile

    import yaml

    text = yaml.safe_dump(doc, sort_keys=False)
    folder = os.path.join(tempfile.gettempdir(), "daskprs-mltables",
                          hashlib.sha1(text.encode()).hexdigest()[:16])
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, "MLTable")
    if not os.path.isfile(target):
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    return target
