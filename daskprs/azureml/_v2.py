"""Azure ML SDK v2 shapes (``azure.ai.ml``): Input, Output, RunFunction, parallel_run_function,
command, load_component, the ``pipeline`` decorator and MLClient.

Each object builds the mapping that the equivalent v2 YAML would hold (a node of a ``type:
pipeline`` job with an inline ``component:``); the pipeline dialect turns it into a JobSpec, so
the Python API and the YAML cannot drift apart. ``str(pipeline_job)`` shows that YAML.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import os
import pathlib
import sys
import threading
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from ..errors import JobFailed, SpecError
from ..spec import closest

log = logging.getLogger("daskprs")


class AssetTypes:
    """``azure.ai.ml.constants.AssetTypes``."""

    URI_FILE = "uri_file"
    URI_FOLDER = "uri_folder"
    MLTABLE = "mltable"
    MLFLOW_MODEL = "mlflow_model"
    CUSTOM_MODEL = "custom_model"
    TRITON_MODEL = "triton_model"


class InputOutputModes:
    """``azure.ai.ml.constants.InputOutputModes`` (offline every mode is a local path)."""

    MOUNT = "mount"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    RO_MOUNT = "ro_mount"
    RW_MOUNT = "rw_mount"
    EVAL_MOUNT = "eval_mount"
    EVAL_DOWNLOAD = "eval_download"
    DIRECT = "direct"


def _absolute(path: Any, base: str) -> Any:
    if not isinstance(path, str) or "://" in path or path.startswith(("azureml:", "${{")):
        return path
    return os.path.normpath(os.path.join(base, path))


class Input:
    """``azure.ai.ml.Input``: a data input (``type``, ``path``, ``mode``) or a literal one.

    A relative ``path`` is relative to the current directory when the Input is created.
    """

    def __init__(self, *, type: str = "uri_folder", path: Any = None, mode: str | None = None,
                 optional: bool | None = None, default: Any = None,
                 description: str | None = None, **kwargs: Any) -> None:
        self.type, self.path, self.mode = type, _absolute(path, os.getcwd()), mode
        self.optional, self.default, self.description = optional, default, description

    def _decl(self) -> dict[str, Any]:
        decl = {"type": self.type, "path": self.path, "mode": self.mode,
                "optional": self.optional, "default": self.default}
        return {k: v for k, v in decl.items() if v is not None}

    def __repr__(self) -> str:
        return f"Input({', '.join(f'{k}={v!r}' for k, v in self._decl().items())})"


class Output:
    """``azure.ai.ml.Output``: an output port; no ``path`` means one under the run directory."""

    def __init__(self, *, type: str = "uri_folder", path: Any = None, mode: str | None = None,
                 description: str | None = None, **kwargs: Any) -> None:
        self.type, self.path, self.mode, self.description = type, path, mode, description
        if isinstance(path, str) and not path.startswith("azureml:"):
            self.path = _absolute(path, os.getcwd())

    def _decl(self) -> dict[str, Any]:
        decl = {"type": self.type, "path": self.path, "mode": self.mode}
        return {k: v for k, v in decl.items() if v is not None}

    def __repr__(self) -> str:
        return f"Output({', '.join(f'{k}={v!r}' for k, v in self._decl().items())})"


class RunFunction:
    """``azure.ai.ml.parallel.RunFunction``: the parallel task (``environment`` is ignored)."""

    def __init__(self, *, code: str | None = None, entry_script: str | None = None,
                 program_arguments: str | None = None, model: Any = None,
                 append_row_to: str | None = None, environment: Any = None,
                 **kwargs: Any) -> None:
        self.code = _absolute(code or ".", os.getcwd())
        self.entry_script, self.program_arguments = entry_script, program_arguments
        self.append_row_to, self.environment, self.model = append_row_to, environment, model

    def _task(self) -> dict[str, Any]:
        task = {"type": "run_function", "code": self.code, "entry_script": self.entry_script,
                "program_arguments": self.program_arguments, "append_row_to": self.append_row_to}
        return {k: v for k, v in task.items() if v is not None}


# --- nodes -------------------------------------------------------------------------------

class _PortRef:
    """``node.inputs.x`` / ``node.outputs.y``: set ``type``, ``mode`` or ``path`` on it; an
    output passed to another node binds that node's input to it."""

    _FIELDS = ("type", "mode", "path", "description")

    def __init__(self, node: _Node, kind: str, name: str) -> None:
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        if attr not in self._FIELDS:
            raise AttributeError(attr)
        settings = self._node._port_settings.get((self._kind, self._name), {})
        if attr in settings:
            return settings[attr]
        decl = (self._node._component.get(self._kind) or {}).get(self._name)
        return decl.get(attr) if isinstance(decl, Mapping) else None

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr not in self._FIELDS:
            raise AttributeError(f"{self._kind}.{self._name}: cannot set {attr!r}; set one of "
                                 f"{', '.join(self._FIELDS)}.")
        if attr == "path":
            value = _absolute(value, os.getcwd())
        self._node._port_settings.setdefault((self._kind, self._name), {})[attr] = value

    def __repr__(self) -> str:
        return f"<{self._kind[:-1]} {self._name} of {self._node._label()}>"


class _Ports:
    def __init__(self, node: _Node, kind: str) -> None:
        self._node, self._kind = node, kind

    def _names(self) -> list[str]:
        return list(self._node._component.get(self._kind) or {})

    def __getattr__(self, name: str) -> _PortRef:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._names():
            raise AttributeError(f"{self._node._label()} has no {self._kind[:-1]} {name!r}."
                                 f"{closest(name, self._names())}")
        return _PortRef(self._node, self._kind, name)

    __getitem__ = __getattr__

    def __iter__(self) -> Any:
        return iter(self._names())

    def __repr__(self) -> str:
        return f"<{self._kind}: {', '.join(self._names())}>"


_builders = threading.local()


class _Node:
    """A component, and (once called with inputs) a job using it."""

    kind = "parallel"

    def __init__(self, component: dict[str, Any], *, name: str | None = None,
                 base_dir: str | None = None) -> None:
        self._component = component
        self._base = base_dir or os.getcwd()
        self._values: dict[str, Any] = {}
        self._port_settings: dict[tuple[str, str], dict[str, Any]] = {}
        self._settings: dict[str, Any] = {}
        self.name = name or component.get("name")
        self.status: str | None = None
        self.results: dict[str, Any] = {}
        self.run_dir: str | None = None
        self.studio_url: str | None = None  # set when it has run: the run directory's URI
        self._outcome: Any = None  # the RunResult, or the PipelineResult

    def _label(self) -> str:
        return f"{self.kind} {self.name or 'component'}"

    @property
    def inputs(self) -> _Ports:
        return _Ports(self, "inputs")

    @property
    def outputs(self) -> _Ports:
        return _Ports(self, "outputs")

    def __call__(self, *args: Any, **inputs: Any) -> _Node:
        """A job of this component with these inputs (recorded in the enclosing pipeline)."""
        if args:
            raise TypeError(f"{self._label()}: give inputs as keyword arguments "
                            f"({', '.join(self.inputs)}).")
        node = copy.copy(self)
        node._values = {**self._values, **{k: v for k, v in inputs.items() if v is not None}}
        node._port_settings = copy.deepcopy(self._port_settings)
        node._settings = dict(self._settings)
        stack = getattr(_builders, "stack", None)
        if stack:
            stack[-1].append(node)
        return node

    def _node_mapping(self, names: Callable[[_Node], str] | None,
                      bound_outputs: Mapping[str, str] | None = None) -> dict[str, Any]:
        """This job as a node of a v2 pipeline (component inline, values on top)."""
        inputs: dict[str, Any] = {k: _value(v, names, f"{self._label()} inputs.{k}")
                                  for k, v in self._values.items()}
        outputs: dict[str, Any] = {k: {"path": _ref("parent", "outputs", v)}
                                   for k, v in (bound_outputs or {}).items()}
        for (kind, port), settings in self._port_settings.items():
            target = inputs if kind == "inputs" else outputs
            current = target.get(port)
            if isinstance(current, dict):
                current.update(settings)
            elif isinstance(current, str) and current.startswith("${{"):
                target[port] = {**settings, "path": current}
            elif current is None:
                target[port] = dict(settings)
        node = {"type": self.kind, "component": copy.deepcopy(self._component)}
        if inputs:
            node["inputs"] = inputs
        if outputs:
            node["outputs"] = outputs
        node.update(copy.deepcopy(self._settings))
        return node

    def to_jobspec(self, overrides: Any = None, job: str | None = None) -> Any:
        """The JobSpec of this job (``daskprs.run(node)`` calls this)."""
        from ..dialects.overrides import parse_overrides
        from ..dialects.pipeline import load

        if self.kind != "parallel":
            raise SpecError(f"{self._label()}: a {self.kind} job is not a parallel job; run it in "
                            "a pipeline with a parallel job that reads its outputs.")
        name = str(self.name or "parallel")
        mapping = {"type": "pipeline", "name": name, "jobs": {name: self._node_mapping(None)}}
        return load(mapping, base_dir=self._base, overrides=parse_overrides(overrides))

    def __repr__(self) -> str:
        return f"<{self._label()}: inputs {', '.join(self.inputs)}; outputs " \
               f"{', '.join(self.outputs)}>"


class Parallel(_Node):
    """What ``parallel_run_function`` returns: call it with inputs to get a job."""

    kind = "parallel"
    _SETTINGS = ("mini_batch_size", "partition_keys", "error_threshold",
                 "mini_batch_error_threshold", "max_concurrency_per_instance", "logging_level",
                 "environment_variables", "retry_settings", "input_data")

    def set_resources(self, *, instance_count: int | None = None, **kwargs: Any) -> None:
        if instance_count is not None:
            self._settings["resources"] = {"instance_count": instance_count}

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self._SETTINGS:
            self._settings[key] = _plain(value)
        else:
            object.__setattr__(self, key, value)


class Command(_Node):
    """A command component or job (``command()``, ``load_component``): run as a subprocess."""

    kind = "command"


def _plain(value: Any) -> Any:
    """Settings objects (e.g. a RetrySettings) as plain mappings."""
    if value is None or isinstance(value, str | int | float | bool | list | tuple | dict):
        return value
    return {k: v for k, v in vars(value).items() if not k.startswith("_") and v is not None}


def _ref(*parts: str) -> str:
    return "${{" + ".".join(parts) + "}}"


def _value(value: Any, names: Callable[[_Node], str] | None, where: str) -> Any:
    """A node input value as it appears in the pipeline mapping."""
    if isinstance(value, Input):
        return value._decl()
    if isinstance(value, _PipelineInput):
        return _ref("parent", "inputs", value._name)
    if isinstance(value, _PortRef):
        if value._kind != "outputs":
            raise SpecError(f"{where}: bind an input to another job's output, not to its input.")
        if names is None:
            raise SpecError(f"{where}: bound to an output of {value._node._label()}; run both "
                            "jobs in a pipeline (@pipeline) so that one can feed the other.")
        return _ref("parent", "jobs", names(value._node), "outputs", value._name)
    if isinstance(value, Output):
        return value._decl()
    return value


def parallel_run_function(
    *, name: str | None = None, description: str | None = None, tags: Any = None,
    properties: Any = None, display_name: str | None = None,
    experiment_name: str | None = None, compute: str | None = None, retry_settings: Any = None,
    environment_variables: Mapping[str, str] | None = None, logging_level: str | None = None,
    max_concurrency_per_instance: int | None = None, error_threshold: int | None = None,
    mini_batch_error_threshold: int | None = None, task: RunFunction | None = None,
    mini_batch_size: str | None = None, partition_keys: list[str] | None = None,
    input_data: str | None = None, inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None, instance_count: int | None = None,
    instance_type: str | None = None, docker_args: str | None = None,
    shm_size: str | None = None, identity: Any = None, is_deterministic: bool = True,
    **kwargs: Any,
) -> Parallel:
    """``azure.ai.ml.parallel.parallel_run_function``, same arguments and defaults.

    Returns a ``Parallel``: call it with inputs inside a ``@pipeline`` (or on its own and give
    it to ``daskprs.run``). Azure-only arguments (compute, instance_type, identity, ...) are
    accepted and ignored; unknown keyword arguments are ignored with an INFO line, as the SDK
    swallows them.
    """
    if kwargs:
        log.info("parallel_run_function: ignoring %s", ", ".join(sorted(kwargs)))
    if task is None:
        raise SpecError("parallel_run_function: task=RunFunction(code=..., entry_script=...) "
                        "is required.")
    component: dict[str, Any] = {
        "type": "parallel",
        "name": name,
        "inputs": {k: _declaration(v, f"inputs.{k}") for k, v in (inputs or {}).items()},
        "outputs": {k: _declaration(v, f"outputs.{k}") for k, v in (outputs or {}).items()},
        "input_data": input_data,
        "mini_batch_size": None if mini_batch_size is None else str(mini_batch_size),
        "partition_keys": partition_keys,
        "error_threshold": error_threshold,
        "mini_batch_error_threshold": mini_batch_error_threshold,
        "max_concurrency_per_instance": max_concurrency_per_instance,
        "logging_level": logging_level,
        "environment_variables": dict(environment_variables) if environment_variables else None,
        "retry_settings": _plain(retry_settings),
        "resources": {"instance_count": instance_count} if instance_count is not None else None,
        "task": task._task(),
    }
    component = {k: v for k, v in component.items() if v is not None}
    return Parallel(component, name=name)


def _declaration(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, Input | Output):
        return value._decl()
    if isinstance(value, bool | int | float | str):
        return {"type": _literal_type(value), "default": value}
    raise SpecError(f"{where}: expected Input(...) / Output(...) or a literal, got {value!r}.")


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def command(*, name: str | None = None, command: str | None = None, code: str | None = None,
            inputs: Mapping[str, Any] | None = None, outputs: Mapping[str, Any] | None = None,
            environment: Any = None, environment_variables: Mapping[str, str] | None = None,
            display_name: str | None = None, description: str | None = None,
            compute: str | None = None, **kwargs: Any) -> Command:
    """``azure.ai.ml.command``: a command job (``inputs`` may hold values: paths, literals)."""
    decls = {}
    for key, value in (inputs or {}).items():
        if isinstance(value, Input):
            decls[key] = {k: v for k, v in value._decl().items() if k not in ("path", "mode")}
        else:
            decls[key] = _declaration(value, f"inputs.{key}")
            decls[key].pop("default", None)
    component = {"type": "command", "name": name, "command": command,
                 "code": _absolute(code or ".", os.getcwd()), "inputs": decls,
                 "outputs": {k: _declaration(v, f"outputs.{k}") for k, v in
                             (outputs or {}).items()},
                 "environment_variables": dict(environment_variables or {})}
    node = Command(component, name=name)
    node._values = {k: v for k, v in (inputs or {}).items() if v is not None}
    return node


def load_component(source: str | os.PathLike | None = None, *, client: Any = None,
                   **kwargs: Any) -> _Node:
    """``azure.ai.ml.load_component``: a parallel or command component from its YAML file."""
    from ..dialects import read_yaml
    from ..dialects.pipeline import _absolute_component

    if source is None:
        raise SpecError("load_component: give source= the component's YAML file.")
    path = os.path.abspath(os.fspath(source))
    doc = read_yaml(path)
    if not isinstance(doc, Mapping):
        raise SpecError(f"{path}: a component file must be a YAML mapping.")
    kind = doc.get("type")
    if kind not in ("parallel", "command"):
        raise SpecError(f"{path}: type {kind!r}; daskprs loads parallel and command components.")
    component = _absolute_component(dict(doc), os.path.dirname(path), kind, path)
    cls = Parallel if kind == "parallel" else Command
    return cls(component, name=doc.get("name"), base_dir=os.path.dirname(path))


# --- pipelines ---------------------------------------------------------------------------

class _PipelineInput:
    """A pipeline function's parameter inside its body: binds node inputs to it."""

    def __init__(self, name: str, value: Any) -> None:
        self._name, self._value = name, value

    def __repr__(self) -> str:
        return f"<pipeline input {self._name}>"


class _PipelineOutput:
    """``pipeline_job.outputs.x``: set ``type``, ``mode`` or ``path``."""

    def __init__(self) -> None:
        self.type: str | None = None
        self.mode: str | None = None
        self.path: str | None = None

    def _decl(self) -> dict[str, Any]:
        path = self.path if self.path is None or str(self.path).startswith("azureml:") \
            else _absolute(self.path, os.getcwd())
        decl = {"type": self.type, "mode": self.mode, "path": path}
        return {k: v for k, v in decl.items() if v is not None}


class PipelineJob:
    """What a ``@pipeline`` function returns; ``ml_client.jobs.create_or_update`` runs it."""

    def __init__(self, *, name: str, inputs: Mapping[str, Any], nodes: list[tuple[str, _Node]],
                 outputs: Mapping[str, _PortRef], display_name: str | None = None,
                 description: str | None = None, experiment_name: str | None = None) -> None:
        self.name, self.display_name, self.description = name, display_name, description
        self.experiment_name = experiment_name
        self.inputs = SimpleNamespace(**dict(inputs))
        self.jobs = dict(nodes)
        self._ids = {id(node): key for key, node in nodes}
        self._bound = dict(outputs)
        self.outputs = SimpleNamespace(**{k: _PipelineOutput() for k in outputs})
        self.settings = SimpleNamespace(default_compute=None, default_datastore=None,
                                        continue_on_step_failure=None, force_rerun=None)
        self._base = os.getcwd()
        self.status: str | None = None
        self.results: dict[str, Any] = {}
        self.run_dir: str | None = None
        self.studio_url: str | None = None  # set when it has run: the run directory's URI
        self._outcome: Any = None  # the PipelineResult

    def _job_name(self, node: _Node) -> str:
        if id(node) not in self._ids:
            raise SpecError(f"{node._label()} is used by the pipeline but was not created in it.")
        return self._ids[id(node)]

    def to_mapping(self) -> dict[str, Any]:
        """The equivalent v2 pipeline YAML, as a mapping."""
        inputs = {}
        for key, value in vars(self.inputs).items():
            if isinstance(value, Input):
                inputs[key] = value._decl()
            elif value is not None:
                inputs[key] = value
        bound: dict[str, dict[str, str]] = {}
        for key, ref in self._bound.items():
            bound.setdefault(self._job_name(ref._node), {})[ref._name] = key
        jobs = {key: node._node_mapping(self._job_name, bound.get(key))
                for key, node in self.jobs.items()}
        return {"type": "pipeline", "name": self.name, "inputs": inputs,
                "outputs": {k: v._decl() for k, v in vars(self.outputs).items()}, "jobs": jobs}

    def to_jobspec(self, overrides: Any = None, job: str | None = None) -> Any:
        """The JobSpec of its parallel job (``job`` names it when there are several)."""
        from ..dialects.overrides import parse_overrides
        from ..dialects.pipeline import load

        return load(self.to_mapping(), base_dir=self._base,
                    overrides=parse_overrides(overrides), job=job)

    def __str__(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_mapping(), sort_keys=False)

    def __repr__(self) -> str:
        return (f"<PipelineJob {self.name}: jobs {', '.join(self.jobs)}"
                + (f"; {self.status}, run_dir={self.run_dir!r}>" if self.status else ">"))


def pipeline(func: Callable[..., Any] | None = None, *, name: str | None = None,
             version: str | None = None, display_name: str | None = None,
             description: str | None = None, experiment_name: str | None = None,
             tags: Any = None, **kwargs: Any) -> Any:
    """``azure.ai.ml.dsl.pipeline``: calling the decorated function builds a PipelineJob.

    Jobs are named after the variables they are assigned to in the function, as in the SDK.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., PipelineJob]:
        @functools.wraps(fn)
        def build(*args: Any, **kw: Any) -> PipelineJob:
            params = inspect.signature(fn).bind(*args, **kw)
            params.apply_defaults()
            values = dict(params.arguments)
            stack = getattr(_builders, "stack", None)
            if stack is None:
                stack = _builders.stack = []
            if stack:
                raise SpecError(f"pipeline {fn.__name__}: pipelines inside pipelines are not "
                                "supported by daskprs; call the components directly.")
            stack.append([])
            names: dict[str, Any] = {}
            try:
                result = _call_capturing(fn, {k: _PipelineInput(k, v) for k, v in
                                              values.items()}, names)
            finally:
                created = stack.pop()
            outputs = dict(result or {})
            for key, ref in outputs.items():
                if not isinstance(ref, _PortRef) or ref._kind != "outputs":
                    raise SpecError(f"pipeline {fn.__name__}: returned {key!r} must be a job's "
                                    f"output (job.outputs.NAME), got {ref!r}.")
            return PipelineJob(name=name or fn.__name__, inputs=values,
                               nodes=_name_nodes(created, names), outputs=outputs,
                               display_name=display_name, description=description,
                               experiment_name=experiment_name)

        return build

    return decorate(func) if callable(func) else decorate


def _call_capturing(fn: Callable[..., Any], kwargs: dict[str, Any], into: dict[str, Any]) -> Any:
    """Call ``fn`` and copy its local variables at return (they name the jobs, as in the SDK)."""
    code = fn.__code__
    previous = sys.getprofile()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            into.update(frame.f_locals)

    sys.setprofile(profile)
    try:
        return fn(**kwargs)
    finally:
        sys.setprofile(previous)


def _name_nodes(created: list[_Node], names: Mapping[str, Any]) -> list[tuple[str, _Node]]:
    by_id = {id(v): k for k, v in names.items() if isinstance(v, _Node)}
    taken: set[str] = set()
    out = []
    for i, node in enumerate(created):
        key = by_id.get(id(node)) or f"{node.name or node.kind}_{i + 1}"
        while key in taken:
            key = f"{key}_{i + 1}"
        taken.add(key)
        out.append((key, node))
    return out


# --- MLClient ----------------------------------------------------------------------------

class JobException(JobFailed):
    """``azure.ai.ml.exceptions.JobException``: ``jobs.stream`` raises it for a failed job."""


class _Jobs:
    def __init__(self) -> None:
        self._runs: dict[str, Any] = {}

    def create_or_update(self, job: Any, *, description: str | None = None,
                         compute: str | None = None, tags: Any = None,
                         experiment_name: str | None = None, skip_validation: bool = False,
                         run_dir: str | None = None, client: Any = None,
                         workers: int | None = None, quiet: bool = False,
                         **kwargs: Any) -> Any:
        """Run the job here and now (Azure queues it); returns it with ``status`` set.

        A job that fails is reported by ``stream`` (as on Azure); a bad spec raises here.
        daskprs extras: ``run_dir``, ``client`` (a Dask Client), ``workers``, ``quiet``.
        """
        from .. import api
        from ._run import run_pipeline

        if isinstance(job, PipelineJob):
            result = run_pipeline(job.to_mapping(), base_dir=job._base, run_dir=run_dir,
                                  client=client, workers=workers, quiet=quiet)
            job.results, job.run_dir, ok = result.results, result.run_dir, result.ok
            job._outcome = result
        elif isinstance(job, Parallel):
            res = api.run(job, run_dir=run_dir, client=client, workers=workers, quiet=quiet)
            job.results, job.run_dir, ok = {str(job.name): res}, res.run_dir, res.ok
            job._outcome = res
        else:
            raise SpecError(f"create_or_update: cannot run {type(job).__name__}; give a pipeline "
                            "job or a parallel job.")
        job.status = "Completed" if ok else "Failed"
        job.name = os.path.basename(job.run_dir)
        job.studio_url = pathlib.Path(job.run_dir).as_uri()  # no studio: the run directory
        self._runs[job.name] = job
        return job

    def stream(self, name: Any) -> None:
        """Print the outcome (the job already ran in ``create_or_update``); raise
        ``JobException`` with the reason if it failed, as Azure does."""
        job = self.get(name)
        print(f"RunId: {job.name}\nWeb View: {job.studio_url}\nStatus: {job.status}")
        for key, res in job.results.items():
            print(f"  {key}: {res!r}")
        if job.status == "Failed":
            raise JobException(f"job {job.name} failed: {job._outcome.reason} (run dir: "
                               f"{job.run_dir})", job._outcome)

    def download(self, name: str, *, download_path: str | os.PathLike = ".",
                 output_name: str | None = None, all: bool = False) -> None:
        """Copy a job's results from its run directory, laid out as Azure downloads them:
        output ``output_name`` to ``DOWNLOAD_PATH/named-outputs/NAME``; without it the logs to
        ``DOWNLOAD_PATH/artifacts``; ``all=True`` both, for every output. A pipeline job's
        outputs are those its pipeline function returns."""
        from ._run import copy_logs, copy_output

        job = self.get(name)
        outputs = _output_paths(job)
        if output_name is not None and output_name not in outputs:
            raise SpecError(f"jobs.download: job {job.name} has no output {output_name!r}."
                            f"{closest(output_name, list(outputs))} Its outputs: "
                            f"{', '.join(outputs) or 'none'}.")
        folder = os.fspath(download_path)
        for key in [output_name] if output_name else list(outputs) if all else []:
            copy_output(outputs[key], os.path.join(folder, "named-outputs", key),
                        f"output {key} of job {job.name}")
        if output_name is None:
            copy_logs(job.run_dir, os.path.join(folder, "artifacts"))

    def get(self, name: Any) -> Any:
        key = getattr(name, "name", name)
        if key not in self._runs:
            raise SpecError(f"no job {key!r} ran in this session.")
        return self._runs[key]


def _output_paths(job: Any) -> dict[str, str | None]:
    """Where a job that ran wrote each of its outputs (None: not written)."""
    if isinstance(job, Parallel):
        return dict(job._outcome.outputs)
    made = job._outcome.outputs  # job -> output -> path, for the jobs that ran
    return {key: made.get(job._job_name(ref._node), {}).get(ref._name)
            for key, ref in job._bound.items()}


class MLClient:
    """``azure.ai.ml.MLClient``: ``jobs.create_or_update`` runs jobs locally on Dask."""

    def __init__(self, credential: Any = None, subscription_id: str | None = None,
                 resource_group_name: str | None = None, workspace_name: str | None = None,
                 **kwargs: Any) -> None:
        self.subscription_id, self.resource_group_name = subscription_id, resource_group_name
        self.workspace_name = workspace_name or "local"
        self.jobs = _Jobs()
        self.compute = SimpleNamespace(get=lambda name: SimpleNamespace(name=name, type="local"))

    @classmethod
    def from_config(cls, credential: Any = None, *, path: str | None = None,
                    file_name: str | None = None, **kwargs: Any) -> MLClient:
        return cls(credential)

