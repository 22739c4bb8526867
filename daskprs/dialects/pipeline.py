"""Azure ML v2 ``type: pipeline`` jobs: their parallel jobs, and the command steps that feed them.

A pipeline's ``jobs:`` hold inline parallel jobs or ``component: ./x.yml`` references (the
component's keys, with the node's keys on top), and ``type: command`` steps. One parallel job
becomes the JobSpec (``--job NAME`` picks it when there are several); the command steps whose
outputs it reads become its ``pre_steps``, run by ``daskprs.commands`` once the run directory
exists. ``${{parent.inputs.x}}``, ``${{parent.outputs.x}}`` and
``${{parent.jobs.NAME.outputs.x}}`` bind to the pipeline's inputs and to other jobs' output paths;
an output with no path goes under the run directory.

``--set jobs.NAME.KEY=V`` sets a key of one job; ``--set inputs.X=V`` / ``outputs.X=V`` set a
pipeline-level port when the pipeline declares X; any other ``--set KEY=V`` goes to the parallel
job being run (v1 run-setting names are accepted as aliases).
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from ..commands import RUN_DIR_TOKEN, check_steps, make_step
from ..errors import SpecError
from ..spec import FILE_TYPES, LITERAL_TYPES, JobSpec, closest
from ._common import (
    AZURE_ONLY,
    RUN_SETTING_ALIASES,
    apply_extras,
    as_mapping,
    check_keys,
    is_asset,
    no_asset,
    output_mltable,
    pop_extras,
    resolve_path,
    setting_key,
)
from .overrides import apply_override

log = logging.getLogger("daskprs")

TOP_KEYS = {"type", "name", "jobs", "inputs", "outputs", "settings"}
COMMAND_KEYS = {"type", "name", "command", "code", "inputs", "outputs", "environment_variables"}
COMMAND_IGNORED = AZURE_ONLY | {"distribution", "limits", "services"}
PORT_KEYS = {"type", "path", "mode", "optional", "default", "value", "description"}
_PORT_IGNORED = {"min", "max", "enum", "datastore", "datastore_mode", "is_resource", "name",
                 "version"}
_COMPONENT_ONLY = ("name", "version", "$schema", "display_name", "description", "tags",
                   "is_deterministic")
_MERGED = ("task", "resources", "retry_settings", "environment_variables")
_WHOLE = re.compile(r"^\s*\$\{\{\s*parent\.([^}]*?)\s*\}\}\s*$")
_PARENT = re.compile(r"\$\{\{\s*parent\.([^}]*?)\s*\}\}")
_JOB_REF = re.compile(r"\$\{\{\s*parent\.jobs\.([^.}\s]+)\.")
_FROM = "__from__"  # provenance of a bound input: (producing job, output)
# SDK v1 ``read_delimited_files()`` on a bound input: read the files the producer writes as a
# table ({"transformations": [...], "glob": ...}); see ``dialects._common.output_mltable``.
TABLE = "__table__"


def detect(mapping: Mapping[str, Any]) -> bool:
    return mapping.get("type") == "pipeline"


def load(
    mapping: Mapping[str, Any],
    *,
    base_dir: str,
    overrides: list[tuple[str, Any]] = (),
    job: str | None = None,
) -> JobSpec:
    """The JobSpec of the pipeline's parallel job (``job`` when it has several)."""
    return Pipeline(mapping, base_dir, overrides, job=job).jobspec()


def expand(
    mapping: Mapping[str, Any],
    *,
    base_dir: str,
    overrides: list[tuple[str, Any]] = (),
    root: str,
) -> list[tuple[str, str, Any]]:
    """Every job to run for the whole pipeline, in dependency order, as ``(name, kind, what)``.

    ``kind`` is ``"command"`` (``what`` is a step for ``daskprs.commands.run_step``) or
    ``"parallel"`` (a JobSpec whose run directory is ``ROOT/jobs/NAME``). Outputs without a path
    are placed under ``root``. Jobs of other types are skipped.
    """
    return Pipeline(mapping, base_dir, overrides, root=root).all_jobs()


class Pipeline:
    """A parsed pipeline; jobs are resolved on demand (only what the run needs)."""

    def __init__(self, mapping: Mapping[str, Any], base_dir: str,
                 overrides: list[tuple[str, Any]] = (), *, job: str | None = None,
                 root: str | None = None) -> None:
        check_keys(mapping, TOP_KEYS, "pipeline")
        self.base_dir = base_dir
        self.whole = root is not None
        self.root = root if root is not None else RUN_DIR_TOKEN
        self.name = str(mapping.get("name") or mapping.get("display_name") or "pipeline")
        settings = as_mapping(mapping.get("settings"), "settings")
        if settings:
            log.info("settings: %s ignored (daskprs runs here)", ", ".join(map(str, settings)))
        jobs = as_mapping(mapping.get("jobs"), "jobs")
        if not jobs:
            raise SpecError("jobs: the pipeline has no jobs; add a `type: parallel` job.")
        self.raw: dict[str, dict[str, Any]] = {}
        self.components: dict[str, tuple[dict[str, Any], str]] = {}
        self.kinds: dict[str, str] = {}
        for name, node in jobs.items():
            node = dict(as_mapping(node, f"jobs.{name}"))
            component = self._load_component(name, node)
            kind = node.get("type") or (component[0].get("type") if component else None)
            if component and node.get("type") and component[0].get("type") not in (
                    None, node["type"]):
                raise SpecError(f"jobs.{name}: type {node['type']!r} but its component is "
                                f"type {component[0]['type']!r}.")
            if not kind:
                raise SpecError(f"jobs.{name}: no type; give type: parallel or type: command.")
            self.raw[str(name)] = node
            self.kinds[str(name)] = str(kind)
            if component:
                self.components[str(name)] = component
        self.parallel = [n for n, k in self.kinds.items() if k == "parallel"]
        if self.whole:
            self.selected = self.parallel[0] if len(self.parallel) == 1 else None
        else:
            self.selected = self._select(job)
        pipeline_pairs, self.node_pairs = self._route(overrides, mapping)
        ports: dict[str, Any] = {
            "inputs": copy.deepcopy(dict(as_mapping(mapping.get("inputs"), "inputs"))),
            "outputs": copy.deepcopy(dict(as_mapping(mapping.get("outputs"), "outputs"))),
        }
        for key, value in pipeline_pairs:
            apply_override(ports, key, value)
        self.inputs = {str(n): self._pipeline_input(str(n), d)
                       for n, d in ports["inputs"].items()}
        self.outputs = {str(n): self._pipeline_output(str(n), d)
                        for n, d in ports["outputs"].items()}
        self._outputs: dict[str, dict[str, dict[str, Any]]] = {}
        self._nodes: dict[str, dict[str, Any]] = {}

    # --- selection and overrides -----------------------------------------------------------

    def _select(self, job: str | None) -> str:
        listing = ", ".join(self.parallel) or "none"
        if job is not None:
            if job not in self.kinds:
                raise SpecError(f"--job {job}: the pipeline has no job '{job}'."
                                f"{closest(job, list(self.kinds))} Parallel jobs: {listing}.")
            if self.kinds[job] != "parallel":
                raise SpecError(f"--job {job}: jobs.{job} is a {self.kinds[job]} step; daskprs "
                                f"runs parallel jobs (the command steps that feed one run first). "
                                f"Parallel jobs: {listing}.")
            return job
        if not self.parallel:
            found = ", ".join(f"{n} ({k})" for n, k in self.kinds.items())
            raise SpecError(f"jobs: the pipeline has no parallel job (type: parallel); found "
                            f"{found}. daskprs runs parallel jobs.")
        if len(self.parallel) > 1:
            raise SpecError(f"the pipeline has {len(self.parallel)} parallel jobs: {listing}. "
                            "Pick one with --job NAME (Python: daskprs.run(spec, job=NAME)).")
        return self.parallel[0]

    def _route(self, overrides: list[tuple[str, Any]], mapping: Mapping[str, Any]
               ) -> tuple[list[tuple[str, Any]], dict[str, list[tuple[str, Any]]]]:
        """Split ``--set`` pairs into pipeline-level ones and per-job ones."""
        pipeline: list[tuple[str, Any]] = []
        nodes: dict[str, list[tuple[str, Any]]] = {n: [] for n in self.kinds}
        for key, value in overrides:
            parts = key.split(".")
            if parts[0] == "jobs":
                if len(parts) < 3:
                    raise SpecError(f"--set {key}: expected jobs.NAME.KEY=VALUE.")
                if parts[1] not in self.kinds:
                    raise SpecError(f"--set {key}: the pipeline has no job '{parts[1]}'."
                                    f"{closest(parts[1], list(self.kinds))} Jobs: "
                                    f"{', '.join(self.kinds)}.")
                nodes[parts[1]].append((".".join(parts[2:]), value))
            elif (parts[0] in ("inputs", "outputs") and len(parts) >= 2
                  and parts[1] in as_mapping(mapping.get(parts[0]), parts[0])):
                pipeline.append((key, value))
            elif self.selected is None:
                raise SpecError(f"--set {key}: this pipeline has several parallel jobs "
                                f"({', '.join(self.parallel)}); say which with "
                                f"--set jobs.NAME.{key}=VALUE.")
            else:
                nodes[self.selected].append((key, value))
        return pipeline, nodes

    # --- pipeline-level ports --------------------------------------------------------------

    def _pipeline_input(self, name: str, decl: Any) -> dict[str, Any]:
        where = f"inputs.{name}"
        if not isinstance(decl, Mapping):
            return {"type": _literal_type(decl), "value": decl}
        check_keys(decl, PORT_KEYS, where, ignored=_PORT_IGNORED)
        kind = decl.get("type")
        if kind in LITERAL_TYPES or (kind is None and decl.get("path") is None):
            return {"type": kind or _literal_type(decl.get("value", decl.get("default"))),
                    "value": decl.get("value", decl.get("default"))}
        no_asset(decl.get("path"), where)
        return {"type": kind, "path": resolve_path(decl.get("path"), self.base_dir,
                                                   f"{where}.path"), "mode": decl.get("mode")}

    def _pipeline_output(self, name: str, decl: Any) -> dict[str, Any]:
        where = f"outputs.{name}"
        if decl is None:
            return {}
        if isinstance(decl, str):
            decl = {"path": decl}
        if not isinstance(decl, Mapping):
            raise SpecError(f"{where}: expected a mapping with type/path, got {decl!r}.")
        check_keys(decl, PORT_KEYS, where, ignored=_PORT_IGNORED | {"is_link_mode"})
        path = decl.get("path")
        if not is_asset(path):
            path = resolve_path(path, self.base_dir, f"{where}.path")
        return {k: v for k, v in (("type", decl.get("type")), ("path", path),
                                  ("mode", decl.get("mode"))) if v is not None}

    # --- components ------------------------------------------------------------------------

    def _load_component(self, name: str, node: Mapping[str, Any]
                        ) -> tuple[dict[str, Any], str] | None:
        ref = node.get("component")
        where = f"jobs.{name}.component"
        if ref is None:
            return None
        if isinstance(ref, Mapping):
            return copy.deepcopy(dict(ref)), self.base_dir
        if not isinstance(ref, str):
            raise SpecError(f"{where}: expected the path of a component YAML file, got {ref!r}.")
        if ref.startswith("azureml:") or "://" in ref:
            raise SpecError(f"{where}: {ref!r} is a registered component, which daskprs cannot "
                            "fetch offline. Point component: at the component's local YAML file, "
                            "e.g. component: ./my_component.yml.")
        from . import read_yaml

        path = os.path.normpath(os.path.join(self.base_dir, ref.removeprefix("file:")))
        doc = read_yaml(path)
        if not isinstance(doc, Mapping):
            raise SpecError(f"{where}: {path} is not a YAML mapping.")
        return copy.deepcopy(dict(doc)), os.path.dirname(path)

    def _merged(self, name: str) -> dict[str, Any]:
        """The job's mapping: its component's keys with the node's keys on top."""
        node = copy.deepcopy(self.raw[name])
        node.pop("component", None)
        node["type"] = self.kinds[name]
        if name not in self.components:
            return node
        comp, comp_dir = self.components[name]
        comp = _absolute_component(comp, comp_dir, self.kinds[name], f"jobs.{name}.component")
        merged = {k: v for k, v in comp.items() if k not in _COMPONENT_ONLY}
        for key, value in node.items():
            if key in ("inputs", "outputs"):
                merged[key] = _merge_ports(as_mapping(comp.get(key), f"component {key}"),
                                           as_mapping(value, f"jobs.{name}.{key}"),
                                           f"jobs.{name}.{key}")
            elif (key in _MERGED and isinstance(value, Mapping)
                  and isinstance(merged.get(key), Mapping)):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return merged

    # --- bindings --------------------------------------------------------------------------

    def _bound(self, ref: str, where: str) -> Any:
        """What a whole ``${{parent.REF}}`` stands for: a port mapping or a literal."""
        parts = ref.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            decl = self.inputs.get(parts[1])
            if decl is None:
                raise SpecError(f"{where}: '${{{{parent.{ref}}}}}' names no pipeline input."
                                f"{closest(parts[1], list(self.inputs))} Pipeline inputs: "
                                f"{', '.join(self.inputs) or 'none'}.")
            return decl["value"] if "value" in decl else dict(decl)
        if parts[0] == "outputs" and len(parts) == 2:
            decl = self.outputs.get(parts[1])
            if decl is None:
                raise SpecError(f"{where}: '${{{{parent.{ref}}}}}' names no pipeline output."
                                f"{closest(parts[1], list(self.outputs))} Pipeline outputs: "
                                f"{', '.join(self.outputs) or 'none'}.")
            return dict(decl)
        if parts[0] == "jobs" and len(parts) == 4 and parts[2] == "outputs":
            producer, out = parts[1], parts[3]
            if producer not in self.kinds:
                raise SpecError(f"{where}: '${{{{parent.{ref}}}}}' names no job."
                                f"{closest(producer, list(self.kinds))} Jobs: "
                                f"{', '.join(self.kinds)}.")
            outs = self.outputs_of(producer)
            if out not in outs:
                raise SpecError(f"{where}: jobs.{producer} declares no output '{out}'."
                                f"{closest(out, list(outs))} Its outputs: "
                                f"{', '.join(outs) or 'none'}.")
            return {"type": outs[out].get("type"), "path": outs[out].get("path"),
                    _FROM: (producer, out)}
        raise SpecError(f"{where}: cannot resolve '${{{{parent.{ref}}}}}' offline; daskprs binds "
                        "parent.inputs.X, parent.outputs.X and parent.jobs.NAME.outputs.X.")

    def _text(self, ref: str, where: str) -> Any:
        value = self._bound(ref, where)
        if isinstance(value, Mapping):
            if value.get("path") is None:
                raise SpecError(f"{where}: '${{{{parent.{ref}}}}}' has no path yet; give one "
                                "with --set.")
            return value["path"]
        return value

    def _subst(self, value: Any, where: str) -> Any:
        """Substitute ``${{parent...}}`` in every string of a value (whole ones keep types)."""
        if isinstance(value, str):
            m = _WHOLE.match(value)
            if m:
                return self._text(m.group(1), where)
            return _PARENT.sub(lambda r: str(self._text(r.group(1), where)), value)
        if isinstance(value, Mapping):
            return {k: self._subst(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self._subst(v, where) for v in value]
        return value

    def _port(self, name: str, key: str, port: str, value: Any) -> Any:
        where = f"jobs.{name}.{key}.{port}"
        m = _WHOLE.match(value) if isinstance(value, str) else None
        if m:
            return self._bound(m.group(1), where)
        if not isinstance(value, Mapping):
            return self._subst(value, where)
        decl = {k: v for k, v in value.items() if k not in _PORT_IGNORED - {"name", "version"}}
        path = decl.get("path")
        m = _WHOLE.match(path) if isinstance(path, str) else None
        if m:
            bound = self._bound(m.group(1), f"{where}.path")
            if isinstance(bound, Mapping):
                own = {k: v for k, v in decl.items() if k != "path"}
                known = {k: v for k, v in bound.items() if v is not None}
                # A pipeline output's type wins over the node's; a node input's over its source.
                decl = {**own, **known} if key == "outputs" else {**known, **own}
                decl["path"] = bound.get("path")
            else:
                decl["path"] = bound
        return {k: v if k == _FROM else self._subst(v, f"{where}.{k}") for k, v in decl.items()}

    # --- resolved jobs ---------------------------------------------------------------------

    def outputs_of(self, name: str) -> dict[str, dict[str, Any]]:
        """A job's outputs with their final paths (overrides applied, defaults placed)."""
        if name in self._outputs:
            return self._outputs[name]
        merged = self._merged(name)
        outs: dict[str, Any] = {}
        for port, value in as_mapping(merged.get("outputs"), f"jobs.{name}.outputs").items():
            decl = self._port(name, "outputs", str(port), value)
            if decl is None:
                decl = {}
            elif isinstance(decl, str):
                decl = {"path": decl}
            outs[str(port)] = dict(decl)
        holder = {"outputs": outs}
        for key, value in self.node_pairs[name]:
            if key.split(".")[0] == "outputs":
                apply_override(holder, key, value)
        kind = self.kinds[name]
        for port, decl in outs.items():
            decl.pop(_FROM, None)
            path = decl.get("path")
            asset = is_asset(path)
            if path is not None and not asset:
                continue
            base = os.path.basename(path.rstrip("/")) if asset else None
            if kind == "command":
                folder, file_name = f"{self.root}/steps/{name}/{port}", port
            elif kind == "parallel" and self.whole:  # where its run would put it anyway
                folder, file_name = f"{self.root}/jobs/{name}/outputs/{port}", f"{port}.txt"
            else:
                continue
            if decl.get("type") == "uri_file":
                decl["path"] = f"{folder}/{base or file_name}"
            else:
                decl["path"] = f"{folder}/{base}" if base else folder
        self._outputs[name] = outs
        return outs

    def node(self, name: str) -> dict[str, Any]:
        """A job's mapping with bindings resolved and its overrides applied."""
        if name in self._nodes:
            return self._nodes[name]
        merged = self._merged(name)
        parallel = self.kinds[name] == "parallel"
        if parallel:
            for key in [k for k in merged if k in RUN_SETTING_ALIASES]:
                apply_override(merged, *setting_key(key, merged.pop(key)))
        node: dict[str, Any] = {}
        for key, value in merged.items():
            if key == "inputs":
                node[key] = {str(p): self._port(name, key, str(p), v) for p, v in
                             as_mapping(value, f"jobs.{name}.inputs").items()}
            elif key != "outputs":
                node[key] = self._subst(value, f"jobs.{name}.{key}")
        node["outputs"] = copy.deepcopy(self.outputs_of(name))
        for key, value in self.node_pairs[name]:
            if key.split(".")[0] != "outputs":
                apply_override(node, *(setting_key(key, value) if parallel else (key, value)))
        for port, decl in as_mapping(node.get("inputs"), f"jobs.{name}.inputs").items():
            if isinstance(decl, Mapping):
                no_asset(decl.get("path"), f"jobs.{name}.inputs.{port}.path")
        self._nodes[name] = node
        return node

    def _producers(self, name: str) -> list[str]:
        """The jobs whose outputs this job reads (and that must therefore run before it)."""
        found = []
        for port, decl in as_mapping(self.node(name).get("inputs"), "inputs").items():
            if not isinstance(decl, Mapping) or _FROM not in decl:
                continue
            producer, out = decl[_FROM]
            made = self.outputs_of(producer)[out].get("path")
            if decl.get("path") is None:
                what = ("a parallel job, which daskprs runs on its own" if self.kinds[producer]
                        == "parallel" else f"a {self.kinds[producer]} step, which daskprs "
                        "does not run")
                raise SpecError(
                    f"jobs.{name}.inputs.{port}: binds output '{out}' of jobs.{producer}, "
                    f"{what}. Run it first with an output path (e.g. daskprs run PIPELINE "
                    f"--job {producer} --set jobs.{producer}.outputs.{out}.path=DIR), then give "
                    f"that path here with --set jobs.{name}.inputs.{port}=DIR."
                )
            if decl["path"] == made and producer not in found:
                found.append(producer)
        return found

    def _command_step(self, name: str) -> Any:
        node = self.node(name)
        where = f"jobs.{name}"
        check_keys(node, COMMAND_KEYS, where, ignored=COMMAND_IGNORED)
        command = node.get("command")
        if not isinstance(command, str) or not command.strip():
            raise SpecError(f"{where}.command: missing; a command step needs a command.")
        cwd = resolve_path(node.get("code") or ".", self.base_dir, f"{where}.code")
        inputs = {}
        for port, decl in as_mapping(node.get("inputs"), f"{where}.inputs").items():
            inputs[port] = _step_input(decl, self.base_dir, f"{where}.inputs.{port}")
        outputs = {port: {"type": d.get("type") or "uri_folder", "path": d["path"]}
                   for port, d in self.outputs_of(name).items()}
        env = as_mapping(node.get("environment_variables"), f"{where}.environment_variables")
        return make_step(name=name, command=command, cwd=cwd, inputs=inputs, outputs=outputs,
                         environment_variables=env)

    def _parallel_spec(self, name: str) -> JobSpec:
        from .v2 import from_mapping

        raw = copy.deepcopy(self.node(name))
        for decl in as_mapping(raw.get("inputs"), "inputs").values():
            if isinstance(decl, dict):
                decl.pop(_FROM, None)
                table = decl.pop(TABLE, None)
                if table is not None:
                    decl.update(type="mltable", path=output_mltable(
                        decl["path"], table["transformations"], table.get("glob")))
        raw["type"] = "parallel"
        raw["name"] = raw.get("name") or name
        where = f"jobs.{name}"
        extras = pop_extras(raw, where)
        return apply_extras(from_mapping(raw, base_dir=self.base_dir, where=where), extras)

    def _pre_steps(self, name: str) -> list[Any]:
        """The command steps that (transitively) produce this job's inputs, in run order."""
        order: list[str] = []

        def visit(job: str, trail: tuple[str, ...]) -> None:
            for producer in self._producers(job):
                if producer in trail:
                    raise SpecError(f"jobs: {' -> '.join((*trail, producer))} is a cycle.")
                if self.kinds[producer] == "command" and producer not in order:
                    visit(producer, (*trail, producer))
                    order.append(producer)

        visit(name, (name,))
        return [self._command_step(step) for step in order]

    def jobspec(self) -> JobSpec:
        name = self.selected
        assert name is not None
        steps = self._pre_steps(name)  # first: it explains an input that nothing produces
        spec = self._parallel_spec(name)
        if steps:
            check_steps(steps)
            spec = spec.replace(pre_steps=tuple(steps))
        return spec

    def all_jobs(self) -> list[tuple[str, str, Any]]:
        jobs = []
        for name in self._topological():
            kind = self.kinds[name]
            if kind == "command":
                step = self._command_step(name)
                check_steps([step])
                self._producers(name)
                jobs.append((name, kind, step))
            elif kind == "parallel":
                self._producers(name)
                jobs.append((name, kind, self._parallel_spec(name)))
            else:
                log.info("jobs.%s: type %s is not run by daskprs; skipped", name, kind)
        return jobs

    def _topological(self) -> list[str]:
        deps = {name: set(_JOB_REF.findall(repr(node))) for name, node in self.raw.items()}
        order: list[str] = []

        def visit(name: str, trail: tuple[str, ...]) -> None:
            for dep in sorted(deps[name]):
                if dep in trail:
                    raise SpecError(f"jobs: {' -> '.join((*trail, dep))} is a cycle.")
                if dep in deps and dep not in order:
                    visit(dep, (*trail, dep))
            if name not in order:
                order.append(name)

        for name in self.raw:
            visit(name, (name,))
        return order


def _absolute_component(comp: dict[str, Any], comp_dir: str, kind: str,
                        where: str) -> dict[str, Any]:
    """Resolve a component's own relative paths against its file's folder."""
    comp = copy.deepcopy(comp)
    if kind == "parallel":
        task = dict(as_mapping(comp.get("task"), f"{where} task"))
        task["code"] = resolve_path(task.get("code") or ".", comp_dir, f"{where} task.code")
        comp["task"] = task
    elif kind == "command":
        comp["code"] = resolve_path(comp.get("code") or ".", comp_dir, f"{where} code")
    for decl in as_mapping(comp.get("inputs"), f"{where} inputs").values():
        if isinstance(decl, dict) and isinstance(decl.get("path"), str) and not _WHOLE.match(
                decl["path"]) and not decl["path"].startswith("azureml:"):
            decl["path"] = resolve_path(decl["path"], comp_dir, f"{where} inputs")
    return comp


def _merge_ports(decls: Mapping[str, Any], values: Mapping[str, Any],
                 where: str) -> dict[str, Any]:
    """A component's port declarations with the node's values (paths, literals, bindings)."""
    merged: dict[str, Any] = {k: copy.deepcopy(v) for k, v in decls.items()}
    for name, value in values.items():
        if name not in decls:
            raise SpecError(f"{where}.{name}: the component declares no such port."
                            f"{closest(str(name), list(decls))} Declared: "
                            f"{', '.join(map(str, decls)) or 'none'}.")
        decl = decls[name]
        decl = dict(decl) if isinstance(decl, Mapping) else {}
        if value is None:
            merged[name] = decl
        elif isinstance(value, Mapping):
            merged[name] = {**decl, **value}
        elif decl.get("type") in LITERAL_TYPES:
            merged[name] = {**decl, "default": value}
        elif decl.get("type") in FILE_TYPES or where.endswith("outputs"):
            merged[name] = {**decl, "path": value}
        else:
            merged[name] = value
    return merged


def _step_input(decl: Any, base_dir: str, where: str) -> dict[str, Any]:
    if not isinstance(decl, Mapping):
        return {"type": _literal_type(decl), "value": decl}
    kind = decl.get("type")
    if kind in LITERAL_TYPES or (decl.get("path") is None and (
            "value" in decl or "default" in decl)):
        return {"type": kind or "string", "value": decl.get("value", decl.get("default"))}
    return {"type": kind or "uri_folder",
            "path": resolve_path(decl.get("path"), base_dir, f"{where}.path")}


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"
