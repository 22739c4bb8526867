"""The legacy module spec with ``jobType: parallel`` (Azure ML designer "Parallel Module").

Ports are lists with names that may contain spaces (``Data Input 1``); in the run they are
named with underscores (``Data_Input_1``: paths and ``${{...}}`` bindings must not contain
spaces), and ``--set`` accepts either form (``--set "inputs.Data Input 1=PATH"``).
``implementation.parallel`` holds ``inputData`` (a port name, or a list: their files are
processed as one list, sorted by path), ``outputData`` (the PRS output:
``AZUREML_BI_OUTPUT_PATH``), ``entry`` and ``args``, a list whose ``{inputPath: X}``,
``{inputValue: X}`` and ``{outputPath: X}`` items become the port's path or value (a nested list
is an optional group, dropped when an input in it is absent). Every port reference must match a
declared port: one that does not is an error naming it and the closest declared port. Run
settings come from ``--set`` as for the sdk-1-5 component; the output action defaults to
``summary_only``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..spec import JobSpec, closest
from ._common import AZURE_ONLY, as_mapping, check_keys, resolve_path
from .sdk15 import TYPES, binding, finish, port_decl

TOP_KEYS = {"jobType", "amlModuleIdentifier", "inputs", "outputs", "implementation"}
IGNORED = AZURE_ONLY | {"metadata", "isDeterministic", "moduleName", "moduleVersion",
                        "namespace", "family", "helpDocument", "contact", "releaseState"}
PARALLEL_KEYS = {"inputData", "outputData", "entry", "args", "sourceDirectory"}
PARALLEL_IGNORED = {"amlEnvironment", "image", "environment", "os", "dockerfile", "conda"}
PORT_KEYS = {"name", "type", "optional", "default", "description"}
PORT_IGNORED = {"options", "min", "max", "label", "group", "enum", "datastore_mode",
                "is_resource", "argumentName", "isResource"}
_REF_KINDS = {"inputPath": "inputs", "inputValue": "inputs", "outputPath": "outputs"}


def detect(mapping: Mapping[str, Any]) -> bool:
    return str(mapping.get("jobType", "")).lower() == "parallel"


def load(
    mapping: Mapping[str, Any],
    *,
    base_dir: str,
    overrides: list[tuple[str, Any]] = (),
    job: str | None = None,
) -> JobSpec:
    check_keys(mapping, TOP_KEYS, "module spec", ignored=IGNORED)
    impl = as_mapping(mapping.get("implementation"), "implementation")
    par = as_mapping(impl.get("parallel"), "implementation.parallel")
    if not par:
        raise SpecError("implementation.parallel: missing; a parallel module needs inputData, "
                        "entry and args there.")
    check_keys(par, PARALLEL_KEYS, "implementation.parallel", ignored=PARALLEL_IGNORED)
    inputs, in_names = _ports(mapping.get("inputs"), "inputs")
    outputs, out_names = _ports(mapping.get("outputs"), "outputs")

    data = par.get("inputData")
    data_refs = data if isinstance(data, list) else [data]
    problems: list[str] = []
    refs: list[tuple[str, str, str]] = [("inputs", str(r), "implementation.parallel.inputData")
                                        for r in data_refs if r is not None]
    if par.get("outputData") is not None:
        refs.append(("outputs", str(par["outputData"]), "implementation.parallel.outputData"))
    args = par.get("args") or []
    if not isinstance(args, list):
        raise SpecError("implementation.parallel.args: expected a list, e.g. "
                        "[--model, {inputPath: Model}].")
    refs += [(kind, name, "implementation.parallel.args") for kind, name in _arg_refs(args)]
    for kind, name, where in refs:
        names = in_names if kind == "inputs" else out_names
        if name not in names:
            problems.append(f"{where}: '{name}' is not a declared {kind[:-1]} port."
                            f"{closest(name, list(names))}")
    if problems:
        raise SpecError(
            f"module spec: {len(problems)} port reference(s) match no declared port: "
            + " ".join(problems)
            + f" Declared inputs: {', '.join(in_names) or 'none'}; outputs: "
            f"{', '.join(out_names) or 'none'}. Make the names match."
        )
    if not data_refs or data_refs[0] is None:
        raise SpecError("implementation.parallel.inputData: missing; name the input port whose "
                        "files are split into mini-batches.")
    entry = par.get("entry")
    if not isinstance(entry, str) or not entry:
        raise SpecError("implementation.parallel.entry: missing; name the entry script.")
    output_data = None
    if par.get("outputData") is not None:
        output_data = out_names[str(par["outputData"])]
        outputs = {output_data: outputs[output_data],
                   **{k: v for k, v in outputs.items() if k != output_data}}
    ident = as_mapping(mapping.get("amlModuleIdentifier"), "amlModuleIdentifier")
    code = par.get("sourceDirectory") or impl.get("sourceDirectory") or "."
    raw: dict[str, Any] = {
        "type": "parallel",
        "name": str(ident.get("moduleName") or "parallel-module"),
        "inputs": inputs,
        "outputs": outputs,
        "task": {"code": resolve_path(str(code), base_dir, "implementation.parallel"),
                 "entry_script": entry,
                 "program_arguments": _args(args, in_names, out_names)},
    }
    data_names = [in_names[str(r)] for r in data_refs]
    raw["input_data"] = binding("inputs", data_names[0])
    pairs = [(_port_key(key, in_names, out_names), value) for key, value in overrides]
    return finish(raw, base_dir=base_dir, overrides=pairs, data_names=data_names,
                  output_data=output_data, what="implementation.parallel.inputData")


def _ports(raw: Any, kind: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``[{name, type, ...}]`` -> (v2 declarations by run name, {spec name: run name})."""
    if raw is None:
        return {}, {}
    if not isinstance(raw, list):
        raise SpecError(f"{kind}: expected a list of ports ({{name: ..., type: ...}}).")
    decls: dict[str, Any] = {}
    names: dict[str, str] = {}
    for i, port in enumerate(raw):
        where = f"{kind}[{i}]"
        if not isinstance(port, Mapping) or not port.get("name"):
            raise SpecError(f"{where}: expected a port with a name, got {port!r}.")
        name = str(port["name"])
        if name in names:
            raise SpecError(f"{where}: port '{name}' is declared twice.")
        check_keys(port, PORT_KEYS, f"{kind}.{name}", ignored=PORT_IGNORED)
        decl = port_decl({k: v for k, v in port.items() if k != "name"}, f"{kind}.{name}",
                         TYPES)
        run_name = _run_name(name, set(names.values()))
        names[name] = run_name
        if kind == "outputs":
            decl = {"type": "uri_file"} if decl.get("type") == "uri_file" else {}
        decls[run_name] = decl
    return decls, names


def _run_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W+", "_", name).strip("_") or "port"
    run_name, i = base, 2
    while run_name in taken:
        run_name, i = f"{base}_{i}", i + 1
    return run_name


def _arg_refs(args: list[Any]) -> list[tuple[str, str]]:
    refs = []
    for item in args:
        if isinstance(item, list):
            refs += _arg_refs(item)
        elif isinstance(item, Mapping):
            if len(item) != 1 or next(iter(item)) not in _REF_KINDS:
                raise SpecError(f"implementation.parallel.args: {dict(item)!r} is not one of "
                                "{inputPath: X}, {inputValue: X}, {outputPath: X}.")
            (key, name), = item.items()
            refs.append((_REF_KINDS[key], str(name)))
    return refs


def _args(args: list[Any], in_names: Mapping[str, str], out_names: Mapping[str, str]) -> str:
    tokens = []
    for item in args:
        if isinstance(item, list):
            tokens.append(f"$[[{_args(item, in_names, out_names)}]]")
        elif isinstance(item, Mapping):
            (key, name), = item.items()
            kind = _REF_KINDS[key]
            names = in_names if kind == "inputs" else out_names
            tokens.append(binding(kind, names[str(name)]))
        elif item is not None:
            tokens.append(str(item))
    return " ".join(tokens)


def _port_key(key: str, in_names: Mapping[str, str], out_names: Mapping[str, str]) -> str:
    """``inputs.Data Input 1.path`` -> ``inputs.Data_Input_1.path`` (the run's port name)."""
    for prefix, names in (("inputs.", in_names), ("outputs.", out_names)):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            for name in sorted(names, key=len, reverse=True):
                if rest == name or rest.startswith(name + "."):
                    return prefix + names[name] + rest[len(name):]
    return key
