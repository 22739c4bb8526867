"""The child process that runs user code for one Dask worker thread.

User code never runs inside the Dask worker: a hung run() is killed (hard timeout) and a
segfault or OOM kill takes down only this process, so the worker knows exactly which
mini-batch was running and charges only that one. The worker (``children.ChildProcess``) talks
to it over a socket and reads a tiny shared status file to see which mini-batch is running
and since when.

Protocol (pickled tuples): parent -> child ``("init", ChildConfig)``, ``("chunk", items,
(worker, process))``, ``("stop",)``; child -> parent ``("ready", pid, seconds)``,
``("init_error", type, msg, tb)``, ``("results", [row, ...], text)``, ``("done", [row, ...],
text)``, ``("stopped", error_or_None)``. A result row is the tuple ``RESULT_FIELDS``; ``text``
is the rows' report and journal text when all succeeded (``records.ok_rows``), else None.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from .plan import minibatch_id

STATUS = struct.Struct("qdq")  # running mini-batch (-1: idle), its start time, stop-after flag
_RUNNING = struct.Struct("qd")  # the first two fields, set twice per mini-batch
_STOP = struct.Struct("q")  # the last field, read once per mini-batch
RESULT_FIELDS = ("index", "status", "items", "succeeded", "rows", "header", "error_type",
                 "message", "traceback", "start", "duration", "bytes_read")
FLUSH_SECONDS = 0.25
FLUSH_BYTES = 8 << 20
TRIM_SECONDS = 5.0  # at most this often: memory handed back is paid again in page faults


@dataclass(frozen=True, kw_only=True)
class ChildConfig:
    """Everything a child needs to run mini-batches; built once per run on the driver."""

    entry_path: str
    code_dir: str
    argv: tuple[str, ...]
    reader: Any
    append_row: bool
    to_csv: dict = field(default_factory=dict)
    logging_level: str = "INFO"
    data_input: str = ""


class StatusFile:
    """A 16-byte file both processes map: which mini-batch runs, since when."""

    def __init__(self, path: str, create: bool = False) -> None:
        if create:
            with open(path, "wb") as f:
                f.write(STATUS.pack(-1, 0.0, 0))
        self._file = open(path, "r+b")  # noqa: SIM115 - lives as long as the mapping
        self._map = mmap.mmap(self._file.fileno(), STATUS.size)

    def set(self, index: int, start: float) -> None:
        _RUNNING.pack_into(self._map, 0, index, start)

    def get(self) -> tuple[int, float]:
        """(index, start) of the running mini-batch, or (-1, 0.0).

        The child may be halfway through writing them: a read can pair a new index with the
        idle start, 0.0 (4% of reads against a child in a tight loop; it once had a healthy
        run() killed as timed out 14 s into a 600 s timeout). Reads are repeated until two
        agree, and an index still without its start counts as starting now.
        """
        try:
            now = _RUNNING.unpack_from(self._map, 0)
            while (again := _RUNNING.unpack_from(self._map, 0)) != now:
                now = again
        except ValueError:  # closed: the process was killed (the run is being stopped)
            return -1, 0.0
        if now[0] >= 0 and now[1] == 0.0:
            return now[0], time.time()
        return now

    @property
    def closed(self) -> bool:
        return self._map.closed

    def request_stop(self, flag: bool = True) -> None:
        """Ask the child to end its chunk after the running mini-batch (a soft deadline)."""
        _STOP.pack_into(self._map, _RUNNING.size, int(flag))

    def stop_requested(self) -> bool:
        return _STOP.unpack_from(self._map, _RUNNING.size)[0] != 0

    def close(self) -> None:
        try:
            self._map.close()
            self._file.close()
        except (OSError, ValueError):
            pass


def _trim_memory() -> Any:
    """glibc's ``malloc_trim(0)`` (a no-op elsewhere): hands memory freed by earlier chunks'
    DataFrames back to the OS, so the footprint stays flat over a long run. Called between
    chunks every few seconds, not through ``MALLOC_TRIM_THRESHOLD_``: that also pins glibc's
    mmap threshold, and every large array then costs fresh page faults (3x the system time
    on a CSV job)."""
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


def _watch_parent(parent_pid: int) -> None:
    """Exit when the Dask worker that started us is gone (killed, crashed, machine lost)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(70)


# Starts the message of an init_error raised while importing the entry script, not in init().
IMPORT_FAILED = "importing the entry script: "
USER_LOG_FORMAT = "%(asctime)s|%(levelname)s|%(name)s|%(message)s"


def configure_logging(level: str) -> None:
    """Give user code what Azure's PRS gives it: a root-logger handler at ``logging_level``.

    Without it, ``logging.info()`` in an entry script is dropped and a warning reaches the log
    file bare (Python's last-resort handler). Records go to stderr, which is this process's
    ``processNNN.stdout.txt``, with time, level and logger name. EntryScript().logger has its
    own file, so its records are not written here a second time. A script that configures
    logging itself still gets what it asks for: while this handler is the root's only one,
    ``logging.basicConfig()`` replaces it, as it would configure an unconfigured root.
    """
    import logging

    from .entry_script import LOGGER_NAME

    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(USER_LOG_FORMAT))
    handler.addFilter(lambda record: record.name != LOGGER_NAME)
    root.addHandler(handler)
    root.setLevel(level)
    basic_config = logging.basicConfig

    def basicConfig(**kwargs: Any) -> None:  # noqa: N802 - stands in for logging.basicConfig
        if root.handlers == [handler]:
            root.removeHandler(handler)
        basic_config(**kwargs)

    basicConfig.__doc__ = basic_config.__doc__
    logging.basicConfig = basicConfig


class Runner:
    """Holds the imported entry script and turns one item into a result row.

    ``run_one`` is the per-mini-batch hot path (tens of thousands of calls for small files):
    everything it needs is looked up once here, not per call.
    """

    def __init__(self, config: ChildConfig) -> None:
        from .entry_script import (
            MiniBatchContext,
            format_rows,
            import_entry_script,
            result_length,
            wants_context,
        )
        from .inputs import load_payload

        self.config = config
        sys.argv = [config.entry_path, *config.argv]
        self.module = import_entry_script(config.entry_path, config.code_dir)
        self.run = self.module.run
        self.with_context = wants_context(self.run)
        self._tabular = getattr(config.reader, "tabular", False)
        self._reader = config.reader
        self._load = load_payload
        self._context = MiniBatchContext
        self._format = format_rows if config.append_row else None
        self._to_csv = config.to_csv
        self._length = result_length

    def init(self) -> None:
        init = getattr(self.module, "init", None)
        if callable(init):
            init()

    def shutdown(self) -> None:
        shutdown = getattr(self.module, "shutdown", None)
        if callable(shutdown):
            shutdown()

    def run_one(self, item: tuple, status: StatusFile) -> tuple:
        index, mb_id, _, payload, key = item
        start = time.time()
        status.set(index, start)
        files = payload[0] == "files"
        items = len(payload[1]) if files else 0
        bytes_before = self._bytes_read() if self._tabular else 0
        try:
            # A file list is what run() gets, as a list (load_payload's first case, inlined).
            data = list(payload[1]) if files else self._load(payload, self._reader, key)
            items = len(data)
            if self.with_context or key is not None:
                mb_id = mb_id or minibatch_id(index, payload, key)
                result = self.run(data, self._context(key, index, data, mb_id))
            else:
                result = self.run(data)
            if type(result) is list and self._format is not None:  # format_rows, inlined
                succeeded, header = len(result), b""
                rows = ("\n".join(map(str, result)) + "\n").encode(
                    "utf-8", "surrogateescape") if result else b""
            else:
                succeeded = self._length(result)
                rows, header = (self._format(result, self._to_csv) if self._format is not None
                                else (b"", b""))
            row = (index, "ok", items, succeeded, rows, header, None, None, None, start,
                   time.time() - start,
                   self._bytes_read() - bytes_before if self._tabular else 0)
        except BaseException as e:  # noqa: BLE001 - user errors (sys.exit too) become values
            tb = traceback.format_exc()
            row = (index, "failed", items, 0, b"", b"", type(e).__name__, str(e)[:2000], tb,
                   start, time.time() - start,
                   self._bytes_read() - bytes_before if self._tabular else 0)
        status.set(-1, 0.0)
        return row

    def _bytes_read(self) -> int:
        from .inputs import tabular

        return tabular.bytes_read


def main(fd: int, status_path: str) -> None:
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; Ctrl-C is its business
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    from .records import ok_rows

    conn = Connection(fd)
    status = StatusFile(status_path)
    _, config = conn.recv()
    os.environ["DASKPRS_LOGGING_LEVEL"] = config.logging_level
    configure_logging(config.logging_level)
    t0 = time.time()
    runner = None
    try:
        runner = Runner(config)
        runner.init()
    except BaseException as e:  # noqa: BLE001
        said = (IMPORT_FAILED if runner is None else "") + str(e)
        conn.send(("init_error", type(e).__name__, said[:2000], traceback.format_exc()))
        conn.close()
        sys.stdout.flush()
        os._exit(72)
    conn.send(("ready", os.getpid(), time.time() - t0))
    trim, last_trim = _trim_memory(), time.time()
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            break
        if msg[0] == "stop":
            error = None
            try:
                runner.shutdown()
            except BaseException:  # noqa: BLE001
                error = traceback.format_exc()
            try:
                conn.send(("stopped", error))
            except OSError:
                pass
            break
        worker, process = msg[2]
        offset = 0  # in the chunk's part file, where the buffer's output starts
        buffer: list[tuple] = []
        size = 0
        last = time.time()
        first = 0  # items[first:] are the ones buffer holds
        items = msg[1]
        for item in items:
            row = runner.run_one(item, status)
            buffer.append(row)
            size += len(row[4])
            now = time.time()
            if now - last > FLUSH_SECONDS or size > FLUSH_BYTES:
                conn.send(("results", buffer, ok_rows(buffer, items[first:first + len(buffer)],
                                                      worker, process, offset)))
                first += len(buffer)
                offset += size
                buffer, size, last = [], 0, now
            if status.stop_requested():
                break
        conn.send(("done", buffer, ok_rows(buffer, items[first:first + len(buffer)], worker,
                                           process, offset)))
        if time.time() - last_trim > TRIM_SECONDS:
            del buffer, msg, items
            trim()
            last_trim = time.time()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
