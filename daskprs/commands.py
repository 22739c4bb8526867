"""Pipeline ``type: command`` steps, run locally before the parallel job whose inputs they write.

A pipeline such as Azure's oj-sales example has a command step that writes a partitioned MLTable
and a parallel job that reads it. daskprs runs such a step as a subprocess in the current Python
environment (``environment:`` is ignored), in its ``code`` folder, with ``${{inputs.x}}`` and
``${{outputs.y}}`` bound in its ``command``. Its output goes to ``RUN_DIR/logs/commands/NAME.txt``;
a ``NAME.done`` file beside it records success, so ``daskprs resume`` does not run it again.

Paths under ``RUN_DIR_TOKEN`` (outputs that have no path of their own) are placed in the run
directory once it exists (``RUN_DIR/steps/NAME/OUTPUT``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import JobFailed, SpecError
from .spec import FrozenDict, JobSpec, closest

log = logging.getLogger("daskprs")

RUN_DIR_TOKEN = "/<RUN_DIR>"  # absolute-looking, so path resolution leaves it alone
_REF = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)
_TAIL_LINES = 15


def make_step(*, name: str, command: str, cwd: str, inputs: Mapping[str, Any],
              outputs: Mapping[str, Any], environment_variables: Mapping[str, Any] | None = None,
              ) -> FrozenDict:
    """A command step as plain frozen data (it is part of the JobSpec and of ``job.yaml``).

    ``inputs`` map a name to ``{"type", "path"}`` or ``{"type", "value"}``; ``outputs`` to
    ``{"type", "path"}``.
    """
    return FrozenDict(
        name=name, command=command, cwd=cwd,
        inputs=FrozenDict({k: FrozenDict(v) for k, v in inputs.items()}),
        outputs=FrozenDict({k: FrozenDict(v) for k, v in outputs.items()}),
        environment_variables=FrozenDict({str(k): str(v) for k, v in
                                          (environment_variables or {}).items()}),
    )


def place(value: Any, root: str) -> Any:
    """Replace ``RUN_DIR_TOKEN`` by ``root`` in a path, or in every string of nested data."""
    if isinstance(value, str):
        return root + value[len(RUN_DIR_TOKEN):] if value.startswith(RUN_DIR_TOKEN) else value
    if isinstance(value, Mapping):
        return FrozenDict({k: place(v, root) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(place(v, root) for v in value)
    return value


def run_steps(spec: JobSpec, run_dir: Any) -> JobSpec:
    """Run the spec's command steps in order (skipping finished ones); return the placed spec.

    ``run_dir`` is a ``RunDir`` or a path. Raises ``JobFailed`` (exit 1) naming the step's log
    when a command fails.
    """
    root = getattr(run_dir, "path", None) or os.path.abspath(os.fspath(run_dir))
    steps = tuple(place(step, root) for step in spec.pre_steps)
    for step in steps:
        run_step(step, root)
    inputs = {name: inp if inp.path is None else _replace_path(inp, place(inp.path, root))
              for name, inp in spec.inputs.items()}
    outputs = {name: out if out.path is None else _replace_path(out, place(out.path, root))
               for name, out in spec.outputs.items()}
    return spec.replace(inputs=FrozenDict(inputs), outputs=FrozenDict(outputs), pre_steps=steps)


def _replace_path(port: Any, path: str) -> Any:
    import dataclasses

    return port if path == port.path else dataclasses.replace(port, path=path)


def run_step(step: Mapping[str, Any], root: str) -> None:
    """Run one command step unless its ``.done`` record exists under ``root``."""
    name = step["name"]
    logs = os.path.join(root, "logs", "commands")
    log_path = os.path.join(logs, f"{name}.txt")
    done_path = os.path.join(logs, f"{name}.done")
    if os.path.isfile(done_path):
        log.info("pipeline step %s: finished in an earlier attempt; not run again", name)
        return
    os.makedirs(logs, exist_ok=True)
    outputs = {k: str(v["path"]) for k, v in step["outputs"].items()}
    for key, path in outputs.items():
        kind = step["outputs"][key].get("type", "uri_folder")
        os.makedirs(os.path.dirname(path) if kind == "uri_file" else path, exist_ok=True)
    command = bind_command(step, outputs)
    cwd = step["cwd"]
    if not os.path.isdir(cwd):
        raise SpecError(f"jobs.{name}.code: {cwd} is not a folder.")
    env = dict(os.environ)
    env.update(step.get("environment_variables") or {})
    # `python` in the command is this interpreter: daskprs runs in the current environment.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    log.info("pipeline step %s (command): %s", name, command)
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as out:
        out.write(f"$ {command}\n(cwd {cwd})\n")
        out.flush()
        shell = shutil.which("bash")
        proc = subprocess.run(command if shell is None else [shell, "-c", command],
                              shell=shell is None, cwd=cwd, env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise JobFailed(
            f"pipeline step '{name}' (type: command) exited with code {proc.returncode}; the "
            f"parallel job did not start. Its output is in {log_path}; last lines:\n"
            f"{_tail(log_path)}\nFix the command or its script and run again."
        )
    with open(done_path, "w", encoding="utf-8") as f:
        json.dump({"command": command, "seconds": round(time.time() - start, 3),
                   "outputs": outputs}, f)


def bind_command(step: Mapping[str, Any], outputs: Mapping[str, str]) -> str:
    """``${{inputs.x}}`` / ``${{outputs.y}}`` in the command; ``$[[...]]`` drops with its input."""
    name, inputs = step["name"], step["inputs"]

    def absent(ref: str) -> bool:
        kind, _, port = ref.partition(".")
        decl = inputs.get(port) if kind == "inputs" else None
        return decl is not None and decl.get("path", decl.get("value")) is None

    def optional(m: re.Match[str]) -> str:
        return "" if any(absent(r) for r in _REF.findall(m.group(1))) else m.group(1)

    def value(m: re.Match[str]) -> str:
        ref = m.group(1)
        kind, _, port = ref.partition(".")
        if kind == "inputs":
            if port not in inputs:
                raise SpecError(f"jobs.{name}.command: '${{{{{ref}}}}}' names no input of the "
                                f"step.{closest(port, list(inputs))}")
            decl = inputs[port]
            if decl.get("path") is not None:
                return shlex.quote(str(decl["path"]))
            if decl.get("value") is None:
                raise SpecError(f"jobs.{name}.inputs.{port}: no value; give it in the pipeline "
                                f"or with --set jobs.{name}.inputs.{port}=VALUE.")
            return str(decl["value"])
        if kind == "outputs":
            if port not in outputs:
                raise SpecError(f"jobs.{name}.command: '${{{{{ref}}}}}' names no output of the "
                                f"step.{closest(port, list(outputs))}")
            return shlex.quote(outputs[port])
        raise SpecError(f"jobs.{name}.command: cannot resolve '${{{{{ref}}}}}' offline.")

    return _REF.sub(value, _OPTIONAL.sub(optional, str(step["command"]))).strip()


def check_steps(steps: Iterable[Mapping[str, Any]]) -> None:
    """Fail at load time on a command binding that can never resolve."""
    for step in steps:
        bind_command(step, {k: "<out>" for k in step["outputs"]})


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "  (no output)"
    return "\n".join(f"  {line}" for line in lines[-_TAIL_LINES:]) or "  (no output)"
