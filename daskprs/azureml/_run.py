"""Run every job of a pipeline mapping in dependency order (what ``submit`` does on Azure).

``daskprs run`` runs one parallel job (and the command steps that feed it). A notebook that
submits a whole pipeline (``ml_client.jobs.create_or_update``, ``experiment.submit``) gets all
of them: command steps as subprocesses, parallel jobs each in ``ROOT/jobs/NAME`` (resumed when
that folder already holds a run), outputs without a path under ``ROOT``. As on Azure, a job that
fails once the pipeline runs is the pipeline's outcome, not an exception: the caller reports it
(``wait_for_completion``, ``jobs.stream``) with the results of the jobs that ran.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("daskprs")


@dataclass
class PipelineResult:
    """The outcome of a whole pipeline: one RunResult per parallel job, in run order, and the
    output paths of every job that ran (``outputs[JOB][OUTPUT]``)."""

    status: str
    run_dir: str
    results: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    reason: str = ""
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def __repr__(self) -> str:
        jobs = ", ".join(f"{k}: {v.status}" for k, v in self.results.items())
        return f"<PipelineResult {self.status} ({jobs}); run_dir={self.run_dir!r}>"


def run_pipeline(mapping: Mapping[str, Any], *, base_dir: str, overrides: Any = None,
                 run_dir: str | None = None, client: Any = None, workers: int | None = None,
                 quiet: bool = False) -> PipelineResult:
    """Run the pipeline's command steps and parallel jobs in order; stop at the first failure.

    A bad spec raises before anything runs. A failed command step, or an error in a job once an
    earlier one ran (its input may be what that one wrote), fails the pipeline with the reason.
    """
    from .. import api
    from ..commands import run_step
    from ..dialects.overrides import parse_overrides
    from ..dialects.pipeline import expand
    from ..errors import DaskPRSError, JobFailed
    from ..rundir import default_run_dir

    name = str(mapping.get("name") or mapping.get("display_name") or "pipeline")
    root = os.path.abspath(run_dir or default_run_dir(name))
    jobs = expand(mapping, base_dir=base_dir, overrides=parse_overrides(overrides), root=root)
    result = PipelineResult(status="succeeded", run_dir=root)
    if not quiet:
        log.info("pipeline run dir: %s", root)
    for job, kind, what in jobs:
        try:
            if kind == "command":
                run_step(what, root)
                result.commands.append(job)
                result.outputs[job] = {k: v["path"] for k, v in what["outputs"].items()}
                continue
            job_dir = os.path.join(root, "jobs", job)
            if os.path.isfile(os.path.join(job_dir, "journal.jsonl")):
                res = api.resume(job_dir, client=client, workers=workers, quiet=quiet)
            else:
                res = api.run(what, client=client, run_dir=job_dir, workers=workers, quiet=quiet)
        except DaskPRSError as e:
            if not isinstance(e, JobFailed) and not result.outputs:
                raise
            result.status, result.reason = "failed", f"jobs.{job} failed: {e}"
            break
        result.results[job] = res
        result.outputs[job] = dict(res.outputs)
        if not res.ok:
            result.status = res.status
            result.reason = f"jobs.{job} {res.status}: {res.reason}"
            break
    return result


def copy_output(path: str | None, folder: str, what: str, overwrite: bool = True) -> None:
    """Copy a job output (a folder's files, or one file) into ``folder``: what "download" means
    here, where outputs are already local. Files already there are kept unless ``overwrite``."""
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"{what} was not written (did its job fail?)",
                                path)
    os.makedirs(folder, exist_ok=True)
    if os.path.isfile(path):
        files = [(path, os.path.join(folder, os.path.basename(path)))]
    else:
        files = [(os.path.join(here, f), os.path.join(folder, os.path.relpath(here, path), f))
                 for here, _, names in os.walk(path) for f in names]
    for src, dest in files:
        if overwrite or not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(src, dest)


def copy_logs(run_dir: str, folder: str) -> None:
    """Copy the logs of a run directory (a job's, or a pipeline's and its jobs') into
    ``folder``, keeping their places (``logs``, ``jobs/NAME/logs``)."""
    import glob

    for logs in [os.path.join(run_dir, "logs"), *glob.glob(os.path.join(run_dir, "jobs", "*",
                                                                         "logs"))]:
        if os.path.isdir(logs):
            shutil.copytree(logs, os.path.join(folder, os.path.relpath(logs, run_dir)),
                            dirs_exist_ok=True)
