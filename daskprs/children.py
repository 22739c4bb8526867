"""User-code processes seen from their parent: spawn, wait for init(), run items, kill.

Kept apart from ``worker`` (and free of ``distributed``) so the driver can start the
processes of an in-process local cluster before it has even imported Dask: their Python
start-up, imports and ``init()`` then overlap the driver's own start-up, and the worker
plugin adopts them (``prestart`` / ``adopt``) instead of starting its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from ._child import ChildConfig, StatusFile
from .spec import JobSpec, uses_worker_processes, worker_count

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PRESTARTED: dict[tuple[str, str], list[ChildProcess]] = {}
_LOCK = threading.Lock()


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class ChildProcess:
    """One user-code process: spawn, wait for init, run items with a hard timeout, stop."""

    def __init__(self, config: ChildConfig, env: dict[str, str], tmp_root: str,
                 log_path: str, name: str) -> None:
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"daskprs-{name}-", dir=tmp_root)
        status_path = os.path.join(self.tmp, ".daskprs-status")
        self.status = StatusFile(status_path, create=True)
        parent_sock, child_sock = socket.socketpair()
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daskprs._child", str(child_sock.fileno()), status_path],
                pass_fds=(child_sock.fileno(),), cwd=self.tmp, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.conn.send(("init", config))
        self.ready = False
        self.init_seconds: float | None = None
        self._kill_lock = threading.Lock()
        self._killed = False
        self._started: list[Any] = []  # psutil.Process of what user code started

    def wait_ready(self, should_abort: Any) -> tuple | None:
        """Block until init() finished; returns None, or ``(type, message, traceback)``."""
        while not self.ready:
            if should_abort() or self.conn.closed:
                return ("Aborted", "the run was stopped", "")
            if not self._poll(0.5):
                if should_abort() or self.conn.closed:
                    return ("Aborted", "the run was stopped", "")
                if self.proc.poll() is not None and not self._poll(0):
                    return ("ProcessDied", f"the process died during init() "
                            f"({self._exit_text()})", "")
                continue
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.proc.wait()
                return ("ProcessDied", f"the process died during init() ({self._exit_text()})",
                        "")
            if msg[0] == "init_error":
                return msg[1:]
            self.ready, self.init_seconds = True, msg[2]
        return None

    def run(self, items: list[tuple], timeout: float, should_abort: Any,
            soft_deadline: float = float("inf"), *,
            worker: str = "") -> tuple[list, bool, tuple[str, str] | None]:
        """Run items in order; returns ``(child rows, alive, text)``.

        ``text``: the rows' report lines and journal rows as the child formatted them (see
        ``records.ok_rows``; ``worker`` is named in the report), or None when any row needs
        the driver's attention, which is always the case when the process did not survive.

        When the process dies or a run() outlives ``timeout``, the running item gets a
        ``crashed``/``timeout`` row and the rest are left for the caller (not charged). After
        ``soft_deadline`` the child finishes the running item and returns early, so a chunk
        of unexpectedly slow mini-batches still reports progress.
        """
        rows: list[tuple] = []
        texts: list[tuple[str, str]] | None = []
        # abort() (another thread) kills the process and closes its connection and status
        # file at any moment: then the chunk just ends, nothing charged, nothing raised.
        def stopped() -> bool:
            return should_abort() or self.conn.closed or self.status.closed

        try:
            self.status.request_stop(False)
            self.conn.send(("chunk", items, (worker, self.name)))
        except (OSError, ValueError):
            if stopped():
                return rows, False, None
            raise
        asked_stop = False
        while True:
            if stopped():
                self.kill()
                return rows, False, None
            if not asked_stop and time.time() > soft_deadline:
                self.status.request_stop()
                asked_stop = True
            index, started = self.status.get()
            wait = max(0.0, started + timeout - time.time()) if index >= 0 else 0.5
            if self._poll(min(wait, 0.5) + 0.001):
                try:
                    kind, batch, batch_text = self.conn.recv()
                except (EOFError, OSError):
                    if stopped():
                        return rows, False, None
                    return rows + self._crashed_row(items, rows), False, None
                rows.extend(batch)
                texts = None if texts is None or batch_text is None else [*texts, batch_text]
                if kind == "done":
                    text = None if not texts else ("".join(t[0] for t in texts),
                                                   ",".join(t[1] for t in texts if t[1]))
                    return rows, True, text
                continue
            if stopped():
                self.kill()
                return rows, False, None
            index, started = self.status.get()
            if index >= 0 and time.time() - started > timeout:
                self.kill()
                msg = (f"run() did not return within {timeout:g} s (retry_settings.timeout); "
                       "its process was killed and replaced.")
                return rows + [(index, "timeout", 0, 0, b"", b"", "Timeout", msg, "", started,
                                time.time() - started, 0)], False, None
            if self.proc.poll() is not None and not self._poll(0) and not stopped():
                return rows + self._crashed_row(items, rows), False, None

    def _poll(self, timeout: float) -> bool:
        """``conn.poll``; False when abort() closed the connection under it."""
        try:
            return self.conn.poll(timeout)
        except (OSError, ValueError):
            return False

    def _crashed_row(self, items: list[tuple], rows: list[tuple]) -> list[tuple]:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        index, started = self.status.get()
        if index < 0:  # died between items: blame the first one not reported
            done = {r[0] for r in rows}
            index = next((it[0] for it in items if it[0] not in done), items[0][0])
            started = time.time()
        msg = f"the process running run() died ({self._exit_text()})."
        return [(index, "crashed", 0, 0, b"", b"", "WorkerProcessDied", msg, "", started,
                 time.time() - started, 0)]

    def _exit_text(self) -> str:
        code = self.proc.returncode
        if code is None:
            return "still running"
        if code < 0:
            name = _signal_name(code)
            hint = ", maybe killed for using too much memory" if name == "SIGKILL" else ""
            return f"killed by {name}{hint}"
        return f"exit code {code}"

    def stop(self, grace: float = 10.0) -> str | None:
        """Ask for shutdown(), wait up to ``grace`` seconds, then kill. Returns its error."""
        error = None
        self._started = _descendants(self.proc.pid)  # before it exits and orphans them
        if self.proc.poll() is None and self.ready:
            try:
                self.conn.send(("stop",))
                if self.conn.poll(grace):
                    msg = self.conn.recv()
                    if msg[0] == "stopped":
                        error = msg[1]
            except (EOFError, OSError):
                pass
        self.kill()
        return error

    def kill(self) -> None:
        """Kill the process group and release the connection, status file and folder.

        Idempotent and thread-safe: abort() kills from another thread while run() may do the
        same. Two unguarded closes of the connection would close its descriptor number twice,
        and the second close could hit a file or socket that another thread just opened.
        """
        with self._kill_lock:
            if self.proc.poll() is None:
                self._started += _descendants(self.proc.pid)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.proc.wait()
            for p in self._started:  # started in a session of their own: not in the group
                with contextlib.suppress(Exception):
                    p.kill()
            self._started = []
            if self._killed:
                return
            self._killed = True
            self.conn.close()
            self.status.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def _descendants(pid: int) -> list[Any]:
    """The processes a user-code process started, also those in a session of their own
    (``start_new_session=True``), which killing its process group does not reach."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - gone already, or psutil cannot see it
        return []


def new_run_id() -> str:
    return uuid.uuid4().hex


def plugin_env(spec: JobSpec, bi_output_path: str) -> dict[str, str]:
    """The spec's environment variables for user code, plus what Azure's runtime sets."""
    env = {str(k): str(v) for k, v in spec.environment_variables.items()}
    env["AZUREML_BI_OUTPUT_PATH"] = bi_output_path
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def thread_workers(spec: JobSpec, workers: int | None = None) -> list[str]:
    """Names of the Dask workers the embedded LocalCluster runs as threads of the driver
    (``clusters`` starts it so); [] if it will not (another cluster, processes, GPUs)."""
    c = spec.cluster
    if c.type != "local" or c.gpus_per_instance or uses_worker_processes(spec):
        return []
    return [str(i) for i in range(worker_count(spec, workers))]


def spawn(config: ChildConfig, run_env: Mapping[str, str], run_dir: str, tmp_root: str,
          node: str, name: str) -> ChildProcess:
    """Start the user-code process ``name`` of worker ``node`` (its log: logs/user/stdout)."""
    node = node.replace(os.sep, "_")
    env = dict(os.environ)
    env.update(run_env)
    env["DASKPRS_AGENT_NAME"] = name
    env["DASKPRS_NODE_ID"] = node
    env["DASKPRS_RUN_DIR"] = run_dir
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    log = os.path.join(run_dir, "logs", "user", "stdout", node, f"{name}.stdout.txt")
    return ChildProcess(config, env, tmp_root, log, name)


def prestart(plugin_name: str, config: ChildConfig, run_env: Mapping[str, str], run_dir: str,
             workers: list[str], per_worker: int) -> None:
    """Start the processes the workers named ``workers`` will adopt (see ``adopt``)."""
    for node in workers:
        children = [spawn(config, run_env, run_dir, tempfile.gettempdir(), node,
                          f"process{i:03d}") for i in range(per_worker)]
        with _LOCK:
            _PRESTARTED[(plugin_name, node)] = children


def adopt(plugin_name: str, node: str) -> list[ChildProcess]:
    """The processes started for this worker of this run, if any (each handed out once)."""
    with _LOCK:
        return _PRESTARTED.pop((plugin_name, node), [])


def discard(plugin_name: str) -> None:
    """Kill what no worker adopted (the cluster did not start, or named workers otherwise)."""
    with _LOCK:
        left = [k for k in _PRESTARTED if k[0] == plugin_name]
        children = [c for k in left for c in _PRESTARTED.pop(k)]
    for child in children:
        child.kill()
