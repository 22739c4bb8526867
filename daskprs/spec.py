"""JobSpec: the one frozen, validated description of a parallel job that every dialect produces.

Nothing here reads files or imports Dask: a JobSpec is pure data with absolute paths. Bindings
such as ``${{outputs.o}}`` stay unresolved until a run directory exists (see ``bindings``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError

FILE_TYPES = frozenset({"uri_folder", "uri_file", "mltable", "custom_model", "mlflow_model"})
LITERAL_TYPES = frozenset({"string", "integer", "number", "boolean"})
OUTPUT_TYPES = frozenset({"uri_folder", "uri_file", "mltable", "custom_model", "mlflow_model"})
LOGGING_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Azure's defaults (reference doc §2). File mini-batches count files, tabular ones are bytes.
DEFAULT_FILE_MINI_BATCH = "10"
DEFAULT_TABULAR_MINI_BATCH = "1MB"
DEFAULT_TIMEOUT = 60.0
DEFAULT_TASK_OVERHEAD_TIMEOUT = 30.0
DEFAULT_FIRST_TASK_CREATION_TIMEOUT = 600.0
MAX_TIMEOUT = 259200.0

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?[bB])?\s*$")
_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_size(value: Any, key: str = "mini_batch_size") -> tuple[int, bool]:
    """Parse a mini_batch_size such as ``"10"``, ``"10kb"`` or ``"1 MB"``.

    Returns ``(number, has_unit)``: a plain number is a file count for file inputs and bytes for
    tabular inputs, as in Azure; KB is 1024 bytes.
    """
    if isinstance(value, bool) or value is None:
        raise SpecError(
            f"{key}: expected a number of files or a size such as '10kb', got {value!r}.")
    if isinstance(value, int):
        if value <= 0:
            raise SpecError(f"{key}: must be positive, got {value}.")
        return value, False
    m = _SIZE_RE.match(str(value))
    if not m:
        raise SpecError(
            f"{key}: {value!r} is not a size. Use a number of files such as '10', or a size for "
            "tabular data such as '10kb', '1MB' or '1 GB' (KB = 1024 bytes)."
        )
    number = int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    if number <= 0:
        raise SpecError(f"{key}: must be positive, got {value!r}.")
    return number, bool(m.group(2))


def closest(name: str, known: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """A ' Did you mean ...?' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


class FrozenDict(dict):
    """A read-only dict that pickles (``MappingProxyType`` does not cross to workers)."""

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this mapping is read-only (part of a frozen spec)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=repr)))


def _frozen(mapping: Mapping | None) -> Mapping:
    return FrozenDict(mapping or {})


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """One declared input: a data path (``path``) or a literal (``value``)."""

    name: str
    type: str
    path: str | None = None
    value: Any = None
    mode: str | None = None
    optional: bool = False

    @property
    def is_literal(self) -> bool:
        return self.type in LITERAL_TYPES

    @property
    def present(self) -> bool:
        return (self.value if self.is_literal else self.path) is not None


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """One declared output. ``path`` None means ``RUN_DIR/outputs/NAME``."""

    name: str
    type: str = "uri_folder"
    path: str | None = None
    mode: str | None = None


@dataclass(frozen=True, kw_only=True)
class RetrySettings:
    """``retry_settings``: tries = max_retries + 1; ``timeout`` is seconds per run() call."""

    max_retries: int = 2
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """Where the job runs: ``local`` (default), an ``address``, or a dask-jobqueue ``type``."""

    type: str = "local"
    address: str | None = None
    n_workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str | None = None
    gpus_per_instance: int = 0
    dashboard_address: str = "127.0.0.1:0"
    processes: bool = False  # local only: Dask workers as processes (user code always is one)
    options: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))


@dataclass(frozen=True, kw_only=True)
class AppendRowSettings:
    """How append_row writes rows (PRS switches and ``parallel_run_step.settings.json``)."""

    file_name: str = "parallel_run_step.txt"
    dataframe_header: bool = False
    to_csv: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """``task:``: where the entry script lives and how it is called."""

    code: str
    entry_script: str
    program_arguments: str = ""
    append_row_to: str | None = None

    @property
    def entry_path(self) -> str:
        return os.path.join(self.code, self.entry_script)


def available_cpus() -> int:
    """The CPUs this process may use: a SLURM allocation (``SLURM_CPUS_PER_TASK``), else its
    CPU affinity (taskset, cpusets), else the machine's. Not ``os.cpu_count()``: in an
    8-CPU job on a 128-core node that would start 128 user-code processes."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A parallel job, frozen and validated; paths are absolute, bindings unresolved."""

    name: str
    task: TaskSpec
    input_data: str
    inputs: Mapping[str, InputSpec] = field(default_factory=lambda: _frozen({}))
    outputs: Mapping[str, OutputSpec] = field(default_factory=lambda: _frozen({}))
    mini_batch_size: str | None = None
    partition_keys: tuple[str, ...] | None = None
    instance_count: int = 1
    max_concurrency_per_instance: int | None = None
    mini_batch_error_threshold: int = -1
    error_threshold: int = -1
    allowed_failed_percent: float = 100.0
    retry_settings: RetrySettings = field(default_factory=RetrySettings)
    task_overhead_timeout: float = DEFAULT_TASK_OVERHEAD_TIMEOUT
    progress_update_timeout: float | None = None
    first_task_creation_timeout: float = DEFAULT_FIRST_TASK_CREATION_TIMEOUT
    logging_level: str = "INFO"
    environment_variables: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    append_row: AppendRowSettings = field(default_factory=AppendRowSettings)
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    source: str | None = None
    pre_steps: tuple = ()  # pipeline command steps that produce the inputs (daskprs.commands)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def data_input(self) -> InputSpec:
        return self.inputs[self.input_data]

    @property
    def output_action(self) -> str:
        return "append_row" if self.task.append_row_to else "summary_only"

    @property
    def concurrency(self) -> int:
        return self.max_concurrency_per_instance or available_cpus()

    @property
    def max_tries(self) -> int:
        return self.retry_settings.max_retries + 1

    @property
    def stall_timeout(self) -> float:
        """``progress_update_timeout``; Azure's default is 3 * (timeout + task overhead)."""
        if self.progress_update_timeout is not None:
            return self.progress_update_timeout
        return 3 * (self.retry_settings.timeout + self.task_overhead_timeout)

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping (for ``job.yaml`` in the run directory)."""

        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, Mapping):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            return value

        return plain(self)


def _validate(spec: JobSpec) -> None:
    if spec.input_data not in spec.inputs:
        raise SpecError(
            f"input_data: '${{{{inputs.{spec.input_data}}}}}' names no declared input."
            f"{closest(spec.input_data, list(spec.inputs))} Declared inputs: "
            f"{', '.join(sorted(spec.inputs)) or 'none'}."
        )
    data = spec.inputs[spec.input_data]
    if data.is_literal:
        raise SpecError(f"input_data: input '{data.name}' is a literal ({data.type}), not data.")
    if not data.present:
        raise SpecError(
            f"inputs.{data.name}: the data input has no path. Give one in the spec or with "
            f"--set inputs.{data.name}.path=PATH."
        )
    if spec.mini_batch_size is not None:
        parse_size(spec.mini_batch_size)
    for key in ("mini_batch_error_threshold", "error_threshold"):
        value = getattr(spec, key)
        if value < -1:
            raise SpecError(
                f"{key}: {value} is below -1. Use -1 to ignore failures, or a count >= 0.")
    if not (0 <= spec.allowed_failed_percent <= 100):
        raise SpecError(
            f"allowed_failed_percent: {spec.allowed_failed_percent} is not between 0 and 100."
        )
    if spec.instance_count < 1:
        raise SpecError(f"resources.instance_count: must be at least 1, got {spec.instance_count}.")
    if spec.max_concurrency_per_instance is not None and spec.max_concurrency_per_instance < 1:
        raise SpecError(
            "max_concurrency_per_instance: must be at least 1, got "
            f"{spec.max_concurrency_per_instance}."
        )
    retry = spec.retry_settings
    if retry.max_retries < 0:
        raise SpecError(f"retry_settings.max_retries: must be >= 0, got {retry.max_retries}.")
    if not (0 < retry.timeout <= MAX_TIMEOUT):
        raise SpecError(
            f"retry_settings.timeout: {retry.timeout} is out of range; give seconds in "
            f"(0, {int(MAX_TIMEOUT)}]."
        )
    for key in ("task_overhead_timeout", "progress_update_timeout", "first_task_creation_timeout"):
        value = getattr(spec, key)
        if value is not None and value <= 0:
            raise SpecError(f"{key}: must be a positive number of seconds, got {value}.")
    if spec.logging_level not in LOGGING_LEVELS:
        raise SpecError(
            f"logging_level: {spec.logging_level!r} is not one of {', '.join(LOGGING_LEVELS)}."
        )
    name = spec.append_row.file_name
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise SpecError(
            f"append_row_file_name: {name!r} must be a plain file name inside the output folder "
            "(no '/', no '..')."
        )
    if spec.partition_keys is not None and not spec.partition_keys:
        raise SpecError("partition_keys: give at least one key, or remove the key.")


def spec_from_dict(data: Mapping[str, Any]) -> JobSpec:
    """Inverse of ``JobSpec.to_dict`` (used by resume to read ``job.yaml``)."""
    d = dict(data)
    d["task"] = TaskSpec(**d["task"])
    d["inputs"] = {k: InputSpec(**v) for k, v in (d.get("inputs") or {}).items()}
    d["outputs"] = {k: OutputSpec(**v) for k, v in (d.get("outputs") or {}).items()}
    d["retry_settings"] = RetrySettings(**d.get("retry_settings", {}))
    d["append_row"] = AppendRowSettings(**d.get("append_row", {}))
    d["cluster"] = ClusterSpec(**d.get("cluster", {}))
    if d.get("partition_keys") is not None:
        d["partition_keys"] = tuple(d["partition_keys"])
    return JobSpec(**d)


def uses_worker_processes(spec: JobSpec) -> bool:
    """Local Dask workers are threads unless asked otherwise, or ``partition_keys`` may need
    a table shuffled on them (that data then stays out of the driver)."""
    return spec.cluster.processes or bool(spec.partition_keys)


def worker_count(spec: JobSpec, workers: int | None = None) -> int:
    """instance_count x max_concurrency_per_instance, unless overridden."""
    if workers:
        return workers
    if spec.cluster.n_workers:
        return spec.cluster.n_workers
    return spec.instance_count * spec.concurrency
