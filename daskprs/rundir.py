"""The run directory: layout, the durable journal that resume reads, and the reports.

The journal (``journal.jsonl``) is append-only: one line per finished chunk with a row per
mini-batch attempt. A mini-batch is committed when its ``ok`` row (naming the part file and
byte range of its output) is in the journal; nothing else counts. A line cut short by a crash
is ignored on replay, so the worst a crash costs is re-running the chunk it was writing.
A row is ``[index, attempt, status, items, succeeded, offset, length, process, id]``, plus
``error_type, message`` when it failed (timings are in the report CSV).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import yaml

from .errors import ResumeError
from .records import CSV_FIELDS

PENDING, OK, FAILED = 0, 1, 2
FSYNC_SECONDS = 1.0


def default_run_dir(job_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in job_name) or "job"
    return os.path.join(os.getcwd(), "daskprs-runs", f"{safe}-{stamp}")


class RunDir:
    """Paths of one run directory (created on demand)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def __truediv__(self, rel: str) -> str:
        return os.path.join(self.path, rel)

    @property
    def journal(self) -> str:
        return self / "journal.jsonl"

    @property
    def logs(self) -> str:
        return self / "logs"

    @property
    def report_csv(self) -> str:
        return self / "logs/sys/job_report/processed_mini-batches.csv"

    @property
    def dead_letters(self) -> str:
        return self / "failed_mini-batches.jsonl"

    @property
    def parts(self) -> str:
        return self / "parts"

    @property
    def staging(self) -> str:
        """A flat table shuffled into key groups (partition_keys); each run or resume stages
        it anew, and it goes once every mini-batch succeeded."""
        return self / "staging"

    def create(self) -> None:
        for sub in ("logs/sys/job_report", "logs/user", "parts", "outputs"):
            os.makedirs(self / sub, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory while a run or resume uses it: two drivers committing to
        one journal would both run the remaining work and race on its part files."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        with open(self / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise ResumeError(f"{self.path} is in use by another daskprs run or resume; "
                                  "wait for it to end (daskprs status shows its progress)."
                                  ) from None
            yield  # closing the file releases the lock (as does the process's death)

    def write_job(self, spec_dict: dict[str, Any], extra: dict[str, Any]) -> None:
        with open(self / "job.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump({**extra, "spec": spec_dict}, f, sort_keys=False)

    def read_job(self) -> dict[str, Any]:
        path = self / "job.yaml"
        if not os.path.isfile(path):
            raise ResumeError(f"{self.path}: not a daskprs run directory (no job.yaml).")
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)

    def write_text(self, rel: str, text: str) -> None:
        path = self / rel
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
        os.replace(tmp, path)


@dataclass
class State:
    """Per-mini-batch state in flat arrays, so a million mini-batches stay small."""

    n: int
    status: np.ndarray = field(init=False)
    attempts: np.ndarray = field(init=False)
    items: np.ndarray = field(init=False)
    items_ok: np.ndarray = field(init=False)
    part: np.ndarray = field(init=False)
    offset: np.ndarray = field(init=False)
    length: np.ndarray = field(init=False)
    parts: list[str] = field(default_factory=list)
    part_ids: dict[str, int] = field(default_factory=dict)
    header: bytes = b""

    def __post_init__(self) -> None:
        # items and items_ok of mini-batches committed by an earlier run (load_state): the
        # report's item counts cover the whole job, not only what a resume ran
        self.items = np.zeros(self.n, dtype=np.int32)
        self.items_ok = np.zeros(self.n, dtype=np.int32)
        self.status = np.zeros(self.n, dtype=np.int8)
        self.attempts = np.zeros(self.n, dtype=np.int16)
        self.part = np.full(self.n, -1, dtype=np.int32)
        self.offset = np.zeros(self.n, dtype=np.int64)
        self.length = np.zeros(self.n, dtype=np.int64)

    def part_id(self, name: str) -> int:
        if name not in self.part_ids:
            self.part_ids[name] = len(self.parts)
            self.parts.append(name)
        return self.part_ids[name]

    def commit(self, index: int, part: str | None, offset: int, length: int) -> bool:
        """Mark a mini-batch done; False if it already was (a duplicate is dropped)."""
        if self.status[index] == OK:
            return False
        self.status[index] = OK
        if part is not None and length:
            self.part[index] = self.part_id(part)
            self.offset[index] = offset
            self.length[index] = length
        return True

    def forget_missing_parts(self, parts_dir: str) -> int:
        """Un-commit mini-batches whose output part file is gone, so a resume redoes them
        instead of failing at the merge; returns how many. (A finished run deletes its
        parts once every mini-batch succeeded: that run has nothing left to resume.)"""
        missing = [i for i, name in enumerate(self.parts)
                   if not os.path.isfile(os.path.join(parts_dir, name))]
        if not missing:
            return 0
        lost = np.isin(self.part, missing) & (self.status == OK)
        self.status[lost] = PENDING
        self.part[lost] = -1
        self.length[lost] = 0
        self.items[lost] = self.items_ok[lost] = 0
        return int(lost.sum())

    def commit_many(self, indices: np.ndarray, attempts: list[int], part: str | None,
                    offsets: list[int], lengths: list[int]) -> bool:
        """Commit mini-batches that all succeeded in one chunk, at array speed.

        Returns False (and commits nothing) if any was already committed: the caller then
        goes one by one so the duplicate is dropped.
        """
        if (self.status[indices] == OK).any():
            return False
        self.status[indices] = OK
        self.attempts[indices] = attempts
        if part is not None:
            lens = np.asarray(lengths, dtype=np.int64)
            has = lens > 0
            self.part[indices[has]] = self.part_id(part)
            self.offset[indices[has]] = np.asarray(offsets, dtype=np.int64)[has]
            self.length[indices[has]] = lens[has]
        return True


class Journal:
    """Append-only JSON lines; flushed per record, fsync'ed at most once a second."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._synced = time.monotonic()

    def append(self, record: dict[str, Any]) -> None:
        self._write(json.dumps(record, separators=(",", ":")) + "\n")

    def _write(self, line: str) -> None:
        self._f.write(line)
        self._f.flush()
        now = time.monotonic()
        if now - self._synced > FSYNC_SECONDS:
            os.fsync(self._f.fileno())
            self._synced = now

    def append_rows(self, record: dict[str, Any], rows_json: str) -> None:
        """``record`` with ``"rows": [rows_json]``: rows already encoded (``records.ok_rows``)."""
        head = json.dumps(record, separators=(",", ":"))
        self._write(f'{head[:-1]},"rows":[{rows_json}]}}\n')

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    @staticmethod
    def replay(path: str) -> Iterator[dict[str, Any]]:
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash


class ReportCSV:
    """``processed_mini-batches.csv``: one row per mini-batch attempt, appended as they end."""

    def __init__(self, path: str) -> None:
        new = not os.path.isfile(path)
        self._f = open(path, "a", newline="", encoding="utf-8",  # noqa: SIM115
                       errors="backslashreplace")  # a file name that is not UTF-8
        self._w = csv.writer(self._f)
        if new:
            self._w.writerow(CSV_FIELDS)

    def write(self, row: list[Any]) -> None:
        self._w.writerow(row)

    def write_text(self, lines: str) -> None:
        """Rows already formatted as CSV lines (the fast path of a chunk that all succeeded)."""
        self._f.write(lines)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def load_state(run_dir: RunDir, n: int, plan: Any = None) -> tuple[State, dict[str, Any] | None]:
    """Rebuild committed state from the journal; returns (state, the baseline start record).

    The baseline is the latest start record with a ``fingerprint`` (the inputs the committed
    results were last checked against: a ``resume --force`` makes its own plan the baseline),
    else the first start record (None without one). A start record that was written before
    its input was hashed gets the ``fingerprint`` record that follows it.
    With ``plan``, a committed row is reused only if its mini-batch id still matches.
    """
    state = State(n)
    starts: list[dict[str, Any]] = []
    for rec in Journal.replay(run_dir.journal):
        kind = rec.get("t")
        if kind == "start":
            starts.append(rec)
        elif kind == "fingerprint" and starts and not starts[-1].get("fingerprint"):
            starts[-1]["fingerprint"] = rec["fingerprint"]
        elif kind == "chunk":
            if rec.get("h") and not state.header:
                state.header = rec["h"].encode("utf-8")
            for row in rec["rows"]:
                index, attempt, status = row[0], row[1], row[2]
                if index >= n:
                    continue
                state.attempts[index] = max(int(state.attempts[index]), attempt)
                if (status == "ok" and (plan is None or plan.work(index)[0] == row[8])
                        and state.commit(index, rec.get("part"), row[5], row[6])):
                    state.items[index], state.items_ok[index] = row[3], row[4]
    baseline = next((r for r in reversed(starts) if r.get("fingerprint")), None)
    return state, baseline or (starts[0] if starts else None)
