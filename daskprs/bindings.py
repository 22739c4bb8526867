"""Resolve ``${{inputs.x}}`` / ``${{outputs.y}}`` bindings and ``$[[ ... ]]`` optional segments.

Bindings need the run directory (an output without a path lands in ``RUN_DIR/outputs/NAME``),
so they are resolved when a run starts, not when the spec is loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import SpecError
from .spec import JobSpec, closest

_REF = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)


@dataclass(frozen=True, kw_only=True)
class BoundJob:
    """What a run needs besides the spec: resolved output paths and the script's argv."""

    output_paths: Mapping[str, str]
    argv: tuple[str, ...]
    append_row_file: str | None
    bi_output_path: str


def output_paths(spec: JobSpec, run_dir: str) -> dict[str, str]:
    paths = {}
    for name, out in spec.outputs.items():
        path = out.path
        if path is None:
            path = os.path.join(run_dir, "outputs", name)
            if out.type == "uri_file":
                path = os.path.join(path, f"{name}.txt")
        elif path.startswith("azureml:"):
            path = os.path.join(run_dir, "outputs", name, path[len("azureml:"):] or name)
        paths[name] = path
    return paths


def bind_text(text: str, spec: JobSpec, outputs: Mapping[str, str]) -> str:
    """Substitute bindings; a ``$[[...]]`` segment vanishes if an input in it is absent."""

    def optional(m: re.Match[str]) -> str:
        for ref in _REF.findall(m.group(1)):
            if ref.startswith("inputs."):
                name = ref.split(".", 1)[1]
                if name in spec.inputs and not spec.inputs[name].present:
                    return ""
        return m.group(1)

    def value(m: re.Match[str]) -> str:
        ref = m.group(1)
        kind, _, name = ref.partition(".")
        if kind == "inputs":
            if name not in spec.inputs:
                raise SpecError(
                    f"program_arguments: '${{{{{ref}}}}}' names no declared input."
                    f"{closest(name, list(spec.inputs))} Declared inputs: "
                    f"{', '.join(sorted(spec.inputs)) or 'none'}."
                )
            inp = spec.inputs[name]
            if not inp.present:
                raise SpecError(
                    f"program_arguments: input '{name}' has no value; give it with "
                    f"--set inputs.{name}=VALUE, or wrap the argument in $[[ ... ]]."
                )
            return str(inp.value) if inp.is_literal else _one_token(ref, str(inp.path))
        if kind == "outputs":
            if name not in outputs:
                raise SpecError(
                    f"program_arguments: '${{{{{ref}}}}}' names no declared output."
                    f"{closest(name, list(outputs))} Declared outputs: "
                    f"{', '.join(sorted(outputs)) or 'none'}."
                )
            return _one_token(ref, outputs[name])
        if ref == "name":
            return spec.name
        if ref == "default_datastore":
            return "workspaceblobstore"
        raise SpecError(f"program_arguments: cannot resolve '${{{{{ref}}}}}' offline.")

    return _REF.sub(value, _OPTIONAL.sub(optional, text))


def _one_token(ref: str, path: str) -> str:
    """A path for program_arguments, which are split on whitespace (as on Azure): a path
    with a space would reach the script in pieces, naming another file."""
    if any(c.isspace() for c in path):
        name = ref.partition(".")[2]
        hint = (f"give outputs.{name}.path without spaces, or a --run-dir without spaces (an "
                "output without a path lands in RUN_DIR/outputs)" if ref.startswith("outputs.")
                else f"give inputs.{name} a path without spaces (a link to it will do)")
        raise SpecError(
            f"program_arguments: '${{{{{ref}}}}}' is {path!r}, which holds a space; "
            f"arguments are split on whitespace, so the script would get it in pieces: {hint}."
        )
    return path


def _check_places(spec: JobSpec, run_dir: str, outputs: Mapping[str, str]) -> None:
    """Outputs that cannot be written as declared, or that would become input."""
    for name, path in outputs.items():
        if spec.outputs[name].type == "uri_file" and (path.endswith(("/", os.sep))
                                                       or os.path.isdir(path)):
            raise SpecError(
                f"outputs.{name}: type uri_file, but {path} is a folder; give a file path "
                "(e.g. .../scores.txt), or declare the output as type: uri_folder."
            )
    data = spec.data_input.path
    if not data or "://" in data or not os.path.isdir(data):
        return
    root = os.path.realpath(data)
    places = [(f"outputs.{n}", p if spec.outputs[n].type != "uri_file" else os.path.dirname(p))
              for n, p in outputs.items()] + [("the run directory", run_dir)]
    for what, place in places:
        real = os.path.realpath(place)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            raise SpecError(
                f"{what} ({place}) lies inside the input folder {data}: what the job writes "
                "would become its own input on a resume (and change the input's fingerprint). "
                "Put it outside the input folder."
            )


def bind(spec: JobSpec, run_dir: str) -> BoundJob:
    outputs = output_paths(spec, run_dir)
    _check_places(spec, run_dir, outputs)
    # Tokens split on whitespace with quotes kept, as Azure's runtime does.
    argv = tuple(bind_text(spec.task.program_arguments, spec, outputs).split())
    append_file = None
    if spec.task.append_row_to:
        target = spec.outputs[spec.task.append_row_to]
        path = outputs[spec.task.append_row_to]
        append_file = path if target.type == "uri_file" else os.path.join(
            path, spec.append_row.file_name)
        bi = os.path.dirname(append_file)
    elif outputs:
        first = next(iter(spec.outputs.values()))
        bi = outputs[first.name] if first.type != "uri_file" else os.path.dirname(
            outputs[first.name])
    else:
        bi = os.path.join(run_dir, "outputs")
    return BoundJob(output_paths=outputs, argv=argv, append_row_file=append_file,
                    bi_output_path=bi)


def check_bindings(spec: JobSpec) -> None:
    """Fail at load time on a binding that can never resolve."""
    bind_text(spec.task.program_arguments, spec, {n: f"<{n}>" for n in spec.outputs})
