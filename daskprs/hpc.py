"""HPC clusters through dask-jobqueue (the ``hpc`` extra): SLURM, PBS, SGE, LSF, HTCondor, ...

One batch job per instance (``instance_count``) with ``max_concurrency_per_instance`` worker
processes each; every other ``cluster:`` key goes to the dask-jobqueue class unchanged. Every
job is cancelled when the run ends, however it ends: success, failure, a broken error budget,
Ctrl-C or SIGTERM/SIGHUP (turned into Ctrl-C while the cluster is open).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ._signals import signals_as_interrupt
from .errors import JobFailed, SpecError
from .spec import JobSpec

log = logging.getLogger("daskprs")

CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
           "lsf": "LSFCluster", "htcondor": "HTCondorCluster", "oar": "OARCluster",
           "moab": "MoabCluster"}
DEFAULT_MEMORY_PER_PROCESS = "4GiB"
ALL_WORKERS_GRACE = 30.0  # after the first worker, wait this long for the others
OWN_KEYS = ("adapt", "ship_code")  # daskprs's own keys under cluster:, not for jobqueue
GPU_PRELOAD = "daskprs.gpu"  # a nanny preload that pins each worker process to one GPU


class MissingExtraError(SpecError, ImportError):
    """dask-jobqueue is not installed (a SpecError for the CLI, an ImportError for Python)."""


def cluster_class(kind: str) -> Any:
    """The dask-jobqueue class, imported without its side effect on Ctrl-C.

    dask-jobqueue 0.9 sets ``SIGINT -> sys.exit()`` when imported (``runner.py``): Ctrl-C would
    exit with status 0 instead of raising KeyboardInterrupt (and a notebook's interrupt would
    end the kernel). The previous handler is put back.
    """
    previous = signal.getsignal(signal.SIGINT)
    try:
        import dask_jobqueue
    except ImportError:
        raise MissingExtraError(
            f"cluster.type: {kind} needs dask-jobqueue, which is not installed. Install it with: "
            "pip install daskprs[hpc]   (or: pip install dask-jobqueue)") from None
    except ValueError as e:  # "signal only works in main thread"
        raise SpecError(
            f"cluster.type: {kind}: dask-jobqueue can only be imported in the main thread ({e}). "
            "Run daskprs from the main thread, or `import dask_jobqueue` there first.") from None
    if previous is not None and signal.getsignal(signal.SIGINT) is not previous \
            and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)
    if kind not in CLASSES:
        raise SpecError(f"cluster.type: {kind!r} is not a dask-jobqueue cluster; use one of "
                        f"{', '.join(CLASSES)}.")
    return getattr(dask_jobqueue, CLASSES[kind])


def _config(kind: str, key: str) -> Any:
    import dask

    return dask.config.get(f"jobqueue.{kind}.{key}", None)


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() \
            or int(value) < 1:
        raise SpecError(f"cluster.{key}: expected a whole number >= 1, got {value!r}.")
    return int(value)


def _adapt_bounds(raw: Any, instance_count: int) -> tuple[int, int] | None:
    """``adapt: {minimum, maximum}`` in jobs; ``adapt: true`` is 0..instance_count."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return 0, instance_count
    if not isinstance(raw, Mapping) or set(raw) - {"minimum", "maximum"}:
        raise SpecError("cluster.adapt: expected {minimum: JOBS, maximum: JOBS} (or true), got "
                        f"{raw!r}.")
    low = raw.get("minimum", 0)
    if isinstance(low, bool) or not isinstance(low, int) or low < 0:
        raise SpecError(f"cluster.adapt.minimum: expected a number of jobs >= 0, got {low!r}.")
    high = _positive_int(raw.get("maximum", instance_count), "adapt.maximum")
    if high < low:
        raise SpecError(f"cluster.adapt: maximum ({high}) is below minimum ({low}).")
    return low, high


def _listed(opts: dict[str, Any], kind: str, key: str) -> list[Any]:
    """A list option from the spec, else from the user's jobqueue config (we add to it)."""
    value = opts.get(key)
    if value is None:
        value = _config(kind, key.replace("_", "-"))
    if isinstance(value, str):
        value = [value]
    return list(value or [])


def jobqueue_kwargs(spec: JobSpec) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """The dask-jobqueue constructor keywords and adapt bounds for a spec; pure, no I/O.

    Defaults only fill what neither the spec nor the user's jobqueue config gives:
    ``processes`` = max_concurrency_per_instance (else gpus_per_instance, else 1),
    ``cores`` = processes x threads_per_worker, ``memory`` = processes x memory_limit
    (else 4 GiB per process). GPUs: ``--gres=gpu:N`` on SLURM, a ``GPU=1`` resource and a
    nanny preload that pins each worker process to its own device.
    """
    from dask.utils import format_bytes, parse_bytes

    c = spec.cluster
    kind = c.type
    opts = {k: v for k, v in c.options.items() if k not in OWN_KEYS}
    adapt = _adapt_bounds(c.options.get("adapt"), spec.instance_count)
    gpus = c.gpus_per_instance
    threads = c.threads_per_worker
    cores = opts.get("cores", _config(kind, "cores"))
    if opts.get("processes") is not None:
        processes = _positive_int(opts["processes"], "processes")
    elif spec.max_concurrency_per_instance:
        processes = spec.max_concurrency_per_instance
    elif gpus:
        processes = gpus
    elif cores:
        processes = max(1, _positive_int(cores, "cores") // threads)
    else:
        processes = 1
    opts["processes"] = processes
    opts["cores"] = _positive_int(cores, "cores") if cores else processes * threads
    if opts["cores"] < processes:
        raise SpecError(f"cluster.cores: {opts['cores']} cores cannot run {processes} worker "
                        "processes per job (max_concurrency_per_instance); give more cores.")
    if opts.get("memory") is None and _config(kind, "memory") is None:
        per_process = parse_bytes(c.memory_limit or DEFAULT_MEMORY_PER_PROCESS)
        opts["memory"] = format_bytes(per_process * processes)
    if gpus:
        directives = _listed(opts, kind, "job_extra_directives")
        if kind == "slurm" and not any(re.search(r"--(gres|gpus)", str(d)) for d in directives):
            directives.append(f"--gres=gpu:{gpus}")
        opts["job_extra_directives"] = directives
        extra = _listed(opts, kind, "worker_extra_args")
        if "--resources" not in extra:
            extra += ["--resources", "GPU=1"]
        extra += ["--preload-nanny", GPU_PRELOAD]
        opts["worker_extra_args"] = extra
    scheduler = dict(opts.get("scheduler_options") or _config(kind, "scheduler-options") or {})
    scheduler.setdefault("dashboard_address", c.dashboard_address)
    opts["scheduler_options"] = scheduler
    if opts.get("job_name") is None and _config(kind, "name") in (None, "dask-worker"):
        opts["job_name"] = "daskprs-" + re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)[:40]
    return opts, adapt


def _job_ids(cluster: Any) -> list[str]:
    return [str(j.job_id) for j in list(cluster.workers.values()) if getattr(j, "job_id", None)]


def _close(cluster: Any) -> None:
    """Close the cluster (cancels its jobs), then cancel again whatever may be left."""
    ids = _job_ids(cluster)
    try:
        cluster.close(timeout=30)
    except Exception:  # noqa: BLE001 - still cancel the jobs below
        log.warning("closing the %s cluster failed; cancelling its jobs directly",
                    type(cluster).__name__, exc_info=True)
    cancel = getattr(cluster.job_cls, "cancel_command", None)
    if ids and cancel:
        try:  # idempotent: cancelling a finished job only prints an error we ignore
            subprocess.run([*shlex.split(cancel), *ids], capture_output=True, timeout=30,
                           check=False)
        except (OSError, subprocess.SubprocessError):
            log.warning("could not run %r for jobs %s; check your queue", cancel, ", ".join(ids))


class _SubmitErrors(logging.Filter):
    """Catches the job submissions that fail inside the event loop, and quiets them.

    dask-jobqueue submits jobs (``sbatch`` ...) in a background task; when the command fails
    (controller down, a queue or account that does not exist) the error is only logged, as a
    full traceback, and submitted again and again. The run would wait for workers until
    first_task_creation_timeout with tracebacks scrolling by. The first failure is kept for
    one clear message instead.
    """

    loggers = ("tornado.application", "asyncio", "distributed.deploy.spec",
               "distributed.deploy.adaptive_core")

    def __init__(self, kind: str, announce: bool) -> None:
        super().__init__()
        self.first: str | None = None
        self.kind = kind
        self.announce = announce  # adaptive: no one waits for the first workers, so say it

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        text = str(exc) if exc is not None else record.getMessage()
        if "Command exited with non-zero exit code" not in text:
            return True
        if self.first is None:
            self.first = _command_failure(text)
            if self.announce:
                log.warning("submitting a %s job failed: %s. dask-jobqueue tries again; the run "
                            "fails after first_task_creation_timeout if no job starts",
                            self.kind, self.first)
        return False

    @contextlib.contextmanager
    def installed(self) -> Iterator[_SubmitErrors]:
        for name in self.loggers:
            logging.getLogger(name).addFilter(self)
        try:
            yield self
        finally:
            for name in self.loggers:
                logging.getLogger(name).removeFilter(self)


def _command_failure(text: str) -> str:
    """'sbatch job.sh' failed (exit 1): <its stderr>, from dask-jobqueue's error text."""
    def section(name: str) -> str:
        m = re.search(rf"^{name}:\n(.*?)(?:\n\w+:\n|\Z)", text, re.S | re.M)
        return " ".join(m.group(1).split()) if m else ""
    code = re.search(r"Exit code: (-?\d+)", text)
    said = section("stderr") or section("stdout") or "no output"
    return f"'{section('Command')}' failed (exit {code.group(1) if code else '?'}): {said}"


def _wait_for_workers(client: Any, spec: JobSpec, expected: int, where: str,
                      errors: _SubmitErrors) -> None:
    if expected <= 0:
        return  # adapt from zero: jobs start when work is queued
    timeout = spec.first_task_creation_timeout
    deadline = time.monotonic() + timeout
    while True:
        if errors.first:
            raise JobFailed(
                f"submitting the {spec.cluster.type} jobs failed: {errors.first}. Check that "
                "the batch system answers (e.g. sinfo, or scontrol ping) and the cluster "
                "options it was given (queue, account, memory, walltime).")
        try:
            client.wait_for_workers(1, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            break
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise JobFailed(
                    f"no Dask worker joined within first_task_creation_timeout ({timeout:g} s): "
                    f"the {spec.cluster.type} jobs are still pending or failed at start. Check "
                    f"the queue (e.g. squeue) and the job logs ({where}); raise "
                    "first_task_creation_timeout for busy queues.") from None
    deadline = time.monotonic() + ALL_WORKERS_GRACE
    while time.monotonic() < deadline:
        if len(client.scheduler_info(n_workers=-1)["workers"]) >= expected:
            break
        time.sleep(0.2)
    have = len(client.scheduler_info(n_workers=-1)["workers"])
    log.info("%d of %d Dask workers up", have, expected)


@contextlib.contextmanager
def open_jobqueue_client(spec: JobSpec, quiet: bool = False) -> Iterator[Any]:
    """A Client on a dask-jobqueue cluster whose jobs are all cancelled on exit."""
    from distributed import Client

    cls = cluster_class(spec.cluster.type)
    kwargs, adapt = jobqueue_kwargs(spec)
    asks = " ".join(map(str, [*kwargs.get("job_extra_directives", []),
                              kwargs.get("resource_spec") or ""]))
    gpus, processes = spec.cluster.gpus_per_instance, kwargs["processes"]
    threads = kwargs["cores"] // processes
    if gpus and threads > 1:
        log.warning("cluster.cores: %s cores for %d worker processes gives each %d threads, so "
                    "%d run() calls share one GPU; to reserve CPUs without more threads, give "
                    "job_cpu (SLURM) instead of cores", kwargs["cores"], processes,
                    threads, threads)
    if gpus and processes != gpus:
        log.warning("cluster.gpus_per_instance is %d but each job runs %d worker processes "
                    "(max_concurrency_per_instance): each process is pinned to one GPU, so %s; "
                    "set them equal", gpus, processes,
                    f"{gpus - processes} GPU(s) per job go unused" if gpus > processes
                    else f"{processes - gpus} process(es) per job share a GPU")
    if gpus and "gpu" not in asks.lower():
        log.warning("cluster.gpus_per_instance: daskprs adds the GPU request to SLURM jobs only; "
                    "for %s add it yourself (e.g. PBS resource_spec: select=1:ncpus=8:ngpus=%d)",
                    spec.cluster.type, gpus)
    with signals_as_interrupt(), \
            _SubmitErrors(spec.cluster.type, announce=bool(adapt)).installed() as errors:
        try:
            cluster = cls(**kwargs)
        except (TypeError, ValueError) as e:
            unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
            if unknown:
                raise SpecError(
                    f"cluster.{unknown.group(1)}: not an option of dask-jobqueue's "
                    f"{cls.__name__}; see its documentation for the keys it takes (queue, "
                    "account, cores, memory, walltime, job_extra_directives, ...).") from None
            raise SpecError(f"cluster: {cls.__name__} rejected the options: {e}") from None
        try:
            if adapt:
                cluster.adapt(minimum_jobs=adapt[0], maximum_jobs=adapt[1])
                jobs = f"adaptive {adapt[0]}..{adapt[1]} jobs"
            else:
                cluster.scale(jobs=spec.instance_count)
                jobs = f"{spec.instance_count} jobs"
            if not quiet:
                log.info("%s: %s x %d worker processes, cores=%s, memory=%s%s", cls.__name__, jobs,
                         processes, kwargs["cores"], kwargs.get("memory", "(config)"),
                         f", {spec.cluster.gpus_per_instance} GPUs per job"
                         if spec.cluster.gpus_per_instance else "")
            log.debug("job script:\n%s", cluster.job_script())
            with Client(cluster) as client:
                where = kwargs.get("log_directory") or "log_directory, or the submit folder"
                _wait_for_workers(client, spec, (adapt[0] if adapt else spec.instance_count)
                                  * processes, where, errors)
                yield client
        finally:
            _close(cluster)
