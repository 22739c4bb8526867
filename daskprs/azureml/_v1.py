"""Azure ML SDK v1 shapes: ParallelRunConfig, ParallelRunStep, Dataset, PipelineParameter,
PipelineData, OutputFileDatasetConfig, Pipeline, Experiment, Workspace, Datastore, and the
PipelineRun that ``submit`` returns (StepRuns, PortDataReferences to read results).

A ParallelRunConfig is the v1 ``parallel_run_config:`` YAML as an object, and a
ParallelRunStep adds what that dialect takes from ``--set`` (inputs, side inputs, output,
arguments): both become JobSpecs through ``daskprs.dialects.v1``. A Pipeline of several steps
becomes a v2 pipeline mapping (steps linked by their PipelineData), run by ``Experiment.submit``.
Workspaces, datastores and compute targets are local stand-ins: a datastore path is a folder
under the current directory.
"""

from __future__ import annotations

import enum
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..dialects._common import combined_mltable, output_mltable
from ..dialects.pipeline import TABLE
from ..errors import JobFailed, SpecError
from ..spec import closest

log = logging.getLogger("daskprs")


def _absolute(path: str) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.abspath(path)


class PipelineParameter:
    """``azureml.pipeline.core.PipelineParameter``: its default, or the value given at submit."""

    def __init__(self, name: str, default_value: Any) -> None:
        self.name, self.default_value = name, default_value

    def __repr__(self) -> str:
        return f"PipelineParameter(name={self.name!r}, default_value={self.default_value!r})"


def _resolve(value: Any, params: Mapping[str, Any]) -> Any:
    while isinstance(value, PipelineParameter):
        value = params.get(value.name, value.default_value)
    return value


class Datastore:
    """A datastore stand-in: its paths are folders under ``root`` (the current directory)."""

    def __init__(self, workspace: Any = None, name: str = "workspaceblobstore",
                 root: str | None = None) -> None:
        self.workspace, self.name, self.root = workspace, name, root or os.getcwd()

    def path(self, path: str = "", data_reference_name: str | None = None) -> DataPath:
        return DataPath(self, path)

    @staticmethod
    def register_azure_blob_container(workspace: Any, datastore_name: str, container_name: str,
                                      account_name: str, **kwargs: Any) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get(workspace: Any, datastore_name: str) -> Datastore:
        return Datastore(workspace, datastore_name)


class DataPath:
    """``datastore.path("folder")``."""

    def __init__(self, datastore: Datastore, path_on_datastore: str) -> None:
        self.datastore, self.path_on_datastore = datastore, path_on_datastore

    def local(self) -> str:
        return os.path.normpath(os.path.join(self.datastore.root, self.path_on_datastore))


class Workspace:
    """``azureml.core.Workspace`` stand-in: daskprs runs here, there is nothing to connect to."""

    def __init__(self, subscription_id: str = "", resource_group: str = "",
                 workspace_name: str = "local", **kwargs: Any) -> None:
        self.subscription_id, self.resource_group = subscription_id, resource_group
        self.name, self.location = workspace_name, "local"
        self.compute_targets: dict[str, Any] = {}
        self.datastores: dict[str, Datastore] = {}

    @classmethod
    def from_config(cls, path: str | None = None, auth: Any = None, **kwargs: Any) -> Workspace:
        return cls()

    @classmethod
    def get(cls, name: str = "local", **kwargs: Any) -> Workspace:
        return cls(workspace_name=name)

    def get_default_datastore(self) -> Datastore:
        return Datastore(self)


def _paths(path: Any) -> list[str]:
    items = path if isinstance(path, list) else [path]
    out = []
    for item in items:
        if isinstance(item, DataPath):
            out.append(item.local())
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Datastore):
            out.append(os.path.normpath(os.path.join(item[0].root, str(item[1]))))
        elif isinstance(item, str | os.PathLike):
            out.append(_absolute(os.fspath(item)))
        else:
            raise SpecError(f"Dataset path: expected a path, a URL, datastore.path(...) or "
                            f"(datastore, 'path'), got {item!r}.")
    if not out:
        raise SpecError("Dataset: give at least one path.")
    return out


class _Dataset:
    kind = "file"

    def __init__(self, paths: list[str], partition_format: str | None = None,
                 read: Mapping[str, Any] | None = None) -> None:
        self.paths, self.partition_format, self.read = paths, partition_format, read
        self.name: str | None = None

    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(name, self)

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self.name, self, mode="mount")

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self.name, self, mode="download")

    def register(self, workspace: Any = None, name: str | None = None,
                 **kwargs: Any) -> _Dataset:
        self.name = name
        return self

    def _input(self, what: str) -> dict[str, Any]:
        """The v2 input declaration: a path, or a generated MLTable (several paths, options)."""
        transforms: list[Any] = [self.read] if self.read else []
        if self.partition_format:
            transforms.append({"extract_columns_from_partition_format": self.partition_format})
        if len(self.paths) == 1 and not transforms:
            return {"path": self.paths[0]}
        return {"type": "mltable", "path": combined_mltable(self.paths, what, transforms)}


class FileDataset(_Dataset):
    """``Dataset.File.from_files(...)``: run() gets lists of local file paths."""


class TabularDataset(_Dataset):
    """``Dataset.Tabular.from_*_files(...)``: run() gets pandas DataFrames."""

    kind = "tabular"


class _FileFactory:
    @staticmethod
    def from_files(path: Any, validate: bool = True, partition_format: str | None = None,
                   is_file: bool = False) -> FileDataset:
        return FileDataset(_paths(path), partition_format)


class _TabularFactory:
    @staticmethod
    def from_delimited_files(path: Any, validate: bool = True, include_path: bool = False,
                             infer_column_types: bool = True, set_column_types: Any = None,
                             separator: str = ",", header: Any = True,
                             partition_format: str | None = None,
                             support_multi_line: bool = False, empty_as_string: bool = False,
                             encoding: str = "utf8") -> TabularDataset:
        if set_column_types:
            log.info("Dataset.Tabular: set_column_types ignored; convert in the entry script")
        read = {"read_delimited": {
            "delimiter": separator, "encoding": encoding, "header": _header_mode(header),
            "include_path_column": include_path, "infer_column_types": infer_column_types,
            "support_multi_line": support_multi_line, "empty_as_string": empty_as_string}}
        return TabularDataset(_paths(path), partition_format, read)

    @staticmethod
    def from_parquet_files(path: Any, validate: bool = True, include_path: bool = False,
                           set_column_types: Any = None,
                           partition_format: str | None = None) -> TabularDataset:
        return TabularDataset(_paths(path), partition_format,
                              {"read_parquet": {"include_path_column": include_path}})

    @staticmethod
    def from_json_lines_files(path: Any, validate: bool = True, include_path: bool = False,
                              set_column_types: Any = None, partition_format: str | None = None,
                              invalid_lines: str = "error",
                              encoding: str = "utf8") -> TabularDataset:
        return TabularDataset(_paths(path), partition_format, {"read_json_lines": {
            "include_path_column": include_path, "invalid_lines": invalid_lines,
            "encoding": encoding}})


class Dataset:
    """``azureml.core.Dataset``: ``Dataset.File`` and ``Dataset.Tabular`` factories."""

    File = _FileFactory()
    Tabular = _TabularFactory()


class DatasetConsumptionConfig:
    """A dataset as a named step input (``dataset.as_named_input(name)``); modes are ignored."""

    def __init__(self, name: str | None, dataset: Any, mode: str = "direct",
                 path_on_compute: str | None = None) -> None:
        self.name, self.dataset, self.mode = name, dataset, mode

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        self.mode = "mount"
        return self

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        self.mode = "download"
        return self

    def as_direct(self) -> DatasetConsumptionConfig:
        self.mode = "direct"
        return self


class _Intermediate:
    """Data one step writes and another reads (PipelineData, OutputFileDatasetConfig).

    ``path`` may hold Azure's placeholders ``{run-id}`` and ``{output-name}``, filled in by
    ``placed`` for each run (a run must not overwrite the outputs of the one before).
    """

    def __init__(self, name: str | None, path: str | None = None,
                 datastore: Datastore | None = None) -> None:
        self.name, self.path, self.datastore = name or "output", path, datastore

    def placed(self, run_id: str | None) -> str | None:
        """The path for the step run ``run_id`` (None: not known yet, so ``{run-id}`` stays)."""
        if self.path is None:
            return None
        path = self.path.replace("{output-name}", self.name)
        return path if run_id is None else path.replace("{run-id}", run_id)

    def _self(self, *args: Any, **kwargs: Any) -> Any:
        return self

    as_dataset = as_download = as_mount = as_upload = as_direct = register_on_complete = _self

    def as_input(self, name: str | None = None) -> DatasetConsumptionConfig:
        """This output as the next step's input, called ``name`` there."""
        return DatasetConsumptionConfig(name or self.name, self, mode="mount")

    def _delimited(self, include_path: bool, separator: str, header: Any,
                   partition_format: str | None, glob: str | None, set_column_types: Any,
                   multi_line: bool = False) -> OutputTabularDatasetConfig:
        read = {"read_delimited": {"delimiter": separator, "header": _header_mode(header),
                                   "include_path_column": include_path,
                                   "support_multi_line": multi_line}}
        return OutputTabularDatasetConfig(self, read, partition_format, glob, set_column_types)

    def _parquet(self, include_path: bool, partition_format: str | None, glob: str | None,
                 set_column_types: Any) -> OutputTabularDatasetConfig:
        read = {"read_parquet": {"include_path_column": include_path}}
        return OutputTabularDatasetConfig(self, read, partition_format, glob, set_column_types)


class OutputTabularDatasetConfig:
    """What ``read_delimited_files()`` / ``read_parquet_files()`` return: the step that reads
    this output gets the files its producer wrote as a table (run() gets DataFrames), as it gets
    a TabularDataset on Azure. They are read when that step starts."""

    def __init__(self, source: _Intermediate, read: dict[str, Any],
                 partition_format: str | None, glob: str | None,
                 set_column_types: Any) -> None:
        if set_column_types:
            log.info("%s: set_column_types ignored; convert in the entry script", source.name)
        transforms: list[Any] = [read]
        if partition_format:
            transforms.append({"extract_columns_from_partition_format": partition_format})
        self.source, self.name = source, source.name
        self.table = {"transformations": transforms, "glob": glob}

    def as_input(self, name: str | None = None) -> DatasetConsumptionConfig:
        """This table as the next step's input, called ``name`` there."""
        return DatasetConsumptionConfig(name or self.name, self, mode="direct")

    def register_on_complete(self, name: str, description: str | None = None,
                             tags: Any = None) -> OutputTabularDatasetConfig:
        return self  # nothing to register: the data stays where the step wrote it


class PromoteHeadersBehavior(enum.Enum):
    """``azureml.data.dataset_type_definitions.PromoteHeadersBehavior``: ``header=`` of
    ``from_delimited_files``, as the MLTable header mode it means."""

    NO_HEADERS = 0
    ONLY_FIRST_FILE_HAS_HEADERS = 1
    COMBINE_ALL_FILES_HEADERS = 2
    ALL_FILES_HAVE_SAME_HEADERS = 3


_HEADER_MODES = {
    PromoteHeadersBehavior.NO_HEADERS: "no_header",
    PromoteHeadersBehavior.ONLY_FIRST_FILE_HAS_HEADERS: "from_first_file",
    PromoteHeadersBehavior.COMBINE_ALL_FILES_HEADERS: "all_files_different_headers",
    PromoteHeadersBehavior.ALL_FILES_HAVE_SAME_HEADERS: "all_files_same_headers",
}


def _header_mode(header: Any) -> str:
    """An MLTable ``header`` from a v1 ``header=``: a bool, a PromoteHeadersBehavior, or an
    MLTable mode."""
    if isinstance(header, PromoteHeadersBehavior):
        return _HEADER_MODES[header]
    if isinstance(header, bool | str):
        return {True: "all_files_same_headers", False: "no_header"}.get(header,
                                                                         str(header).lower())
    raise TypeError(f"header={header!r}: give True, False or a PromoteHeadersBehavior.")


def _writer(data: Any) -> Any:
    """The PipelineData / OutputFileDatasetConfig a step writes (``output=`` may be a table)."""
    return data.source if isinstance(data, OutputTabularDatasetConfig) else data


class PipelineData(_Intermediate):
    """``azureml.pipeline.core.PipelineData``: a step output under the run directory.

    ``as_dataset()`` returns it; ``parse_delimited_files()`` / ``parse_parquet_files()`` read it
    as a table in the next step.
    """

    def __init__(self, name: str, datastore: Any = None, output_name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(output_name or name,
                         datastore=datastore if isinstance(datastore, Datastore) else None)

    def parse_delimited_files(self, include_path: bool = False, separator: str = ",",
                              header: Any = True, partition_format: str | None = None,
                              file_extension: str = "", set_column_types: Any = None,
                              quoted_line_breaks: bool = False) -> OutputTabularDatasetConfig:
        return self._delimited(include_path, separator, header, partition_format,
                               f"**/*{file_extension}" if file_extension else None,
                               set_column_types, quoted_line_breaks)

    def parse_parquet_files(self, include_path: bool = False,
                            partition_format: str | None = None,
                            file_extension: str = ".parquet",
                            set_column_types: Any = None) -> OutputTabularDatasetConfig:
        return self._parquet(include_path, partition_format,
                             f"**/*{file_extension}" if file_extension else None,
                             set_column_types)


_PLACEHOLDERS = {"run-id", "output-name"}


class OutputFileDatasetConfig(_Intermediate):
    """``azureml.data.OutputFileDatasetConfig``: ``destination=(datastore, 'path')`` or none."""

    def __init__(self, name: str | None = None, destination: Any = None, source: Any = None,
                 partition_format: str | None = None) -> None:
        path, datastore = None, None
        if destination is not None:
            store, rel = destination if isinstance(destination, tuple) else (None, destination)
            unknown = sorted(set(re.findall(r"\{([^{}]*)\}", str(rel))) - _PLACEHOLDERS)
            if unknown:
                raise SpecError(f"OutputFileDatasetConfig destination {str(rel)!r}: "
                                f"{{{unknown[0]}}} is not a placeholder; Azure ML fills in only "
                                "{run-id} and {output-name}.")
            datastore = store if isinstance(store, Datastore) else None
            root = datastore.root if datastore else os.getcwd()
            path = os.path.normpath(os.path.join(root, str(rel)))
        super().__init__(name, path, datastore)

    def read_delimited_files(self, include_path: bool = False, separator: str = ",",
                             header: Any = True, partition_format: str | None = None,
                             path_glob: str | None = None,
                             set_column_types: Any = None) -> OutputTabularDatasetConfig:
        return self._delimited(include_path, separator, header, partition_format, path_glob,
                               set_column_types)

    def read_parquet_files(self, include_path: bool = False, partition_format: str | None = None,
                           path_glob: str | None = None,
                           set_column_types: Any = None) -> OutputTabularDatasetConfig:
        return self._parquet(include_path, partition_format, path_glob, set_column_types)


class ParallelRunConfig:
    """``azureml.pipeline.steps.ParallelRunConfig``, same arguments and defaults.

    ``environment`` and ``compute_target`` are accepted and ignored. On its own it runs like the
    v1 YAML (``daskprs.run(config, overrides={"inputs.data": PATH})``).
    """

    def __init__(self, environment: Any, entry_script: str, error_threshold: int,
                 output_action: str, compute_target: Any, node_count: Any,
                 process_count_per_node: Any = None, mini_batch_size: Any = None,
                 source_directory: str | None = None, description: str | None = None,
                 logging_level: Any = None, run_invocation_timeout: Any = None,
                 run_max_try: Any = None, append_row_file_name: str | None = None,
                 allowed_failed_count: int | None = None,
                 allowed_failed_percent: float | None = None, partition_keys: Any = None,
                 environment_variables: Mapping[str, str] | None = None) -> None:
        if str(output_action).lower() not in ("append_row", "summary_only"):
            raise SpecError(f"ParallelRunConfig output_action: {output_action!r} must be "
                            "append_row or summary_only.")
        self.environment, self.compute_target, self.description = (environment, compute_target,
                                                                   description)
        self.entry_script, self.error_threshold = entry_script, error_threshold
        self.output_action, self.node_count = output_action, node_count
        self.process_count_per_node, self.mini_batch_size = process_count_per_node, mini_batch_size
        self.source_directory = _absolute(source_directory or ".")
        self.logging_level = "INFO" if logging_level is None else logging_level
        self.run_invocation_timeout = 60 if run_invocation_timeout is None else \
            run_invocation_timeout
        self.run_max_try = 3 if run_max_try is None else run_max_try
        self.append_row_file_name = append_row_file_name
        self.allowed_failed_count, self.allowed_failed_percent = (allowed_failed_count,
                                                                  allowed_failed_percent)
        self.partition_keys, self.environment_variables = partition_keys, environment_variables

    def _mapping(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``parallel_run_config:`` YAML mapping, pipeline parameters resolved."""
        params = params or {}
        keys = ("mini_batch_size", "error_threshold", "output_action", "logging_level",
                "node_count", "process_count_per_node", "entry_script", "source_directory",
                "run_invocation_timeout", "run_max_try", "append_row_file_name",
                "allowed_failed_count", "allowed_failed_percent", "partition_keys",
                "environment_variables")
        config = {k: _resolve(getattr(self, k), params) for k in keys}
        if config["mini_batch_size"] is not None:
            config["mini_batch_size"] = str(config["mini_batch_size"])
        return {"parallel_run_config": {k: v for k, v in config.items() if v is not None}}

    def save_to_yaml(self, path: str) -> None:
        import yaml

        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self._mapping(), f, sort_keys=False)

    @staticmethod
    def load_yaml(workspace: Any, path: str) -> ParallelRunConfig:
        from ..dialects import read_yaml

        cfg = dict((read_yaml(path) or {}).get("parallel_run_config") or {})
        if cfg.get("source_directory"):
            cfg["source_directory"] = os.path.join(os.path.dirname(os.path.abspath(path)),
                                                   cfg["source_directory"])
        for key in ("compute_target_name", "environment", "environment_dir_path",
                    "environment_name"):
            cfg.pop(key, None)
        return ParallelRunConfig(environment=None, compute_target=None, **cfg)

    def to_jobspec(self, overrides: Any = None, job: str | None = None) -> Any:
        from ..dialects.overrides import parse_overrides
        from ..dialects.v1 import load

        return load(self._mapping(), base_dir=os.getcwd(), overrides=parse_overrides(overrides))


Binder = Callable[[_Intermediate], str | None]


class ParallelRunStep:
    """``azureml.pipeline.steps.ParallelRunStep``, same arguments; ``allow_reuse`` is ignored."""

    def __init__(self, name: str, parallel_run_config: ParallelRunConfig, inputs: list[Any],
                 output: Any = None, side_inputs: list[Any] | None = None,
                 arguments: list[Any] | None = None, allow_reuse: bool = True,
                 **kwargs: Any) -> None:
        if not inputs:
            raise SpecError(f"ParallelRunStep {name}: inputs= needs at least one dataset.")
        self.name, self.parallel_run_config = name, parallel_run_config
        self.inputs, self.output = list(inputs), output
        self.side_inputs, self.arguments = list(side_inputs or []), list(arguments or [])

    def _pairs(self, bind: Binder, params: Mapping[str, Any],
               run_id: str) -> list[tuple[str, Any]]:
        """The ``--set`` pairs that give the v1 dialect this step's data (``run_id``: this
        step run's id, for ``{run-id}`` in its output's destination)."""
        pairs: list[tuple[str, Any]] = [("name", self.name)]
        names: dict[int, str] = {}
        for i, item in enumerate(self.inputs):
            key, value = self._port(item, f"input_{i}", bind, params)
            names[id(item)] = key
            pairs.append((f"inputs.{key}", value))
        side = list(self.side_inputs)
        side += [a for a in self.arguments if _is_data(a) and id(a) not in names
                 and (self.output is None or _writer(a) is not _writer(self.output))
                 and a not in side]
        for i, item in enumerate(side):
            key, value = self._port(item, f"side_input_{i}", bind, params)
            names[id(item)] = key
            pairs.append((f"side_inputs.{key}", value))
        if self.output is not None:
            out = _writer(self.output)
            path = out.placed(run_id)
            pairs.append((f"outputs.{out.name}", {"path": path} if path else {}))
        args = []
        for a in self.arguments:
            a = _resolve(a, params)
            if self.output is not None and _writer(a) is _writer(self.output):
                args.append(_ref("outputs", a.name))
            elif id(a) in names:
                args.append(_ref("inputs", names[id(a)]))
            else:
                args.append(str(a))
        if args:
            pairs.append(("arguments", " ".join(args)))
        return pairs

    def _port(self, item: Any, fallback: str, bind: Binder,
              params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        name = getattr(item, "name", None)
        data = item.dataset if isinstance(item, DatasetConsumptionConfig) else item
        data = _resolve(data, params)
        key = str(name or getattr(data, "name", None) or fallback)
        what = f"ParallelRunStep {self.name} input {key}"
        if isinstance(data, _Dataset):
            return key, data._input(what)
        if isinstance(data, _Intermediate | OutputTabularDatasetConfig):
            made = _writer(data)
            if made is not data and len(self.inputs) > 1 and any(i is item for i in self.inputs):
                raise SpecError(f"{what}: a step output read as a table must be the step's only "
                                "input (daskprs splits one table); give the other inputs to "
                                "another step, or read this one as files (drop "
                                "read_delimited_files / read_parquet_files).")
            path = bind(made) or made.placed(None)
            if path is None:
                raise SpecError(f"{what}: {type(made).__name__} {made.name!r} is written by no "
                                "step of this pipeline; give it a destination, or add the step "
                                "that writes it.")
            if "{run-id}" in path:
                raise SpecError(f"{what}: the destination of {type(made).__name__} "
                                f"{made.name!r} holds {{run-id}}, which is known only when the "
                                "step that writes it runs. Submit that step and this one in one "
                                "Pipeline: Experiment(ws, NAME).submit(pipeline).")
            if made is data:
                return key, {"path": path}
            if path.startswith("${{"):  # bound by the pipeline, which makes the MLTable
                return key, {"type": "mltable", "path": path, TABLE: data.table}
            return key, {"type": "mltable", "path": output_mltable(
                path, data.table["transformations"], data.table["glob"])}
        if isinstance(data, str):
            return key, {"path": _absolute(data)}
        raise SpecError(f"{what}: expected a Dataset, dataset.as_named_input(...), PipelineData "
                        f"or OutputFileDatasetConfig, got {data!r}.")

    def _node(self, bind: Binder, params: Mapping[str, Any], run_id: str) -> dict[str, Any]:
        from ..dialects.v1 import to_v2

        raw = to_v2(self.parallel_run_config._mapping(params), base_dir=os.getcwd(),
                    overrides=self._pairs(bind, params, run_id))
        return {**raw, "type": "parallel"}

    def to_jobspec(self, overrides: Any = None, job: str | None = None,
                   params: Mapping[str, Any] | None = None) -> Any:
        from ..dialects.overrides import parse_overrides
        from ..dialects.v1 import load
        from ..rundir import default_run_dir

        run_id = os.path.basename(default_run_dir(self.name))  # a new one for each run
        pairs = self._pairs(lambda data: None, params or {}, run_id) + parse_overrides(overrides)
        return load(self.parallel_run_config._mapping(params), base_dir=os.getcwd(),
                    overrides=pairs)

    def __repr__(self) -> str:
        return f"<ParallelRunStep {self.name}>"


def _ref(*parts: str) -> str:
    return "${{" + ".".join(parts) + "}}"


def step_run_id(run_id: str, step: str) -> str:
    """A step run's id: unique per pipeline run, the same when that run is resumed."""
    return f"{run_id}_{step}"


def _is_data(value: Any) -> bool:
    return isinstance(value, _Dataset | DatasetConsumptionConfig | _Intermediate
                      | OutputTabularDatasetConfig)


class Pipeline:
    """``azureml.pipeline.core.Pipeline`` of ParallelRunSteps (linked by PipelineData)."""

    def __init__(self, workspace: Any, steps: list[Any], description: str | None = None,
                 **kwargs: Any) -> None:
        self.workspace, self.description = workspace, description
        self.steps = [s for step in steps for s in (step if isinstance(step, list) else [step])]
        for step in self.steps:
            if not isinstance(step, ParallelRunStep):
                raise SpecError(f"Pipeline: daskprs runs ParallelRunSteps; got "
                                f"{type(step).__name__}. Run other steps before, on their own.")

    def _mapping(self, name: str, params: Mapping[str, Any] | None,
                 run_id: str) -> dict[str, Any]:
        """The equivalent v2 pipeline: one parallel job per step (``run_id``: the pipeline
        run's; a step run's id is ``RUNID_STEP``)."""
        producers = {id(_writer(s.output)): s for s in self.steps if s.output is not None}

        def bind(data: _Intermediate) -> str | None:
            step = producers.get(id(data))
            return None if step is None else _ref("parent", "jobs", step.name, "outputs",
                                                  data.name)

        return {"type": "pipeline", "name": name,
                "jobs": {s.name: s._node(bind, params or {}, step_run_id(run_id, s.name))
                         for s in self.steps}}

    def to_jobspec(self, overrides: Any = None, job: str | None = None) -> Any:
        """The JobSpec of its step (``job`` names it when there are several)."""
        names = [s.name for s in self.steps]
        if job is None and len(self.steps) != 1:
            raise SpecError(f"this Pipeline has {len(self.steps)} steps ({', '.join(names)}); "
                            "run them all with Experiment(ws, NAME).submit(pipeline), or one "
                            "with pipeline.to_jobspec(job=NAME).")
        if job is not None and job not in names:
            raise SpecError(f"this Pipeline has no step {job!r}.{closest(job, names)} Steps: "
                            f"{', '.join(names)}.")
        return self.steps[names.index(job) if job else 0].to_jobspec(overrides)

    def validate(self) -> list[Any]:
        return []


class PortDataReference:
    """``step_run.get_output_data(name)``: a step's output. ``download`` copies it from where
    the step wrote it; ``path_on_datastore`` is that place under the datastore's folder, or
    ``azureml/STEP_RUN_ID/NAME`` (Azure's place for it) when it lies outside."""

    def __init__(self, name: str, path: str, path_on_datastore: str,
                 datastore: Datastore | None) -> None:
        self.name, self.path_on_datastore = name, path_on_datastore
        self.datastore, self._path = datastore, path

    @property
    def datastore_name(self) -> str:
        return self.datastore.name if self.datastore else "workspaceblobstore"

    def download(self, local_path: str | os.PathLike, overwrite: bool = False,
                 show_progress: bool = True) -> str:
        """Copy the output to ``local_path/path_on_datastore`` (as Azure lays it out) and return
        that folder; files already there are kept unless ``overwrite``."""
        from ._run import copy_output

        target = os.path.join(os.fspath(local_path), self.path_on_datastore)
        copy_output(self._path, target, f"output {self.name}", overwrite=overwrite)
        return target

    def __repr__(self) -> str:
        return f"<PortDataReference {self.name}: {self._path}>"


class StepRun:
    """A step of a finished PipelineRun (``find_step_run(name)[0]``, ``get_children()``);
    ``result`` is its RunResult."""

    def __init__(self, pipeline_run_id: str, name: str, result: Any, output: Any) -> None:
        self.id, self.name = step_run_id(pipeline_run_id, name), name
        self.result, self.run_dir, self._output = result, result.run_dir, output
        self.status = "Finished" if result.ok else "Failed"

    def get_status(self) -> str:
        return self.status

    def get_details(self) -> dict[str, Any]:
        return {"runId": self.id, "status": self.status, "runDir": self.run_dir}

    def get_output_data(self, name: str) -> PortDataReference:
        """The step's output called ``name`` (its PipelineData or OutputFileDatasetConfig)."""
        outputs = self.result.outputs
        if name not in outputs:
            raise SpecError(f"step {self.name} has no output {name!r}."
                            f"{closest(name, list(outputs))} Its outputs: "
                            f"{', '.join(outputs) or 'none'}.")
        store = getattr(self._output, "datastore", None)
        rel = os.path.relpath(outputs[name], store.root if store else os.getcwd())
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            rel = f"azureml/{self.id}/{name}"
        return PortDataReference(name, outputs[name], rel, store)

    def __repr__(self) -> str:
        return f"<StepRun {self.id}: {self.status}; run_dir={self.run_dir!r}>"


class PipelineRun:
    """What ``Experiment.submit`` returns (the run has already finished)."""

    def __init__(self, experiment: str, result: Any, pipeline: Pipeline | None = None) -> None:
        self.experiment, self._result = experiment, result
        self.id = os.path.basename(result.run_dir)
        self.run_dir = result.run_dir
        self.results = result.results
        self.status = "Finished" if result.ok else "Failed"
        outputs = {s.name: _writer(s.output) for s in (pipeline.steps if pipeline else [])}
        self._steps = {name: StepRun(self.id, name, res, outputs.get(name))
                       for name, res in result.results.items()}

    def get_status(self) -> str:
        return self.status

    def get_steps(self) -> Iterator[StepRun]:
        """The steps that ran, in run order."""
        return iter(self._steps.values())

    def get_children(self, recursive: bool = False, **kwargs: Any) -> Iterator[StepRun]:
        """The steps that ran, in run order (``next(pipeline_run.get_children())``)."""
        return iter(self._steps.values())

    def find_step_run(self, name: str) -> list[StepRun]:
        return [self._steps[name]] if name in self._steps else []

    def get_details(self) -> dict[str, Any]:
        return {"runId": self.id, "status": self.status, "runDir": self.run_dir,
                "steps": {k: v.status for k, v in self.results.items()}}

    def wait_for_completion(self, show_output: bool = True, timeout_seconds: Any = None,
                            raise_on_error: bool = True) -> str:
        """The final status; raises ``JobFailed`` (with the reason) if a step failed."""
        if show_output:
            print(f"PipelineRun {self.id}: {self.status} (run dir {self.run_dir})")
            for name, res in self.results.items():
                print(f"  {name}: {res!r}")
        if raise_on_error and self.status != "Finished":
            raise JobFailed(f"pipeline run {self.id} failed: {self._result.reason}",
                            self._result)
        return self.status

    def cancel(self) -> None:
        """Nothing to cancel: the run has finished."""

    def __repr__(self) -> str:
        return f"<PipelineRun {self.id}: {self.status}; run_dir={self.run_dir!r}>"


class Experiment:
    """``azureml.core.Experiment``: ``submit`` runs the pipeline here, then returns."""

    def __init__(self, workspace: Any, name: str, **kwargs: Any) -> None:
        self.workspace, self.name = workspace, name

    def submit(self, config: Any, tags: Any = None, pipeline_parameters: Mapping[str, Any]
               | None = None, run_dir: str | None = None, client: Any = None,
               workers: int | None = None, quiet: bool = False, **kwargs: Any) -> PipelineRun:
        """Run ``config`` (a Pipeline or a ParallelRunStep); ``pipeline_parameters`` set
        PipelineParameters by name. daskprs extras: ``run_dir``, ``client``, ``workers``,
        ``quiet``."""
        from ..rundir import default_run_dir
        from ._run import run_pipeline

        if isinstance(config, ParallelRunStep):
            config = Pipeline(self.workspace, [config])
        if not isinstance(config, Pipeline):
            raise SpecError(f"Experiment.submit: expected a Pipeline, got {type(config).__name__}.")
        root = os.path.abspath(run_dir or default_run_dir(self.name))
        mapping = config._mapping(self.name, pipeline_parameters, os.path.basename(root))
        result = run_pipeline(mapping, base_dir=os.getcwd(), run_dir=root, client=client,
                              workers=workers, quiet=quiet)
        return PipelineRun(self.name, result, config)
