"""The driver loop: submit chunks of mini-batches through a bounded window, commit results.

Only this module (and ``worker``) touches ``distributed``. It registers the run's WorkerPlugin,
sizes chunks adaptively (many tiny mini-batches share a Dask task, a slow one runs alone),
keeps at most ``2 x slots`` chunks in flight so a million mini-batches never sit in the
scheduler, applies retries and budgets (``budget``), commits every result to the journal
(``rundir``) and stops promptly when a threshold breaks, a stall is detected or Ctrl-C arrives.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import logging
import math
import threading
import time
import traceback as tb_module
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from typing import Any

import numpy as np
from distributed import Client, wait

from ._child import IMPORT_FAILED
from .budget import Budget, Thresholds
from .plan import Plan, minibatch_id, payload_paths
from .records import timestamp
from .rundir import OK, Journal, ReportCSV, RunDir, State
from .spec import JobSpec
from .worker import ChunkResult, DaskPRSPlugin, Items, abort_run, run_chunk

log = logging.getLogger("daskprs")

TARGET_CHUNK_SECONDS = 0.5
MIN_CHUNK_SECONDS = 0.02
STOP_GRACE_SECONDS = 5.0
MAX_CHUNK = 2000  # mini-batches per task: bounds what is in flight (flat driver memory)
FIRST_ERRORS = 5
GC_THRESHOLD = 20_000  # allocations between young collections while the loop runs (700)


@dataclass
class Outcome:
    """What the loop did: the verdict and the counts the report and RunResult show."""

    status: str = "running"  # succeeded | failed | interrupted
    reason: str = ""
    minibatches: int = 0
    succeeded: int = 0
    failed: int = 0
    reused: int = 0
    items: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    attempts: int = 0
    retries: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    init_error: str | None = None
    elapsed: float = 0.0


class _Progress:
    """A tqdm bar over mini-batches with ok/failed/items in the postfix (silent if quiet)."""

    def __init__(self, total: int, initial: int, quiet: bool) -> None:
        self.bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="mb", dynamic_ncols=True,
                            mininterval=0.5, desc="mini-batches", smoothing=0.1)

    def update(self, n: int, outcome: Outcome) -> None:
        if self.bar is not None:
            self.bar.update(n)
            # as text: tqdm shows numbers of 5 digits and more as "4e+4"
            self.bar.set_postfix(ok=str(outcome.reused + outcome.succeeded),
                                 failed=str(outcome.failed), items=str(outcome.items_succeeded),
                                 refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


NO_WORKER_GRACE = 60.0  # seconds without any Dask worker before a run gives up


class Driver:
    """Runs one plan on one client; see the module docstring."""

    def __init__(self, *, spec: JobSpec, plan: Plan, run_dir: RunDir, state: State,
                 client: Client, plugin: DaskPRSPlugin, run_id: str, quiet: bool = False,
                 task_resources: dict | None = None) -> None:
        self.spec = spec
        self.plan = plan
        self.run_dir = run_dir
        self.state = state
        self.client = client
        self.plugin = plugin
        self.run_id = run_id
        self.quiet = quiet
        self.task_resources = task_resources  # e.g. {"GPU": 1}: every chunk needs a GPU worker
        self.budget = Budget(Thresholds(
            mini_batch_error_threshold=spec.mini_batch_error_threshold,
            error_threshold=spec.error_threshold,
            allowed_failed_percent=spec.allowed_failed_percent,
            max_tries=spec.max_tries,
        ), total=len(plan))
        self.outcome = Outcome(minibatches=len(plan))
        self.retry: collections.deque[tuple[int, int, bool]] = collections.deque()
        self.next_index = 0
        self.inflight: dict[Any, tuple[Items, float, bool]] = {}
        # Scheduler and workers in this process: chunks go to them by reference, unpickled.
        self.in_process = str(getattr(client.scheduler, "address", "")).startswith("inproc://")
        self.per_mb: float | None = None  # seconds per mini-batch, overhead included
        self._timed = (0.0, 0.0)  # (seconds, mini-batches) of recent chunks, halved per chunk
        self.ok_workers: set[str] = set()
        self.bad_workers: dict[str, tuple] = {}
        self.chunk_seq = 0
        self._workers_cache: tuple[float, set[str]] = (0.0, set())
        self._slots_cache = 1
        self._workers_seen = 0  # the most recent count, to say when workers leave
        self._no_workers_since: float | None = None
        self._rows_per_byte = (0, 0)  # tables: rows loaded, and planned bytes they came from

    # -- submission -----------------------------------------------------------------------
    def _slots(self) -> int:
        """Worker threads now in the cluster (refreshed each second: workers may join late)."""
        self._live_workers()
        return self._slots_cache

    def _next_items(self, size: int) -> tuple[list[tuple], bool]:
        """Up to ``size`` work items: retries first (a suspect one alone), then the plan."""
        items: list[tuple] = []
        while self.retry and len(items) < size:
            index, attempt, solo = self.retry[0]
            if solo and items:
                break
            self.retry.popleft()
            items.append(self._item(index, attempt))
            if solo:
                return items, True
        n = len(self.plan)
        while len(items) < size and self.next_index < n:
            start = self.next_index
            self.next_index = min(n, start + size - len(items))
            todo = np.flatnonzero(self.state.status[start:self.next_index] != OK) + start
            attempts = (self.state.attempts[todo] + 1).tolist()
            indices = todo.tolist()
            items.extend([(i, w[0], a, w[1], w[2]) for i, a, w in
                          zip(indices, attempts, self.plan.work_many(indices), strict=True)])
        return items, False

    def _item(self, index: int, attempt: int) -> tuple:
        mb_id, payload, key = self.plan.work(index)
        return (index, mb_id, attempt, payload, key)

    def _chunk_size(self, slots: int) -> int:
        remaining = (len(self.plan) - self.next_index) + len(self.retry)
        balance = max(1, math.ceil(remaining / (2 * slots)))
        if self.per_mb is None:
            return 1
        per_mb = max(self.per_mb, 1e-6)
        # Toward the end chunks shrink so the workers finish together, but never below what
        # pays for a task's own cost (a tail of one-mini-batch tasks cost more than it saved).
        floor = int(MIN_CHUNK_SECONDS / per_mb)
        return max(1, min(MAX_CHUNK, int(TARGET_CHUNK_SECONDS / per_mb), max(balance, floor)))

    def _submit(self, items: list[tuple], solo: bool) -> None:
        self.chunk_seq += 1
        key = f"daskprs-{self.run_id[:8]}-chunk{self.chunk_seq:06d}-{len(items)}mb"
        kwargs: dict[str, Any] = {}
        if self.bad_workers and self.ok_workers:
            kwargs = {"workers": sorted(self.ok_workers), "allow_other_workers": False}
        if self.task_resources:
            kwargs["resources"] = self.task_resources
        box = Items(items, shared=self.in_process)
        fut = self.client.submit(run_chunk, self.plugin.name, key, box, key=key, pure=False,
                                 **kwargs)
        self.inflight[fut] = (box, time.monotonic(), solo)

    def _fill(self, window: int, slots: int) -> None:
        while len(self.inflight) < window:
            items, solo = self._next_items(self._chunk_size(slots))
            if not items:
                return
            self._submit(items, solo)

    # -- results --------------------------------------------------------------------------
    def _handle(self, fut: Any, journal: Journal, report: ReportCSV) -> int:
        """Apply one finished future; returns how many mini-batches reached a final state."""
        box, submitted, solo = self.inflight.pop(fut)
        items = box.items
        try:
            res: ChunkResult = fut.result()
        except Exception as e:  # noqa: BLE001 - the worker died or the task was cancelled
            return self._lost(items, solo, e, report)
        elapsed = time.monotonic() - submitted
        if res.rows:
            # Time in the worker, not since submission (chunks queue behind one another), over
            # mini-batches, with older chunks fading: one slow start does not stall the ramp.
            seconds, count = self._timed
            self._timed = (seconds / 2 + (res.seconds or elapsed), count / 2 + len(res.rows))
            self.per_mb = self._timed[0] / self._timed[1]
        if res.init_error is not None:
            if res.init_error[0] not in ("NotReady", "Aborted"):
                self.bad_workers[res.worker] = res.init_error
        elif res.rows:
            self.ok_workers.add(res.worker)
            self.bad_workers.pop(res.worker, None)
        if self.plan.reader.tabular:  # a few chunks of megabytes: a loop is fine
            rows, planned = self._rows_per_byte
            for row in res.rows:
                if row[2]:  # rows it loaded (also when run() then raised)
                    rows, planned = rows + row[2], planned + self.plan[row[0]].items
            self._rows_per_byte = (rows, planned)
        if res.text is not None and len(res.rows) == len(items):
            finished = self._commit_all_ok(items, res, journal, report)
            if finished is not None:
                return finished
        rows = {row[0]: row for row in res.rows}
        record_rows = []
        finished = 0
        for index, mb_id, attempt, payload, key in items:
            mb_id = mb_id or minibatch_id(index, payload, key)
            row = rows.get(index)
            if row is None:  # not run: init failed, aborted, or stopped at the soft deadline
                self.retry.append((index, attempt, False))
                continue
            (_, status, n_items, succeeded, offset, length, etype, msg, tb, start, dur, nbytes,
             process) = row
            self.outcome.attempts += 1
            self.outcome.retries += attempt > 1
            self.state.attempts[index] = attempt
            if status == "ok":
                n_failed = max(0, n_items - succeeded)
                report.write([mb_id, index, attempt, "succeeded", n_items, succeeded, n_failed,
                              res.worker, process, timestamp(start), f"{dur:.4f}", nbytes, ""])
                if self.state.commit(index, res.part, offset, length):
                    self.outcome.succeeded += 1
                    self.outcome.items += n_items
                    self.outcome.items_succeeded += min(succeeded, n_items or succeeded)
                    self.outcome.items_failed += n_failed
                    self.budget.record_short_return(n_items, succeeded)
                    if n_failed:
                        self._failure(index, mb_id, payload, key, attempt, res.worker,
                                      "ShortReturn", f"run() returned {succeeded} items for "
                                      f"{n_items} inputs", "", final=False)
                    finished += 1
                record_rows.append([index, attempt, "ok", n_items, succeeded, offset, length,
                                    process, mb_id])
                continue
            n_items = n_items or self._items_of(index)  # crashed or timed out: none reported
            report.write([mb_id, index, attempt, status, n_items, 0, n_items, res.worker,
                          process, timestamp(start), f"{dur:.4f}", nbytes, f"{etype}: {msg}"])
            record_rows.append([index, attempt, status, n_items, 0, 0, 0, process, mb_id,
                                etype, (msg or "")[:500]])
            if self.budget.should_retry(status, attempt):
                self.retry.append((index, attempt + 1, status in ("crashed", "timeout")))
            else:
                failed_items = n_items
                self.budget.record_final_failure(failed_items)
                self.outcome.failed += 1
                self.outcome.items += failed_items
                self.outcome.items_failed += failed_items
                self._failure(index, mb_id, payload, key, attempt, res.worker, etype, msg, tb,
                              status=status)
                finished += 1
        if record_rows:
            journal.append({"t": "chunk", "part": res.part, "w": res.worker,
                            "h": res.header.decode("utf-8", "replace") if res.header else "",
                            "rows": record_rows})
            if res.header and not self.state.header:
                self.state.header = res.header
        return finished

    def _commit_all_ok(self, items: list[tuple], res: ChunkResult, journal: Journal,
                       report: ReportCSV) -> int | None:
        """The common case, at array speed: every mini-batch of the chunk ran and returned as
        many results as inputs (so the user-code processes formatted the rows: ``res.text``),
        and none was committed before. None: take the general path."""
        index, _, n_items, _, offset, length = islice(zip(*res.rows, strict=True), 6)
        n = len(index)
        if index != tuple(it[0] for it in items):
            return None
        attempts = [it[2] for it in items]
        if not self.state.commit_many(np.fromiter(index, dtype=np.int64, count=n), attempts,
                                      res.part, offset, length):
            return None
        total = sum(n_items)
        o = self.outcome
        o.attempts += n
        o.retries += sum(a > 1 for a in attempts)
        o.succeeded += n
        o.items += total
        o.items_succeeded += total
        report_text, journal_rows = res.text
        report.write_text(report_text)
        journal.append_rows({"t": "chunk", "part": res.part, "w": res.worker,
                             "h": res.header.decode("utf-8", "replace") if res.header else ""},
                            journal_rows)
        if res.header and not self.state.header:
            self.state.header = res.header
        return n

    def _lost(self, items: list[tuple], solo: bool, error: Exception, report: ReportCSV) -> int:
        """A chunk whose worker died (or was cancelled): resubmit its items one by one.

        Dask already re-ran it on worker deaths up to ``allowed-failures``; only an item that
        was alone in its chunk is charged a try, so innocent neighbours are never blamed.
        """
        name = type(error).__name__
        if name == "CancelledError" or not solo:
            for index, _, attempt, _, _ in items:
                self.retry.append((index, attempt, name != "CancelledError"))
            return 0
        index, mb_id, attempt, payload, key = items[0]
        mb_id = mb_id or minibatch_id(index, payload, key)
        msg = f"the worker running it was lost ({name}: {error})"
        n_items = self._items_of(index)
        report.write([mb_id, index, attempt, "lost", n_items, 0, n_items, "", "",
                      "", "", 0, msg])
        self.outcome.attempts += 1
        self.outcome.retries += attempt > 1
        self.state.attempts[index] = attempt
        if self.budget.should_retry("lost", attempt):
            self.retry.append((index, attempt + 1, True))
            return 0
        self.budget.record_final_failure(n_items)
        self.outcome.failed += 1
        self.outcome.items_failed += n_items
        self._failure(index, mb_id, payload, key, attempt, "", "WorkerLost", msg, "",
                      status="lost")
        return 1

    def _items_of(self, index: int) -> int:
        """Items of a mini-batch that never reported its own (crashed, timed out, lost), as
        ``error_threshold`` counts them: its files, or for a table its rows, estimated from
        its planned bytes at the rows per planned byte of the table's other mini-batches
        (never its byte count: one lost mini-batch must not weigh a million items)."""
        planned = self.plan[index].items
        if not self.plan.reader.tabular:
            return planned
        rows, nbytes = self._rows_per_byte
        return max(1, round(planned * rows / nbytes)) if nbytes else 1  # none seen yet: 1

    def _failure(self, index: int, mb_id: str, payload: tuple, key: Any, attempt: int,
                 worker: str, etype: str | None, msg: str | None, tb: str | None,
                 status: str = "failed", final: bool = True) -> None:
        entry = {
            "id": mb_id, "index": index, "status": status if final else "partial",
            "items": _describe_items(payload), "partition_key_value": key,
            "error_type": etype, "message": msg, "traceback": tb, "tries": attempt,
            "worker": worker,
        }
        with open(self.run_dir.dead_letters, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
        if len(self.outcome.failures) < 1000:
            self.outcome.failures.append(entry)

    # -- the loop -------------------------------------------------------------------------
    def _live_workers(self) -> set[str]:
        now = time.monotonic()
        if now - self._workers_cache[0] > 1.0:
            workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
            self._workers_cache = (now, set(workers))
            self._slots_cache = max(1, sum(w.get("nthreads", 1) for w in workers.values()))
        return self._workers_cache[1]

    def _check_workers(self, now: float, first_result: bool) -> str | None:
        """Say when workers go, and fail once none has been left for NO_WORKER_GRACE: batch
        jobs that hit their walltime or were cancelled do not come back by themselves, and
        the stall limit (3 x (timeout + 30 s)) could keep an idle driver waiting for half an
        hour. Adaptive clusters start workers for queued work, so they are left to wait."""
        live = len(self._live_workers())
        if live < self._workers_seen:
            log.warning("%d of %d Dask workers left the cluster (%d left)%s",
                        self._workers_seen - live, self._workers_seen, live,
                        "; batch jobs end at their walltime" if self.spec.cluster.type
                        not in ("local", "address") else "")
        self._workers_seen = live
        if live or not first_result or "adapt" in self.spec.cluster.options:
            self._no_workers_since = None
            return None
        if self._no_workers_since is None:
            self._no_workers_since = now
        if now - self._no_workers_since < NO_WORKER_GRACE:
            return None
        return (f"the cluster has had no Dask worker for {NO_WORKER_GRACE:g} s (batch jobs "
                "ended at their walltime or were cancelled, or the workers were stopped): "
                "start workers again (or raise the walltime), then resume")

    def _check_init(self) -> str | None:
        if self.ok_workers or not self.bad_workers:
            return None
        live = self._live_workers()
        if live and live <= set(self.bad_workers):
            etype, msg, tb = next(iter(self.bad_workers.values()))
            self.outcome.init_error = f"{etype}: {msg}\n{tb}"
            if msg.startswith(IMPORT_FAILED):
                return (f"the entry script failed to import on every worker ({len(live)}): "
                        f"{etype}: {msg[len(IMPORT_FAILED):]}. Install what it imports where "
                        "the workers run (or fix the script); init() never ran.")
            return f"init() failed on every worker ({len(live)}): {etype}: {msg}"
        return None

    def run(self) -> Outcome:
        with _fewer_collections():
            return self._run()

    def _run(self) -> Outcome:
        start = time.monotonic()
        self.outcome.reused = int((self.state.status == OK).sum())
        done_before = self.outcome.reused
        if done_before:  # the job's item counts include what earlier runs committed
            reused = self.state.status == OK
            items, items_ok = (int(self.state.items[reused].sum()),
                               int(self.state.items_ok[reused].sum()))
            self.outcome.items += items
            self.outcome.items_succeeded += min(items, items_ok)
            self.outcome.items_failed += max(0, items - items_ok)
        journal = Journal(self.run_dir.journal)
        report = ReportCSV(self.run_dir.report_csv)
        start_record = {"t": "start", "run_id": self.run_id, "n": len(self.plan),
                        "time": time.time(), "reused": done_before}
        fingerprint_due = not self.plan.fingerprint_ready  # a large input still being hashed
        if not fingerprint_due:
            start_record["fingerprint"] = self.plan.fingerprint
        journal.append(start_record)
        progress = _Progress(len(self.plan), done_before, self.quiet)
        last_progress = time.monotonic()
        first_result = False
        last_overview = 0.0
        stop_deadline = None
        try:
            while True:
                if self.outcome.status == "running":
                    slots = self._slots()
                    self._fill(2 * slots, slots)
                elif stop_deadline is None:
                    stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
                if not self.inflight:
                    break
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    self._cancel_inflight()
                    break
                for fut in self._wait_some(0.5):
                    n = self._handle(fut, journal, report)
                    if n:
                        first_result = True
                        last_progress = time.monotonic()
                        progress.update(n, self.outcome)
                if self.outcome.status != "running":
                    continue
                reason = self.budget.exceeded(
                    all_scheduled=self.next_index >= len(self.plan) and not self.retry)
                reason = reason or self._check_init()
                now = time.monotonic()
                if not reason and not first_result and now - start > (
                        self.spec.first_task_creation_timeout):
                    reason = (f"no mini-batch finished within first_task_creation_timeout "
                              f"({self.spec.first_task_creation_timeout:g} s): workers did not "
                              "start or init() is stuck; see logs/user/stdout")
                if not reason and first_result and now - last_progress > self.spec.stall_timeout:
                    reason = (f"no progress for {self.spec.stall_timeout:g} s "
                              "(progress_update_timeout)")
                    if not self._live_workers():
                        reason += ("; the cluster has no Dask worker left (lost or stopped): "
                                   "start workers again, then resume")
                reason = reason or self._check_workers(now, first_result)
                if reason:
                    self._stop("failed", reason)
                if fingerprint_due and self.plan.fingerprint_ready:
                    self._record_fingerprint(journal)
                    fingerprint_due = False
                if now - last_overview > 10:
                    last_overview = now
                    self._write_overview(now - start)
                    report.flush()
        except KeyboardInterrupt as e:  # hpc turns SIGTERM/SIGHUP into one, naming it
            self._stop("interrupted", f"interrupted ({str(e) or 'Ctrl-C'})")
            self._drain(journal, report)
        finally:
            progress.close()
            report.close()
        if self.outcome.status == "running":
            self.outcome.status, self.outcome.reason = self._verdict()
        if fingerprint_due and (self.outcome.status != "interrupted"
                                or self.plan.fingerprint_ready):
            self._record_fingerprint(journal)  # waits for it, unless Ctrl-C was pressed
        journal.append({"t": "end", "status": self.outcome.status, "reason": self.outcome.reason,
                        "time": time.time()})
        journal.close()
        self.outcome.elapsed = time.monotonic() - start
        self._write_overview(self.outcome.elapsed)
        return self.outcome

    def _record_fingerprint(self, journal: Journal) -> None:
        """The input's fingerprint, hashed while the run went on, for resume to check."""
        if not self.plan.fingerprint_ready and not self.quiet:
            log.info("waiting for the hash of the %d input files (resume checks it)",
                     self.plan.total_items)
        try:
            fingerprint = self.plan.fingerprint
        except Exception:  # noqa: BLE001 - the work is done; only resume's check is lost
            log.warning("could not hash the input files; a resume of this run will need "
                        "--force", exc_info=True)
            return
        journal.append({"t": "fingerprint", "fingerprint": fingerprint})

    def _verdict(self) -> tuple[str, str]:
        """Succeeded, unless nothing did: every mini-batch failed (within the thresholds), or
        an append_row job appended no item (Azure's NoResultToAppendError)."""
        o = self.outcome
        if len(self.plan) and o.failed == len(self.plan):
            return "failed", (f"every mini-batch failed ({o.failed}), which the thresholds "
                              "allow, but a job with no result is not a success; see "
                              "logs/job_error.txt")
        if len(self.plan) and self.spec.output_action == "append_row" and not o.items_succeeded:
            return "failed", ("no mini-batch returned an item to append (NoResultToAppendError, "
                              "as in Azure): run() returned empty results everywhere; return a "
                              "row per input, or drop append_row_to for summary_only")
        return "succeeded", ""

    def _stop(self, status: str, reason: str) -> None:
        """Stop submitting and abort the run's processes on every worker.

        Running chunks then return at once with the mini-batches they finished (committed as
        usual), queued ones return empty; only stragglers are cancelled after a grace period.
        """
        self.outcome.status = status
        self.outcome.reason = reason
        try:
            self.client.run(abort_run, self.plugin.name, wait=True)
        except Exception:  # noqa: BLE001 - best effort: the cluster may be going away
            log.debug("abort failed:\n%s", tb_module.format_exc())

    def _wait_some(self, timeout: float) -> list[Any]:
        """Finished futures (waiting up to ``timeout``); cancelled ones count as finished."""
        try:
            wait(list(self.inflight), timeout=timeout, return_when="FIRST_COMPLETED")
        except Exception:  # noqa: BLE001 - TimeoutError, or a future cancelled under us
            pass
        return [f for f in self.inflight if f.done()]

    def _cancel_inflight(self) -> None:
        try:
            self.client.cancel(list(self.inflight))
        except Exception:  # noqa: BLE001
            log.debug("cancel failed:\n%s", tb_module.format_exc())
        self.inflight.clear()

    def _drain(self, journal: Journal, report: ReportCSV) -> None:
        """After Ctrl-C: commit what finishes within the grace period, give the rest up."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.inflight and time.monotonic() < deadline:
            for fut in self._wait_some(0.5):
                self._handle(fut, journal, report)
        self._cancel_inflight()

    def _write_overview(self, elapsed: float) -> None:
        done = int((self.state.status == OK).sum()) + self.outcome.failed
        total = len(self.plan)
        rate = (done - self.outcome.reused) / elapsed if elapsed > 0 else 0
        eta = (total - done) / rate if rate > 0 else 0
        self.run_dir.write_text(
            "logs/job_progress_overview.txt",
            f"Processed {done} of {total} mini batches in {timedelta(seconds=int(elapsed))}. "
            f"Estimated remaining time {timedelta(seconds=int(eta))}.\n")


_gc_lock = threading.Lock()
_gc_state: dict[str, Any] = {"loops": 0, "threshold": None}  # loops running in this process


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """The loop allocates small objects by the million (rows, tuples, futures) and each full
    collection walked every object of the process (distributed, numpy, the plan): objects from
    before the loop are set aside (``gc.freeze``) and the youngest generation collected less
    often, until the last loop of this process ends (jobs may run in several threads)."""
    with _gc_lock:
        if _gc_state["loops"] == 0:
            threshold = _gc_state["threshold"] = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(threshold[0], GC_THRESHOLD), *threshold[1:])
        _gc_state["loops"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["loops"] -= 1
            if _gc_state["loops"] == 0:
                gc.set_threshold(*_gc_state["threshold"])
                gc.unfreeze()


def _describe_items(payload: tuple) -> Any:
    kind = payload[0]
    if kind == "files":
        return list(payload[1])
    if kind == "range":
        return {"path": payload[1], "start": payload[2], "end": payload[3]}
    if kind == "rowgroups":
        return {"path": payload[1], "row_groups": list(payload[2])}
    return payload_paths(payload)


__all__ = ["Driver", "Outcome"]
