"""The sdk-1-5 ``type: ParallelComponent`` (azure-ml-component) spec.

``parallel.input_data`` names the input to split (a list: several inputs, see
``combined_mltable``), ``parallel.output_data`` the output that PRS calls ``--output`` (it is
``AZUREML_BI_OUTPUT_PATH``, and where ``append_row`` writes), ``parallel.entry`` the script under
``code`` (default: the spec's folder) and ``parallel.args`` its arguments with single-brace
``{inputs.x}`` / ``{outputs.y}`` placeholders; ``[ ... ]`` around a placeholder marks an optional
argument. Run settings are not part of the component (Azure took them from the pipeline's
``runsettings.parallel``): give them with ``--set`` (v2 names, or v1 names such as
``node_count``, ``process_count_per_node``, ``run_invocation_timeout``, ``run_max_try``), plus
``output_action=append_row`` to collect run() results (default ``summary_only``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from ..spec import JobSpec, closest
from ._common import (
    AZURE_ONLY,
    apply_extras,
    apply_settings,
    as_bool,
    as_mapping,
    check_keys,
    combined_mltable,
    pop_extras,
    resolve_path,
)

TOP_KEYS = {"type", "name", "inputs", "outputs", "parallel", "code"}
IGNORED = AZURE_ONLY | {"os", "successful_return_code", "meta", "is_deterministic"}
PARALLEL_KEYS = {"input_data", "output_data", "entry", "args"}
PORT_KEYS = {"type", "optional", "default", "description"}
PORT_IGNORED = {"min", "max", "enum", "datastore_mode", "is_resource", "label", "group"}

# Component types -> v2 types; None means "infer from the path" (folder, file or MLTable).
TYPES: dict[str, str | None] = {
    "path": None, "anydirectory": None, "anyfile": "uri_file",
    "uri_folder": "uri_folder", "uri_file": "uri_file", "mltable": "mltable",
    "custom_model": "custom_model", "mlflow_model": "mlflow_model",
    "string": "string", "str": "string", "enum": "string",
    "integer": "integer", "int": "integer",
    "float": "number", "number": "number",
    "boolean": "boolean", "bool": "boolean",
}
_PLACEHOLDER = re.compile(r"(?<![$\w{])\{\s*(inputs|outputs)\.([^{}\s]+)\s*\}")
_OPTIONAL = re.compile(r"(?<![\[$])\[([^\[\]]*\{\s*inputs\.[^\[\]]*)\](?!\])")


def binding(kind: str, name: str) -> str:
    """``${{kind.name}}``, the v2 binding of a port."""
    return "${{" + f"{kind}.{name}" + "}}"


def detect(mapping: Mapping[str, Any]) -> bool:
    return str(mapping.get("type", "")).startswith("ParallelComponent")


def load(
    mapping: Mapping[str, Any],
    *,
    base_dir: str,
    overrides: list[tuple[str, Any]] = (),
    job: str | None = None,
) -> JobSpec:
    check_keys(mapping, TOP_KEYS, "ParallelComponent", ignored=IGNORED)
    par = as_mapping(mapping.get("parallel"), "parallel")
    if not par:
        raise SpecError("parallel: missing; a ParallelComponent needs parallel.input_data, "
                        "parallel.entry and (usually) parallel.output_data.")
    check_keys(par, PARALLEL_KEYS, "parallel", ignored=())
    inputs = {str(k): port_decl(v, f"inputs.{k}", TYPES)
              for k, v in as_mapping(mapping.get("inputs"), "inputs").items()}
    outputs = {str(k): {} for k in as_mapping(mapping.get("outputs"), "outputs")}
    for name, decl in as_mapping(mapping.get("outputs"), "outputs").items():
        if isinstance(decl, Mapping) and str(decl.get("type", "")).lower() == "anyfile":
            outputs[str(name)] = {"type": "uri_file"}

    data = par.get("input_data")
    names = data if isinstance(data, list) else [data]
    data_names = [port_ref(n, "inputs", inputs, "parallel.input_data") for n in names]
    output_data = None
    if par.get("output_data") is not None:
        output_data = port_ref(par["output_data"], "outputs", outputs, "parallel.output_data")
        outputs = {output_data: outputs[output_data],
                   **{k: v for k, v in outputs.items() if k != output_data}}
    entry = par.get("entry")
    if not isinstance(entry, str) or not entry:
        raise SpecError("parallel.entry: missing; name the entry script, e.g. entry: score.py.")
    args = single_brace(par.get("args") or "", inputs, outputs, "parallel.args")

    raw: dict[str, Any] = {
        "type": "parallel",
        "name": str(mapping.get("name") or mapping.get("display_name") or "parallel-component"),
        "inputs": inputs,
        "outputs": outputs,
        "input_data": binding("inputs", data_names[0]),
        "task": {"code": resolve_path(str(mapping.get("code") or "."), base_dir, "code"),
                 "entry_script": entry, "program_arguments": args},
    }
    return finish(raw, base_dir=base_dir, overrides=overrides, data_names=data_names,
                  output_data=output_data, what="parallel.input_data")


def finish(raw: dict[str, Any], *, base_dir: str, **kwargs: Any) -> JobSpec:
    """``prepare`` the mapping, then build the JobSpec (extra settings set after)."""
    from .v2 import from_mapping

    raw = prepare(raw, base_dir=base_dir, **kwargs)
    extras = pop_extras(raw)
    return apply_extras(from_mapping(raw, base_dir=base_dir), extras)


def prepare(raw: dict[str, Any], *, base_dir: str, overrides: list[tuple[str, Any]],
            data_names: list[str], output_data: str | None, what: str,
            default_action: str = "summary_only") -> dict[str, Any]:
    """Apply ``--set`` (v2 keys, v1 aliases, ``output_action``) to a v2-shaped mapping.

    Shared by the dialects whose spec has no run settings. Several data inputs become one
    generated MLTable input named ``A+B``. Settings without a v2 key (``pop_extras``) stay in
    the mapping, as the pipeline dialect accepts them on a parallel job.
    """
    raw = copy.deepcopy(raw)
    apply_settings(raw, overrides)
    action = str(raw.pop("output_action", None) or default_action).lower()
    if action not in ("append_row", "summary_only"):
        raise SpecError(f"output_action: {action!r} is neither append_row nor summary_only.")
    if action == "append_row":
        target = output_data or next(iter(raw.get("outputs") or {}), None)
        if target is None:
            raise SpecError("output_action append_row needs an output to write to; declare one.")
        raw["task"]["append_row_to"] = binding("outputs", target)
    if len(data_names) > 1:
        paths = []
        for name in data_names:
            decl = raw["inputs"].get(name)
            path = decl.get("path") if isinstance(decl, Mapping) else None
            if path is None:
                raise SpecError(f"inputs.{name}: a data input ({what}) has no path. Give it with "
                                f"--set inputs.{name}=PATH.")
            paths.append(resolve_path(path, base_dir, f"inputs.{name}"))
        combined = "+".join(data_names)
        raw["inputs"][combined] = {"type": "mltable",
                                   "path": combined_mltable(paths, f"inputs.{combined}")}
        raw["input_data"] = binding("inputs", combined)
    return raw


def port_decl(decl: Any, where: str, types: Mapping[str, str | None]) -> dict[str, Any]:
    """A component input declaration as a v2 one (``type: path`` is inferred from the path)."""
    if decl is None:
        return {}
    if not isinstance(decl, Mapping):
        raise SpecError(f"{where}: expected a mapping with type:, got {decl!r}.")
    check_keys(decl, PORT_KEYS, where, ignored=PORT_IGNORED)
    raw_type = decl.get("type")
    out: dict[str, Any] = {}
    if raw_type is not None:
        key = str(raw_type).lower()
        if key.endswith("directory"):
            key = "anydirectory"
        if key not in types:
            raise SpecError(f"{where}.type: {raw_type!r} is not a known port type."
                            f"{closest(key, list(types))} Use one of: {', '.join(types)}.")
        if types[key] is not None:
            out["type"] = types[key]
    if "optional" in decl:
        out["optional"] = as_bool(decl["optional"], f"{where}.optional")
    if decl.get("default") is not None:
        out["default"] = decl["default"]
    if out.get("type") is None and "default" in out:
        out["type"] = "string"
    return out


def port_ref(ref: Any, kind: str, ports: Mapping[str, Any], where: str) -> str:
    """``inputs.x`` (or ``{inputs.x}``, ``${{inputs.x}}``) -> ``x``, checked against the ports."""
    text = str(ref or "").strip()
    m = re.fullmatch(r"\$?\{*\s*(?:" + kind + r"\.)?([^{}\s]+)\s*\}*", text)
    name = m.group(1) if m else text
    if name not in ports:
        raise SpecError(f"{where}: {text!r} names no declared {kind[:-1]}."
                        f"{closest(name, list(ports))} Declared {kind}: "
                        f"{', '.join(ports) or 'none'}.")
    return name


def single_brace(args: Any, inputs: Mapping[str, Any], outputs: Mapping[str, Any],
                 where: str) -> str:
    """``--a {inputs.x} [--b {inputs.y}]`` -> ``--a ${{inputs.x}} $[[--b ${{inputs.y}}]]``."""
    if isinstance(args, list):
        args = " ".join(str(a) for a in args)
    text = " ".join(str(args).split())

    def sub(m: re.Match[str]) -> str:
        kind, name = m.group(1), m.group(2)
        ports = inputs if kind == "inputs" else outputs
        if name not in ports:
            raise SpecError(f"{where}: '{{{kind}.{name}}}' names no declared {kind[:-1]}."
                            f"{closest(name, list(ports))} Declared {kind}: "
                            f"{', '.join(ports) or 'none'}.")
        return binding(kind, name)

    return _PLACEHOLDER.sub(sub, _OPTIONAL.sub(r"$[[\1]]", text))
