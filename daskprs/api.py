"""The Python API: ``run``, ``resume``, ``make_plan``, ``RunResult``; the CLI is a thin layer.

Data flows one way: spec -> plan -> execute -> outputs -> run dir reports.
"""

from __future__ import annotations

import html
import logging
import os
import shlex
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .bindings import BoundJob, bind
from .errors import JobFailed, ResumeError, SpecError
from .plan import Plan
from .rundir import OK, RunDir, State, default_run_dir, load_state
from .spec import JobSpec, spec_from_dict

log = logging.getLogger("daskprs")

EXIT_CODES = {"succeeded": 0, "failed": 1, "interrupted": 130}


@dataclass
class RunResult:
    """The outcome of a run, for notebooks and scripts."""

    status: str
    run_dir: str
    counts: dict[str, int]
    outputs: dict[str, str]
    failures: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    elapsed: float = 0.0
    append_row_file: str | None = None
    dataframe_rows: bool = False
    to_csv: Mapping[str, Any] = field(default_factory=dict)
    header_row: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)

    def raise_for_status(self) -> RunResult:
        """Raise ``JobFailed`` unless the job succeeded."""
        if not self.ok:
            raise JobFailed(f"job {self.status}: {self.reason} (see {self.run_dir})", self)
        return self

    def to_pandas(self) -> Any:
        """The append_row output as a DataFrame (rows in input order)."""
        import pandas as pd

        if not self.append_row_file:
            raise ValueError("this job has no append_row output (output_action summary_only).")
        if not os.path.isfile(self.append_row_file) or not os.path.getsize(self.append_row_file):
            return pd.DataFrame()
        if self.dataframe_rows:
            sep = self.to_csv.get("sep", " ")
            header = 0 if self.header_row else None
            return pd.read_csv(self.append_row_file, sep=sep, header=header)
        with open(self.append_row_file, encoding="utf-8") as f:
            return pd.DataFrame({"row": f.read().splitlines()})

    def __repr__(self) -> str:
        c = self.counts
        return (f"<RunResult {self.status}: {c.get('succeeded', 0)}/{c.get('mini_batches', 0)} "
                f"mini-batches ok, {c.get('failed', 0)} failed, {c.get('items_succeeded', 0)} "
                f"items ok in {self.elapsed:.1f}s; run_dir={self.run_dir!r}>")

    def _repr_html_(self) -> str:
        color = {"succeeded": "#2a7", "failed": "#c33"}.get(self.status, "#c80")
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
                       for k, v in self.counts.items())
        outs = "".join(f"<li>{html.escape(k)}: <code>{html.escape(v)}</code></li>"
                       for k, v in self.outputs.items())
        fails = "".join(
            f"<li><code>{html.escape(str(f['id']))}</code> {html.escape(str(f['error_type']))}: "
            f"{html.escape(str(f['message'])[:200])}</li>" for f in self.failures[:5])
        return (f"<div><b>daskprs run <span style='color:{color}'>{self.status}</span></b> "
                f"in {self.elapsed:.1f}s {html.escape(self.reason)}<br>"
                f"run dir: <code>{html.escape(self.run_dir)}</code>"
                f"<table>{rows}</table><ul>{outs}</ul>"
                + (f"<b>first failures</b><ul>{fails}</ul>" if fails else "") + "</div>")


def load(source: Any, overrides: Any = None, job: str | None = None) -> JobSpec:
    """A JobSpec from a path, a mapping, a JobSpec or an Azure-SDK-shaped object."""
    if isinstance(source, JobSpec):
        if overrides:
            raise SpecError("overrides apply to spec files and mappings, not to a JobSpec.")
        return source
    to_spec = getattr(source, "to_jobspec", None)
    if callable(to_spec):
        return to_spec(overrides=overrides, job=job)
    from .dialects import load_spec

    return load_spec(source, overrides, job=job)


def make_plan(source: Any, overrides: Any = None, job: str | None = None) -> Plan:
    """Build the mini-batch plan without running user code (``daskprs plan``)."""
    from .commands import RUN_DIR_TOKEN
    from .inputs import build_plan

    spec = load(source, overrides, job)
    path = spec.data_input.path or ""
    if spec.pre_steps and path.startswith(RUN_DIR_TOKEN):
        makers = [s["name"] for s in spec.pre_steps
                  if any(o.get("path") == path for o in s["outputs"].values())]
        raise SpecError(
            f"inputs.{spec.data_input.name} is written by the pipeline step "
            f"{makers[0] if makers else 'before it'} when the job runs, so there is nothing to "
            f"plan yet. Run the job (`daskprs run`), or plan over existing data with "
            f"--set inputs.{spec.data_input.name}=PATH.")
    return build_plan(spec)


def run(
    source: Any,
    overrides: Mapping[str, Any] | list[str] | None = None,
    *,
    client: Any = None,
    run_dir: str | os.PathLike | None = None,
    job: str | None = None,
    workers: int | None = None,
    quiet: bool = False,
) -> RunResult:
    """Run a parallel job; returns a RunResult (``.raise_for_status()`` to raise on failure).

    ``source`` is a spec file of any dialect, a mapping, a JobSpec, or a ``daskprs.azureml``
    object. ``client`` reuses the caller's Dask Client (never closed); otherwise daskprs starts
    and closes its own LocalCluster (or the cluster the spec's ``cluster:`` asks for).
    """
    spec = load(source, overrides, job)
    rd = RunDir(os.fspath(run_dir) if run_dir else default_run_dir(spec.name))
    if os.path.isfile(rd.journal):
        raise SpecError(
            f"run dir {rd.path} already holds a run; use `daskprs resume "
            f"{shlex.quote(rd.path)}` to finish it, or pick another --run-dir."
        )
    return _execute(spec, rd, client=client, workers=workers, quiet=quiet, resume=False)


def validate(source: Any, overrides: Any = None, job: str | None = None
             ) -> tuple[JobSpec, list[str]]:
    """Load and check a spec without running anything of the user's (``daskprs validate``):
    the spec, the entry script (exists, parses, defines run(), its top-level imports are
    found), the data input's path. Raises on a problem; returns the spec and warnings."""
    import sys

    from .entry_script import check_entry_script, missing_imports
    from .errors import EntryScriptError
    from .inputs.files import check_exists

    spec = load(source, overrides, job)
    check_entry_script(spec.task.entry_path)
    data = spec.data_input
    if data.path and not data.is_literal and not spec.pre_steps:  # steps write it first
        check_exists(data.path, f"inputs.{data.name}")
    missing = missing_imports(spec.task.entry_path, spec.task.code)
    if not missing:
        return spec, []
    what = ", ".join(f"{name!r} (line {line})" for line, name in missing)
    said = (f"entry script {spec.task.entry_path} imports {what}, which this Python "
            f"({sys.executable}) cannot find")
    if spec.cluster.type == "local" and not spec.cluster.address:
        raise EntryScriptError(f"{said}; the local workers run this Python, so every worker "
                               "would fail at start. Install it here, or run daskprs from the "
                               "environment the job needs.")
    return spec, [f"{said}. The cluster's workers need it."]


def resume(run_dir: str | os.PathLike, *, force: bool = False, client: Any = None,
           workers: int | None = None, quiet: bool = False) -> RunResult:
    """Rerun only the failed and unprocessed mini-batches of a run; reuse what succeeded.

    Refuses (``ResumeError``) if the inputs changed since the run, unless ``force``: then
    mini-batches whose id is unchanged (index plus a hash of the paths or byte range they
    cover; an edit inside a file is not seen) are still reused.
    """
    rd = RunDir(os.fspath(run_dir))
    meta = rd.read_job()
    spec = spec_from_dict(meta["spec"])
    return _execute(spec, rd, client=client, workers=workers, quiet=quiet, resume=True,
                    force=force)


def _execute(spec: JobSpec, rd: RunDir, *, client: Any, workers: int | None, quiet: bool,
             resume: bool, force: bool = False) -> RunResult:
    from .entry_script import check_entry_script

    if workers is not None and workers < 1:
        raise SpecError(f"workers={workers}: give at least 1 (or leave it out for the spec's "
                        "own count).")
    check_entry_script(spec.task.entry_path)
    if spec.stall_timeout < spec.retry_settings.timeout:
        log.warning("progress_update_timeout (%g s) is shorter than retry_settings.timeout "
                    "(%g s): a run() that takes longer than the first stops the whole job as "
                    "'no progress' before its own timeout", spec.stall_timeout,
                    spec.retry_settings.timeout)
    rd.create()
    with rd.locked():
        return _execute_locked(spec, rd, client=client, workers=workers, quiet=quiet,
                               resume=resume, force=force)


def _execute_locked(spec: JobSpec, rd: RunDir, *, client: Any, workers: int | None,
                    quiet: bool, resume: bool, force: bool) -> RunResult:
    # distributed is imported only once the user-code processes of an in-process local
    # cluster are starting (``children.prestart``): both take a good part of a second.
    from . import children
    from ._child import ChildConfig
    from .inputs import build_plan

    bound = bind(spec, rd.path)
    if spec.pre_steps:  # pipeline command steps write the data input: run them, then plan
        from .commands import run_steps

        spec = run_steps(spec, rd)
        bound = bind(spec, rd.path)
    if not quiet:
        log.info("run dir: %s", rd.path)
    start = time.monotonic()
    run_id = children.new_run_id()
    plugin_name = f"daskprs-{run_id[:12]}"
    env = children.plugin_env(spec, bound.bi_output_path)

    def child_config(reader: Any, code_dir: str, entry_path: str) -> ChildConfig:
        return ChildConfig(
            entry_path=entry_path, code_dir=code_dir, argv=bound.argv, reader=reader,
            append_row=bound.append_row_file is not None, to_csv=dict(spec.append_row.to_csv),
            logging_level=spec.logging_level, data_input=spec.input_data)

    plan_obj: Plan | None = None
    state: State | None = None
    if not spec.partition_keys:
        # Bad input fails here, before a cluster starts. A fresh run hashes a large file
        # list in the background and records the hash when ready; a resume needs it first.
        plan_obj = build_plan(spec, background=not resume)
        state = _initial_state(rd, plan_obj, resume=resume, force=force)
        if not resume:  # before the cluster: a run that never got workers can be resumed
            _write_job(rd, spec, bound, len(plan_obj))
        threads = children.thread_workers(spec, workers) if client is None else []
        if threads:
            config = child_config(plan_obj.reader, spec.task.code, spec.task.entry_path)
            children.prestart(plugin_name, config, env, rd.path, threads,
                              spec.cluster.threads_per_worker)
    try:
        from .clusters import open_client, prepare_workers, task_resources
        from .execute import Driver
        from .worker import DaskPRSPlugin

        with open_client(spec, client=client, workers=workers, quiet=quiet) as c:
            if plan_obj is None:
                staged_before = os.path.isdir(rd.staging)
                if not resume:  # staging takes a while: a driver killed in it can resume
                    _write_job(rd, spec, bound, None)
                try:
                    plan_obj = build_plan(spec, staging_dir=rd.staging, client=c)
                    state = _initial_state(rd, plan_obj, resume=resume, force=force)
                except BaseException as e:  # bad input, a refused resume: no copy left behind
                    if not staged_before:
                        shutil.rmtree(rd.staging, ignore_errors=True)
                    if not resume and not isinstance(e, KeyboardInterrupt):
                        os.remove(rd / "job.yaml")  # not a run: its --run-dir stays free
                    raise
                if not resume:
                    _write_job(rd, spec, bound, len(plan_obj))
            for name, path in bound.output_paths.items():
                is_file = spec.outputs[name].type == "uri_file"
                os.makedirs(os.path.dirname(path) if is_file else path, exist_ok=True)
            code_dir, entry_path = prepare_workers(c, spec, rd.path, bound.output_paths)
            plugin = DaskPRSPlugin(plugin_name, child_config(plan_obj.reader, code_dir,
                                                             entry_path),
                                   env, rd.path, spec.retry_settings.timeout)
            c.register_plugin(plugin, name=plugin.name)
            try:
                driver = Driver(spec=spec, plan=plan_obj, run_dir=rd, state=state, client=c,
                                plugin=plugin, run_id=run_id, quiet=quiet,
                                task_resources=task_resources(spec))
                outcome = driver.run()
            finally:
                if client is not None:  # the caller's cluster outlives us: stop our processes
                    try:
                        c.unregister_worker_plugin(plugin.name)
                    except Exception:  # noqa: BLE001
                        log.debug("could not unregister the worker plugin", exc_info=True)
    finally:
        children.discard(plugin_name)
    return _finish(spec, rd, plan_obj, state, outcome, bound, time.monotonic() - start)


def _write_job(rd: RunDir, spec: JobSpec, bound: BoundJob, mini_batches: int | None) -> None:
    rd.write_job(spec.to_dict(), {
        "daskprs_job": spec.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mini_batches": mini_batches,  # None while a partition_keys table is being staged
        "outputs": dict(bound.output_paths), "argv": list(bound.argv),
    })


def _initial_state(rd: RunDir, plan_obj: Plan, *, resume: bool, force: bool) -> State:
    if not resume:
        return State(len(plan_obj))
    state, baseline = load_state(rd, len(plan_obj), plan_obj)
    if baseline is None:
        return state
    if not (state.status == OK).all():
        lost = state.forget_missing_parts(rd.parts)
        if lost:
            log.warning("%d committed mini-batches lost their output part files (%s); "
                        "they run again", lost, rd.parts)
    if not baseline.get("fingerprint"):
        if not force:
            raise ResumeError(
                "the run was stopped before it finished hashing its input files (the plan "
                "fingerprint that tells whether they changed), so resuming could mix outputs of "
                "different data. Start a new run, or resume with --force to reuse the "
                "mini-batches whose files are unchanged by name."
            )
        log.warning("the run recorded no input fingerprint; reusing only mini-batches whose "
                    "files are unchanged by name (--force)")
    elif baseline["fingerprint"] != plan_obj.fingerprint:
        if not force:
            raise ResumeError(
                f"the inputs changed since this run started (plan fingerprint "
                f"{baseline['fingerprint'][:12]} -> {plan_obj.fingerprint[:12]}): resuming "
                f"would mix outputs of different data. Start a new run, or resume with --force "
                "to reuse the mini-batches that cover the same files or byte ranges as before."
            )
        log.warning("inputs changed since the run; reusing only unchanged mini-batches (--force)")
    return state


def _finish(spec: JobSpec, rd: RunDir, plan_obj: Plan, state: State, outcome: Any,
            bound: BoundJob, elapsed: float) -> RunResult:
    from .outputs import merge_append_row

    committed = int((state.status == OK).sum())
    # A resume of a run that had finished everything runs nothing: its output is final and
    # its part files are gone (deleted below once all were merged): nothing to merge again.
    finished_before = outcome.reused == len(plan_obj) and not all(
        os.path.isfile(os.path.join(rd.parts, name)) for name in state.parts)
    if bound.append_row_file and not finished_before:
        merge_append_row(state, rd.parts, bound.append_row_file, spec.append_row.dataframe_header)
    # not run: never tried, in this run or before; unfinished: tried, with a retry still due
    # when the run stopped (a broken budget, Ctrl-C)
    not_run = int(((state.status != OK) & (state.attempts == 0)).sum())
    counts = {
        "mini_batches": len(plan_obj), "succeeded": committed, "failed": outcome.failed,
        "not_run": not_run, "unfinished": len(plan_obj) - committed - outcome.failed - not_run,
        "reused": outcome.reused,
        "items": outcome.items, "items_succeeded": outcome.items_succeeded,
        "items_failed": outcome.items_failed, "attempts": outcome.attempts,
        "retries": outcome.retries,
    }
    result = RunResult(
        status=outcome.status, run_dir=rd.path, counts=counts,
        outputs=dict(bound.output_paths), failures=outcome.failures, reason=outcome.reason,
        elapsed=elapsed, append_row_file=bound.append_row_file,
        dataframe_rows=bool(state.header), to_csv=dict(spec.append_row.to_csv),
        header_row=spec.append_row.dataframe_header,
    )
    _write_reports(spec, rd, result, outcome)
    if committed == len(plan_obj):  # all merged: nothing left to resume
        # (A failed run keeps the staged key groups: failed_mini-batches.jsonl names them.)
        for folder in (rd.parts, rd.staging):
            if os.path.isdir(folder):
                shutil.rmtree(folder, ignore_errors=True)
    return result


def _write_reports(spec: JobSpec, rd: RunDir, result: RunResult, outcome: Any) -> None:
    c = result.counts
    lines = [f"Job {spec.name} {result.status.upper()} in {result.elapsed:.1f} s."]
    if result.reason:
        lines.append(f"Reason: {result.reason}.")
    lines += [
        f"Mini-batches: {c['mini_batches']} total, {c['succeeded']} succeeded "
        f"({c['reused']} reused from an earlier attempt), {c['failed']} failed, "
        + (f"{c['unfinished']} unfinished (tried, a retry due), " if c["unfinished"] else "")
        + f"{c['not_run']} not run; {c['attempts']} tries ({c['retries']} retries) in this run.",
        f"Items: {c['items_succeeded']} succeeded, {c['items_failed']} failed.",
        f"Thresholds: mini_batch_error_threshold={spec.mini_batch_error_threshold}, "
        f"error_threshold={spec.error_threshold}, "
        f"allowed_failed_percent={spec.allowed_failed_percent:g}, tries={spec.max_tries}, "
        f"timeout={spec.retry_settings.timeout:g} s.",
    ]
    if outcome.init_error:
        lines.append("starting the entry script failed (its import or init()):\n"
                     + outcome.init_error)
    final = [f for f in result.failures if f["status"] != "partial"]
    if final:
        lines.append("First errors:")
        for f in final[:5]:
            lines.append(f"  [{f['id']}] {f['error_type']}: {f['message']} "
                         f"({f['tries']} tries, worker {f['worker'] or '?'})")
    for name, path in result.outputs.items():
        lines.append(f"Output {name}: {path}")
    if result.append_row_file:
        lines.append(f"append_row file: {result.append_row_file}")
    if not result.ok or c["failed"]:
        lines.append("Details: logs/job_error.txt, failed_mini-batches.jsonl, "
                     "logs/sys/job_report/processed_mini-batches.csv, logs/user/stdout/.")
        lines.append(f"Resume (reruns only failed and unprocessed mini-batches): "
                     f"daskprs resume {shlex.quote(rd.path)}")
    rd.write_text("logs/job_result.txt", "\n".join(lines) + "\n")

    groups = Counter(f["error_type"] for f in result.failures)
    err = [f"{len(result.failures)} problems in user code ({len(final)} failed mini-batches)."]
    for etype, count in groups.most_common():
        first = next(f for f in result.failures if f["error_type"] == etype)
        err.append(f"\n== {etype}: {count} mini-batch(es); first: [{first['id']}] "
                   f"{first['message']}")
        if first.get("traceback"):
            err.append(first["traceback"].rstrip())
    if outcome.init_error:
        err.append("\n== starting the entry script failed (its import or init())\n"
                   + outcome.init_error)
    rd.write_text("logs/job_error.txt", "\n".join(err) + "\n")
