"""The user's entry script: import it, check its contract, call init/run/shutdown; EntryScript.

Runs inside a worker's child process (``_child``), so it must import nothing heavy: pandas is
only touched when run() returns a DataFrame.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import sys
import types
from typing import Any

from .errors import EntryScriptError


def check_entry_script(path: str) -> None:
    """Driver-side check before anything starts: the file exists, parses, and defines run().

    Parsing with ``ast`` (not importing) keeps user code off the driver.
    """
    import ast

    if not os.path.isfile(path):
        folder = os.path.dirname(path)
        hint = ""
        if os.path.isdir(folder):
            scripts = sorted(f for f in os.listdir(folder) if f.endswith(".py"))
            if scripts:
                hint = f" Python files in {folder}: {', '.join(scripts[:10])}."
        raise EntryScriptError(
            f"entry script {path} does not exist. Check task.code and task.entry_script.{hint}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except SyntaxError as e:
        raise EntryScriptError(
            f"entry script {e.filename}, line {e.lineno}: syntax error: {e.msg}. Fix the script."
        ) from None
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    if "run" not in names:
        raise EntryScriptError(
            f"entry script {path} defines no run() function. Define "
            "`def run(mini_batch):` returning a list or a pandas DataFrame."
        )


def missing_imports(path: str, code_dir: str) -> list[tuple[int, str]]:
    """``(line, module)`` for each top-level import of the script that this Python cannot find.

    Uses ``importlib.util.find_spec`` on the first name of each absolute ``import`` at the
    script's top level (not inside ``try`` or ``if``, where imports are often optional), with
    the code folder on the path, so nothing of the user's is executed. A script that changes
    ``sys.path`` itself is not checked: what it can import is only known by running it.
    """
    import ast

    with open(path, encoding="utf-8") as f:
        text = f.read()
    if "sys.path" in text:
        return []
    tree = ast.parse(text, filename=path)
    names: list[tuple[int, str]] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend((node.lineno, a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.append((node.lineno, node.module.split(".")[0]))
    folders = [d for d in import_folders(path, code_dir) if d not in sys.path]
    sys.path[:0] = folders
    try:
        return [(line, name) for line, name in names if _not_found(name)]
    finally:
        for d in folders:
            sys.path.remove(d)


def _not_found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def import_folders(path: str, code_dir: str) -> list[str]:
    """What goes first on ``sys.path`` for the entry script: the code folder, then the
    script's own folder, so a script in a subfolder (``entry_script: scoring/score.py``)
    imports the modules next to it."""
    return [code_dir, os.path.dirname(path)]


def import_entry_script(path: str, code_dir: str) -> types.ModuleType:
    """Import the script as a module named after its path under ``code_dir`` (as Azure does),
    with ``import_folders`` on ``sys.path``."""
    for folder in reversed(import_folders(path, code_dir)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    rel = os.path.relpath(path, code_dir)
    name = os.path.splitext(rel)[0].replace(os.sep, ".")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EntryScriptError(f"entry script {path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise EntryScriptError(f"entry script {path} defines no run() function.")
    return module


def wants_context(run: Any) -> bool:
    """True if run() takes a second positional parameter (mini_batch_context)."""
    try:
        params = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


class MiniBatchContext:
    """The second argument of ``run(mini_batch, mini_batch_context)``, as Azure passes it."""

    __slots__ = ("partition_key_value", "minibatch_index", "dataset", "minibatch_id")

    def __init__(self, partition_key_value: dict | None, minibatch_index: int, dataset: Any,
                 minibatch_id: str) -> None:
        self.partition_key_value = partition_key_value or {}
        self.minibatch_index = minibatch_index
        self.dataset = dataset
        self.minibatch_id = minibatch_id

    def __repr__(self) -> str:
        return (f"MiniBatchContext(minibatch_index={self.minibatch_index}, "
                f"partition_key_value={self.partition_key_value!r})")


def result_length(result: Any) -> int:
    """Succeeded items of a run() return value; raises TypeError naming a wrong type."""
    if isinstance(result, list | tuple):
        return len(result)
    if type(result).__name__ == "DataFrame" and hasattr(result, "to_csv"):
        return len(result)
    got = "None" if result is None else f"{type(result).__module__}.{type(result).__qualname__}"
    if type(result).__module__ == "builtins":
        got = type(result).__name__
    raise TypeError(
        f"run() must return a list, tuple or pandas DataFrame (one element per succeeded item); "
        f"it returned {got}."
    )


def format_rows(result: Any, to_csv: dict[str, Any]) -> tuple[bytes, bytes]:
    """Azure's append_row text for one result: ``(rows, header_line)``.

    A list element becomes ``str(x)`` on its own line; a DataFrame row becomes one line,
    space-separated, no header, no index (``to_csv`` settings may change that).
    """
    if isinstance(result, list | tuple):
        if not result:
            return b"", b""
        return ("\n".join(map(str, result)) + "\n").encode("utf-8"), b""
    opts = {"sep": " ", "index": False, **to_csv, "header": False}
    text = result.to_csv(**opts) if len(result) else ""
    header = result.head(0).to_csv(**{**opts, "header": True})
    return text.encode("utf-8"), header.encode("utf-8")


LOGGER_NAME = "ParallelRunStep"  # EntryScript().logger, as Azure names it


class EntryScript:
    """Azure's ``azureml_user.parallel_run.EntryScript``: logger and folders of this process.

    A singleton per process; the child process sets the environment it reads from.
    """

    _instance: EntryScript | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> EntryScript:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._logger = None
        return cls._instance

    def __init__(self, logging_level: str | None = None) -> None:
        if logging_level:
            self.logger.setLevel(logging_level.upper())

    @property
    def agent_name(self) -> str:
        return os.environ.get("DASKPRS_AGENT_NAME", f"process{os.getpid()}")

    @property
    def node_id(self) -> str:
        return os.environ.get("DASKPRS_NODE_ID", "local")

    @property
    def working_dir(self) -> str:
        return os.environ.get("DASKPRS_RUN_DIR", os.getcwd())

    @property
    def output_dir(self) -> str:
        return os.environ.get("AZUREML_BI_OUTPUT_PATH", os.getcwd())

    @property
    def log_dir(self) -> str:
        path = os.path.join(self.working_dir, "logs", "user", "entry_script_log", self.node_id)
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            logger = logging.getLogger(LOGGER_NAME)
            logger.setLevel(os.environ.get("DASKPRS_LOGGING_LEVEL", "INFO"))
            handler = logging.FileHandler(
                os.path.join(self.log_dir, f"{self.agent_name}.log.txt"), encoding="utf-8")
            handler.setFormatter(logging.Formatter(
                "%(asctime)s|%(levelname)s|%(process)d|%(message)s"))
            logger.addHandler(handler)
            self._logger = logger
        return self._logger

    def config_log(self) -> None:
        """Kept for compatibility: the logger is configured on first use."""
        _ = self.logger
