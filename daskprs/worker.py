"""Worker side: the WorkerPlugin that owns the user-code processes, and the Dask task function.

One Dask task runs a *chunk* of mini-batches (many small ones share one task, so Dask's
per-task cost is paid once per chunk) and returns a ``ChunkResult`` value: it never raises.
Each mini-batch is still timed, retried and committed on its own: the child process reports
one result row per mini-batch, and output rows go to one atomically written part file per
chunk, whose byte ranges the driver commits in its journal.

``setup()`` only starts the child processes; ``init()`` runs there, in the background, so a
slow model load never blocks the worker's event loop or its heartbeats (the worker-TTL
restart loop of distributed, see reference C1).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from typing import Any

from distributed import WorkerPlugin, get_worker

from ._child import ChildConfig
from .children import ChildProcess, adopt, spawn

MAX_INIT_FAILURES = 3  # per worker, then it refuses work (the driver routes around it)
CHUNK_SOFT_SECONDS = 3.0  # a chunk returns what it has after this, the rest is resubmitted

# A row the worker returns per mini-batch attempt.
ROW_FIELDS = ("index", "status", "items", "succeeded", "offset", "length", "error_type",
              "message", "traceback", "start", "duration", "bytes_read", "process")


@dataclass
class ChunkResult:
    """What one task returns: per-mini-batch rows plus where their output bytes are."""

    worker: str
    part: str | None
    rows: list[tuple] = field(default_factory=list)
    header: bytes = b""
    init_error: tuple | None = None
    # Report lines and journal rows of all ``rows``, formatted by the user-code processes
    # (``records.ok_rows``) when every one succeeded; None: the driver commits row by row.
    text: tuple[str, str] | None = None
    seconds: float = 0.0  # spent running the rows (not queued, not waiting for init())


class Items:
    """A chunk's work items, opaque to Dask.

    ``Client.submit`` walks list and tuple arguments looking for futures; for a chunk of
    thousands of mini-batches that walk cost the driver more than the work. A plain object
    is passed through untouched and pickles as its content, or, with ``shared=True`` (only
    when scheduler and workers live in this process: an ``inproc://`` cluster), as a token
    for the object itself: the client pickles every task for its scheduler, and for a chunk of
    tiny mini-batches that pickle and unpickle cost as much as the mini-batches did.
    """

    __slots__ = ("items", "shared", "__weakref__")

    def __init__(self, items: list[tuple], shared: bool = False) -> None:
        self.items = items
        self.shared = shared
        if shared:
            _SHARED[id(self)] = self

    def __reduce__(self) -> tuple:
        if self.shared:
            return (_shared_items, (id(self),))
        return (Items, (self.items,))


# Items passed by reference, alive while the driver holds them (it does until the result).
_SHARED: weakref.WeakValueDictionary[int, Items] = weakref.WeakValueDictionary()


def _shared_items(token: int) -> Items:
    try:
        return _SHARED[token]
    except KeyError:
        raise RuntimeError("a chunk passed by reference was unpickled outside the process that "
                           "submitted it: in-process items need an inproc:// cluster") from None


class DaskPRSPlugin(WorkerPlugin):
    """Starts user-code processes on each worker and runs chunks in them; one per run."""

    idempotent = True

    def __init__(self, name: str, config: ChildConfig, env: dict[str, str], run_dir: str,
                 timeout: float) -> None:
        self.name = name
        self.config = config
        self.env = env
        self.run_dir = run_dir
        self.timeout = timeout

    def setup(self, worker: Any) -> None:
        self.worker_name = str(worker.name)
        self.address = worker.address
        self.tmp_root = worker.local_directory
        self._lock = threading.Lock()
        self._idle: list[ChildProcess] = []
        self._busy: set[ChildProcess] = set()
        self._seq = 0
        self.init_failures = 0
        self.aborted = False
        nthreads = getattr(worker.state, "nthreads", None) or getattr(worker, "nthreads", 1)
        # Started by the driver while it was still importing distributed (local in-process
        # clusters): their init() is already under way.
        for child in adopt(self.name, self.worker_name):
            self._seq += 1
            self._log(f"adopted {child.name} pid {child.proc.pid}")
            self._idle.append(child)
        while len(self._idle) < nthreads:
            self._idle.append(self._spawn())

    def teardown(self, worker: Any) -> None:
        self.aborted = True
        with self._lock:
            children = self._idle + list(self._busy)
            self._idle, self._busy = [], set()
        errors = [c.stop() for c in children]
        for error in filter(None, errors):
            self._log("shutdown() failed:\n" + error)

    def _log(self, text: str) -> None:
        path = os.path.join(self.run_dir, "logs", "sys", "node", self.worker_name, "_main.txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def _spawn(self) -> ChildProcess:
        name = f"process{self._seq:03d}"
        self._seq += 1
        child = spawn(self.config, self.env, self.run_dir, self.tmp_root, self.worker_name, name)
        self._log(f"started {name} pid {child.proc.pid}")
        return child

    def _checkout(self) -> ChildProcess:
        with self._lock:
            child = self._idle.pop() if self._idle else None
            if child is None:
                child = self._spawn()
            self._busy.add(child)
            return child

    def _checkin(self, child: ChildProcess) -> None:
        with self._lock:
            self._busy.discard(child)
            if self.aborted:
                child.kill()
            else:
                self._idle.append(child)

    def _replace(self, child: ChildProcess) -> ChildProcess:
        """A fresh process for a dead or killed one (none while the run is being stopped)."""
        child.kill()
        with self._lock:
            if self.aborted:
                return child
            self._busy.discard(child)
            fresh = self._spawn()
            self._busy.add(fresh)
            return fresh

    def abort(self) -> None:
        """Stop running work now (the job is being cancelled)."""
        self.aborted = True
        with self._lock:
            children = list(self._busy) + self._idle
            self._idle = []
        for child in children:
            child.kill()

    def process(self, key: str, items: list[tuple]) -> ChunkResult:
        """Run a chunk's items; never raises. ``items``: (index, id, attempt, payload, key)."""
        result = ChunkResult(worker=self.address, part=None)
        if self.init_failures >= MAX_INIT_FAILURES:
            result.init_error = ("InitFailed", f"init() failed {self.init_failures} times on "
                                 "this worker; it takes no more work", "")
            return result
        child = self._checkout()
        pending = list(items)
        segments: list[tuple[str, list[tuple]]] = []  # (process name, its child rows)
        soft_deadline = None
        try:
            while pending and not self.aborted:
                error = child.wait_ready(lambda: self.aborted)
                if error is not None:
                    if not self.aborted:
                        self.init_failures += 1
                        self._log(f"init() failed in {child.name}: {error[0]}: {error[1]}\n"
                                  f"{error[2]}")
                        result.init_error = tuple(error)
                    child = self._replace(child)
                    break
                if soft_deadline is None:  # counted from the first run(), not from init()
                    soft_deadline = time.time() + CHUNK_SOFT_SECONDS
                elif time.time() >= soft_deadline:
                    break
                started = time.monotonic()
                done, alive, text = child.run(pending, self.timeout, lambda: self.aborted,
                                              soft_deadline, worker=self.address)
                result.seconds += time.monotonic() - started
                segments.append((child.name, done))
                if alive:
                    # Text only from the first process: after a crash the driver goes row by row.
                    result.text = text if len(segments) == 1 else None
                    break  # finished, or stopped at the soft deadline: the driver resubmits
                finished = {row[0] for row in done}
                pending = [it for it in pending if it[0] not in finished]
                if done and done[-1][1] in ("crashed", "timeout"):
                    self._log(f"{child.name}: mini-batch {done[-1][0]} {done[-1][1]}: "
                              f"{done[-1][7]}")
                child = self._replace(child)
        finally:
            self._checkin(child)
        return self._commit_part(result, segments, key)

    def _commit_part(self, result: ChunkResult, segments: list[tuple[str, list[tuple]]],
                     key: str) -> ChunkResult:
        """Write the chunk's output rows to one part file (atomic rename) and index them.

        Columns are built with ``zip`` (thousands of tiny mini-batches per chunk); a failed
        row carries no output bytes, so its length is 0.
        """
        chunks: list[bytes] = []
        offset = 0
        for process, done in segments:
            if not done:
                continue
            (index, status, items, succeeded, data, header, etype, msg, tb, start, dur,
             nbytes) = zip(*done, strict=True)
            lengths = list(map(len, data))
            offsets = list(accumulate(lengths, initial=offset))
            offset = offsets.pop()  # where the next segment starts
            chunks.extend(data)
            if not result.header:
                result.header = next((h for h in header if h), b"")
            result.rows.extend(zip(index, status, items, succeeded, offsets, lengths, etype, msg,
                                   tb, start, dur, nbytes, repeat(process)))
        if offset:
            parts = os.path.join(self.run_dir, "parts")
            os.makedirs(parts, exist_ok=True)
            name = f"{key}-{uuid.uuid4().hex[:8]}.part"
            tmp = os.path.join(parts, f".{name}.tmp")
            with open(tmp, "wb") as f:
                f.writelines(chunks)
            os.replace(tmp, os.path.join(parts, name))
            result.part = name
        return result


def run_chunk(plugin_name: str, key: str, items: Items) -> ChunkResult:
    """The Dask task: hand the chunk to this worker's plugin."""
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if plugin is None:
        return ChunkResult(worker=worker.address, part=None,
                           init_error=("NotReady", "the daskprs plugin is not set up here", ""))
    return plugin.process(key, items.items)


def abort_run(plugin_name: str, dask_worker: Any = None) -> bool:
    """Run on every worker via ``client.run`` to stop a cancelled job's processes at once."""
    plugin = dask_worker.plugins.get(plugin_name) if dask_worker is not None else None
    if plugin is None:
        return False
    plugin.abort()
    return True
