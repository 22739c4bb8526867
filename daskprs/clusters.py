"""Where a run executes: an embedded LocalCluster (default, or one worker per GPU), an existing
scheduler (``cluster.address``), a caller's ``client=``, or HPC through dask-jobqueue (``hpc``).

``open_client`` yields a Client and closes only what it started: a caller's ``client=`` is
used as is and never closed. On a cluster daskprs did not start on this machine, workers may not
share the driver's filesystem, so ``prepare_workers`` ships the ``task.code`` folder to every
worker (a WorkerPlugin that unpacks a zip) and checks up front that every worker can read the
inputs and write the run dir and outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import shutil
import socket
import tempfile
import uuid
import weakref
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

from dask.utils import format_bytes
from distributed import WorkerPlugin

from .errors import InputError, JobFailed, SpecError
from .spec import JobSpec, uses_worker_processes, worker_count

log = logging.getLogger("daskprs")

MAX_SHIP_BYTES = 200 * 2**20
SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".ipynb_checkpoints",
                       "daskprs-runs", "dask-scratch-space", ".venv"})
LOW_LEVEL_LOG_LENGTH = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same code gives the same bytes

# How each client open_client yielded came about: "local", "address", "jobqueue".
_STARTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def task_resources(spec: JobSpec) -> dict[str, float] | None:
    """What every task asks of its worker: one GPU when the cluster has GPUs."""
    return {"GPU": 1} if spec.cluster.gpus_per_instance else None


@contextlib.contextmanager
def open_client(spec: JobSpec, client: Any = None, workers: int | None = None,
                quiet: bool = False) -> Iterator[Any]:
    """A Client for the run: the caller's, or one on the cluster ``spec.cluster`` asks for.

    ``workers`` overrides the local worker count (CLI ``--workers``). What daskprs started
    is closed on exit; on a scheduler that outlives the run, the run's plugins are removed.
    """
    if client is not None:
        with _remove_plugins_on_exit(client, "daskprs-code-"):
            yield client
        return
    import dask

    # For what daskprs starts: distributed keeps the last N messages of every stream and worker
    # for debugging (100,000 transitions by default), each holding a chunk's work items, so
    # the driver's memory would grow with the job; and each worker samples its threads' stacks
    # every 10 ms, which only ever shows a thread waiting for a user-code process.
    settings = {"distributed.admin.low-level-log-length": LOW_LEVEL_LOG_LENGTH,
                "distributed.worker.profile.enabled": False}
    _quiet_expected_errors()
    with dask.config.set(settings), _open_owned(spec, workers, quiet) as owned:
        yield owned


@contextlib.contextmanager
def _open_owned(spec: JobSpec, workers: int | None, quiet: bool) -> Iterator[Any]:
    c = spec.cluster
    if c.type == "address":
        with _open_address(spec, quiet) as owned:
            yield owned
        return
    if c.type != "local":
        from .hpc import open_jobqueue_client

        with open_jobqueue_client(spec, quiet=quiet) as owned:
            _STARTED[owned] = "jobqueue"
            if not quiet:
                _log_dashboard(owned, spec)
            yield owned
        return
    with _open_local(spec, workers, quiet) as owned:
        yield owned


@contextlib.contextmanager
def _open_local(spec: JobSpec, workers: int | None, quiet: bool) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    c = spec.cluster
    kwargs: dict[str, Any] = {"threads_per_worker": c.threads_per_worker,
                              "dashboard_address": c.dashboard_address,
                              "silence_logs": logging.ERROR}
    if c.memory_limit:
        kwargs["memory_limit"] = c.memory_limit
    if c.gpus_per_instance:
        from .gpu import LocalGPUCluster, visible_devices

        devices = visible_devices(c.gpus_per_instance)
        n = workers or c.n_workers or len(devices)
        cluster = LocalGPUCluster(devices, n_workers=n, **kwargs)
        processes = True
        if not quiet:
            log.info("%d GPU workers on devices %s", n, ",".join(devices))
    else:
        # User code always runs in child processes of the workers (crash isolation, hard
        # timeouts), so by default the Dask workers are threads of this process: no worker
        # process start-up, and results reach the driver without a hop or a pickle.
        processes = uses_worker_processes(spec)
        if not processes:
            kwargs.setdefault("memory_limit", 0)  # RSS here is the driver's, not user code's
        cluster = LocalCluster(n_workers=worker_count(spec, workers), processes=processes,
                               **kwargs)
    try:
        with Client(cluster) as owned:
            _STARTED[owned] = "local"
            if processes:
                owned.register_plugin(_QuietWorkerLogs())
            if c.gpus_per_instance:
                owned.wait_for_workers(len(cluster.worker_spec), timeout=60)
            if not quiet:
                _log_dashboard(owned, spec)
            yield owned
    finally:
        cluster.close()


class _CommClosedFilter(logging.Filter):
    """Drops the INFO record, with a traceback, that distributed logs whenever a stream between
    scheduler, workers and client closes. It is normal when daskprs closes its cluster (at the
    end, or on Ctrl-C and SIGTERM while workers are busy) and alarming to read; a worker lost
    mid-run is reported by daskprs itself, naming its mini-batches."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Batched Comm Closed %r"


class _WorkerNoiseFilter(logging.Filter):
    """Drops two worker records, each with a traceback, that daskprs reports better itself:
    "Compute Failed" for a daskprs task that refused bad input (a staging task finding no key
    column in a file: the driver reports it in one paragraph, exit 2), and a heartbeat that
    found the scheduler gone, which is normal while daskprs closes its cluster (a worker lost
    mid-run is reported by daskprs, naming its mini-batches)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Failed to communicate with scheduler during heartbeat.":
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        return not (str(record.msg).startswith("Compute Failed") and len(args) >= 4
                    and "daskprs-" in str(args[0])
                    and str(args[3]).startswith(("SpecError(", "InputError(")))


class _QuietWorkerLogs(WorkerPlugin):
    """The same quieting inside worker processes (``processes: true``, partition_keys)."""

    name = "daskprs-quiet-logs"

    def setup(self, worker: Any) -> None:
        _quiet_expected_errors()


def _quiet_expected_errors() -> None:
    for name, kind in (("distributed.batched", _CommClosedFilter),
                       ("distributed.worker", _WorkerNoiseFilter)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


@contextlib.contextmanager
def _open_address(spec: JobSpec, quiet: bool) -> Iterator[Any]:
    import dask
    from distributed import Client

    address = spec.cluster.address
    if not address:
        raise SpecError("cluster.address: give the scheduler address, e.g. tcp://host:8786.")
    try:
        owned = Client(address, timeout=dask.config.get("distributed.comm.timeouts.connect"))
    except (OSError, TimeoutError) as e:
        raise SpecError(
            f"cluster.address: cannot connect to a Dask scheduler at {address} ({e}). Check the "
            "address and that the scheduler runs (`dask scheduler`), or remove cluster.address "
            "to run on this machine.") from None
    with owned, _remove_plugins_on_exit(owned, "daskprs-"):
        _STARTED[owned] = "address"
        if not owned.scheduler_info(n_workers=-1)["workers"]:
            log.info("waiting for a worker to join %s ...", address)
            try:
                owned.wait_for_workers(1, timeout=spec.first_task_creation_timeout)
            except TimeoutError:
                raise JobFailed(
                    f"cluster.address: the scheduler at {address} has no workers (waited "
                    f"first_task_creation_timeout, {spec.first_task_creation_timeout:g} s). "
                    f"Start some with `dask worker {address}`.") from None
        if not quiet:
            _log_dashboard(owned, spec)
        yield owned


def _log_dashboard(client: Any, spec: JobSpec) -> None:
    """Print the dashboard link, if a dashboard runs (the link exists even when none does)."""
    import dask

    port = client.scheduler_info().get("services", {}).get("dashboard")
    if not port:
        return
    link = client.dashboard_link
    in_process = _STARTED.get(client) in ("local", "jobqueue")
    host = spec.cluster.dashboard_address.rpartition(":")[0]
    if in_process and host not in ("", "0.0.0.0", "[::]") and dask.config.get(
            "distributed.dashboard.link") == "{scheme}://{host}:{port}/status":
        link = f"http://{host}:{port}/status"  # where it listens, not the scheduler's address
    if in_process and importlib.util.find_spec("bokeh") is None:
        # Without bokeh /status only says "Dask needs bokeh"; the worker table still works.
        log.info("Dask dashboard: %s (worker table only; pip install bokeh for the full "
                 "dashboard)", link.replace("/status", "/info/main/workers.html"))
    else:
        log.info("Dask dashboard: %s", link)


@contextlib.contextmanager
def _remove_plugins_on_exit(client: Any, prefix: str) -> Iterator[None]:
    """Unregister the plugins a run added to a scheduler that outlives it.

    Otherwise its workers would keep the run's processes, and workers that join later
    would start them again.
    """
    before = _plugin_names(client)
    try:
        yield
    finally:
        for name in sorted(_plugin_names(client) - before):
            if name.startswith(prefix):
                with contextlib.suppress(Exception):
                    client.unregister_worker_plugin(name)


def _plugin_names(client: Any) -> set[str]:
    def names(dask_scheduler: Any) -> list[str]:  # by value: the scheduler may lack daskprs
        return list(dask_scheduler.worker_plugins)

    try:
        return set(client.run_on_scheduler(names))
    except Exception:  # noqa: BLE001 - the scheduler may be gone already
        return set()


# -- shipping the code folder ----------------------------------------------------------------
def pack_code(code_dir: str, exclude: tuple[str, ...] = ()) -> tuple[str, bytes]:
    """Zip ``code_dir`` reproducibly; returns ``(content hash, zip bytes)``.

    Skips caches, VCS folders, run dirs and the ``exclude`` paths (this run's outputs).
    """
    excluded = {os.path.realpath(p) for p in exclude}
    digest = hashlib.sha256()
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(code_dir):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS
                             and os.path.realpath(os.path.join(root, d)) not in excluded)
            for name in sorted(files):
                path = os.path.join(root, name)
                if name.endswith(".pyc") or not os.path.isfile(path):
                    continue
                rel = os.path.relpath(path, code_dir).replace(os.sep, "/")
                with open(path, "rb") as f:
                    data = f.read()
                total += len(data)
                if total > MAX_SHIP_BYTES:
                    raise SpecError(
                        f"task.code: {code_dir} holds more than {MAX_SHIP_BYTES >> 20} MB, too "
                        "much to ship to the workers with every run. Keep models and data "
                        "out of the code folder (pass them as inputs), or put task.code on a "
                        "filesystem the workers share and set cluster.ship_code: false.")
                digest.update(rel.encode() + b"\0" + data + b"\0")
                info = zipfile.ZipInfo(rel, date_time=_ZIP_TIME)
                info.external_attr = (os.stat(path).st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
    return digest.hexdigest()[:16], buf.getvalue()


def unpack_code(data: bytes, target: str) -> str:
    """Unpack a code zip into ``target`` once per host: atomic rename, safe for races."""
    if os.path.isdir(target):
        return target
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(target)}.{uuid.uuid4().hex[:8]}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if info.filename.startswith("/") or ".." in info.filename.split("/"):
                    raise ValueError(f"unsafe path in the code zip: {info.filename}")
                zf.extract(info, tmp)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(os.path.join(tmp, info.filename), mode)
        os.makedirs(tmp, exist_ok=True)  # an empty code folder
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isdir(target):  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class CodePlugin(WorkerPlugin):
    """Unpacks the run's code folder on every worker, current and future, at ``target``."""

    idempotent = True

    def __init__(self, sha: str, data: bytes, target: str) -> None:
        self.name = f"daskprs-code-{sha}"
        self.data = data
        self.target = target
        self.error: str | None = None

    def setup(self, worker: Any) -> None:
        try:
            unpack_code(self.data, self.target)
        except Exception as e:  # noqa: BLE001 - reported by prepare_workers, not raised here
            self.error = f"{type(e).__name__}: {e}"
        self.data = b""  # unpacked: free the memory


def _code_status(plugin_name: str, dask_worker: Any = None) -> tuple[str, str | None]:
    plugin = dask_worker.plugins.get(plugin_name)
    if plugin is None:
        return str(dask_worker.name), "the code plugin is not set up"
    return str(dask_worker.name), plugin.error


def ship_code(client: Any, code_dir: str, exclude: tuple[str, ...] = ()) -> str:
    """Send ``code_dir`` to every worker; returns where the workers have it."""
    sha, data = pack_code(code_dir, exclude)
    target = os.path.join(tempfile.gettempdir(), "daskprs-code", sha)
    plugin = CodePlugin(sha, data, target)
    client.register_plugin(plugin, name=plugin.name)
    problems = {addr: f"{name}: {error}"
                for addr, (name, error) in client.run(_code_status, plugin.name).items()
                if error}
    if problems:
        raise InputError(
            f"task.code: could not unpack the code folder to {target} on "
            f"{len(problems)} worker(s): " + "; ".join(f"{a} ({p})" for a, p in
                                                       sorted(problems.items())[:5])
            + ". Point TMPDIR (on this machine) to a folder the workers can create, or put "
            "task.code on a shared filesystem and set cluster.ship_code: false.")
    log.info("shipped task.code (%s zipped) to the workers: %s", format_bytes(len(data)),
             target)
    return target


# -- can every worker reach the run's paths? ------------------------------------------------
def _local_path(path: str | None) -> str | None:
    if not path:
        return None
    if path.startswith("file://"):
        return path[len("file://"):]
    return None if "://" in path else path


def check_paths(checks: list[tuple[str, str, str]], dask_worker: Any = None) -> list[str]:
    """Run on a worker: which of ``(what, path, "read"|"write")`` it cannot use."""
    problems = []
    for what, path, mode in checks:
        if mode == "read":
            if not os.path.exists(path):
                problems.append(f"{what} {path} does not exist there")
            elif not os.access(path, os.R_OK):
                problems.append(f"{what} {path} is not readable there")
            continue
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".daskprs-check-"):
                pass
        except OSError as e:
            problems.append(f"{what} {path} is not writable there ({e.strerror or e})")
    return problems


def _path_checks(spec: JobSpec, run_dir: str,
                 output_paths: Mapping[str, str]) -> list[tuple[str, str, str]]:
    checks = []
    for name, port in spec.inputs.items():
        path = None if port.is_literal else _local_path(port.path)
        if path:
            checks.append((f"input '{name}'", path, "read"))
    checks.append(("the run dir", run_dir, "write"))
    for name, path in output_paths.items():
        local = _local_path(path)
        if local:
            folder = local if not os.path.splitext(local)[1] else os.path.dirname(local)
            checks.append((f"output '{name}'", folder, "write"))
    return checks


def check_reachable(client: Any, spec: JobSpec, run_dir: str,
                    output_paths: Mapping[str, str]) -> None:
    """Fail early (InputError) when a worker cannot read an input or write the run dir."""
    checks = _path_checks(spec, run_dir, output_paths)
    results = client.run(check_paths, checks)
    names = {addr: str(w.get("name", addr))
             for addr, w in client.scheduler_info(n_workers=-1)["workers"].items()}
    bad = {addr: problems for addr, problems in results.items() if problems}
    if not bad:
        return
    lines = [f"worker {names.get(addr, addr)} ({addr}): " + "; ".join(problems)
             for addr, problems in sorted(bad.items())]
    raise InputError(
        f"{len(bad)} of {len(results)} Dask workers cannot reach the run's files:\n  "
        + "\n  ".join(lines[:10])
        + "\nThe inputs, the run dir (--run-dir) and the outputs must be on a filesystem that "
        "every worker mounts at the same path (or use URLs such as s3://...).")


def _same_host(client: Any) -> bool:
    here = socket.gethostname()
    return all(h == here for h in client.run(socket.gethostname).values())


def prepare_workers(client: Any, spec: JobSpec, run_dir: str,
                    output_paths: Mapping[str, str]) -> tuple[str, str]:
    """Get workers ready for the run; returns the ``(code_dir, entry_path)`` they use.

    On the embedded LocalCluster there is nothing to do. Elsewhere: check GPU workers, ship
    the code folder (always for ``cluster.address``; for a caller's client whose workers run
    on other hosts; ``cluster.ship_code: true|false`` decides for HPC) and check that every
    current worker reaches the inputs, the run dir and the outputs.
    """
    code, entry = spec.task.code, spec.task.entry_path
    kind = _STARTED.get(client, "caller")
    if kind == "local":
        return code, entry
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if spec.cluster.gpus_per_instance and workers and kind != "jobqueue" and not any(
            w.get("resources", {}).get("GPU") for w in workers.values()):
        raise SpecError(
            f"cluster.gpus_per_instance: tasks need a GPU worker, but none of the "
            f"{len(workers)} workers declares a GPU resource. Start one worker per GPU with "
            "`CUDA_VISIBLE_DEVICES=i dask worker ADDRESS --nthreads 1 --resources GPU=1`, or "
            "remove gpus_per_instance.")
    ship = spec.cluster.options.get("ship_code")
    if ship is None:
        ship = kind == "address" or (kind == "caller" and not _same_host(client))
    if ship:
        outputs = tuple(p for p in (_local_path(p) for p in output_paths.values()) if p)
        code = ship_code(client, spec.task.code, exclude=(run_dir, *outputs))
        entry = os.path.join(code, os.path.relpath(spec.task.entry_path, spec.task.code))
    check_reachable(client, spec, run_dir, output_paths)
    return code, entry
