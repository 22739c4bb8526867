"""Clusters (issue 5): an existing scheduler with real `dask scheduler` / `dask worker` processes,
code shipping, the up-front reachability check, the dashboard link, and slow init() on a worker
that joins late under a short worker TTL (reference C1).

The probe entry script and helpers here are also used by test_gpu.py and test_slurm.py.
"""

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import dask
import psutil
import pytest
from conftest import cli, make_files, read_lines
from distributed import Client, LocalCluster

import daskprs
from daskprs.clusters import open_client, pack_code, unpack_code
from daskprs.dialects import load_spec

PROBE = '''\
"""Records where each mini-batch ran: process, worker, GPU, SLURM job, code folder."""
import argparse
import os
import time

from probe_helper import describe  # a sibling module: the code folder is importable

args = None


def init():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--init-sleep", type=float, default=0.0)
    p.add_argument("--fail", action="store_true")
    p.add_argument("--marks", default=None)
    args, _ = p.parse_known_args()
    if args.marks:
        with open(os.path.join(args.marks, "init.txt"), "a") as f:
            f.write(f"{os.getpid()} {os.environ.get('DASKPRS_NODE_ID', '-')}\\n")
    time.sleep(args.init_sleep)


def run(mini_batch):
    if args.marks:
        with open(os.path.join(args.marks, "started"), "a") as f:
            f.write("x\\n")
    if args.fail:
        raise RuntimeError("the probe was asked to fail")
    time.sleep(args.sleep)
    return [os.path.basename(p) + " " + describe() for p in mini_batch]
'''

HELPER = '''\
import os


def describe():
    env = os.environ
    return " ".join([
        f"pid={os.getpid()}", f"node={env.get('DASKPRS_NODE_ID', '-')}",
        f"cvd={env.get('CUDA_VISIBLE_DEVICES', '-')}", f"job={env.get('SLURM_JOB_ID', '-')}",
        f"code={os.path.dirname(os.path.abspath(__file__))}",
    ])
'''


def write_probe(folder):
    """A code folder with the probe entry script and a sibling module it imports."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "probe.py"), "w") as f:
        f.write(PROBE)
    with open(os.path.join(folder, "probe_helper.py"), "w") as f:
        f.write(HELPER)
    return str(folder)


def probe_job(data, code, *, args="", name="probe-job", **extra):
    job = {
        "type": "parallel",
        "name": name,
        "inputs": {"data": {"type": "uri_folder", "path": str(data)}},
        "outputs": {"out": {"type": "uri_folder"}},
        "input_data": "${{inputs.data}}",
        "mini_batch_size": "1",
        "max_concurrency_per_instance": 1,
        "task": {"code": str(code), "entry_script": "probe.py", "program_arguments": args,
                 "append_row_to": "${{outputs.out}}"},
    }
    job.update(extra)
    return job


def parse_rows(path):
    """append_row lines -> [(file name, {pid, node, cvd, job, code})] in output order."""
    rows = []
    for line in read_lines(path):
        name, *pairs = line.split(" ")
        rows.append((name, dict(p.split("=", 1) for p in pairs)))
    return rows


def dask_cmd(*args):
    return [sys.executable, "-m", "dask", *args]


@contextlib.contextmanager
def dask_processes(tmp_path, workers=("w0", "w1"), env=None, wrap=None):
    """A real `dask scheduler` and `dask worker` processes on 127.0.0.1.

    Yields ``(address, {name: Popen})``.

    ``wrap``: {worker name: command prefix} to start a worker inside another command.
    """
    env = dict(os.environ, **(env or {}))
    logs = tmp_path / "dask-logs"
    logs.mkdir(exist_ok=True)
    procs = []
    by_name = {}

    def start(name, cmd):
        log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        by_name[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        procs.append((by_name[name], log))

    sched_file = tmp_path / "scheduler.json"
    try:
        start("scheduler", dask_cmd("scheduler", "--host", "127.0.0.1", "--port", "0",
                                    "--no-dashboard", "--scheduler-file", str(sched_file)))
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert time.monotonic() < deadline, (logs / "scheduler.log").read_text()
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for name in workers:
            cmd = dask_cmd("worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                           "--no-dashboard", "--name", name, "--local-directory",
                           str(tmp_path / f"local-{name}"))
            start(name, (wrap or {}).get(name, []) + cmd)
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(len(workers), timeout=60)
        yield address, by_name
    finally:
        for proc, _ in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
        for proc, log in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            log.close()


def user_code_processes(*procs):
    """The daskprs child processes (user code) below these processes."""
    found = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    if "daskprs._child" in " ".join(child.cmdline()):
                        found.append(child.pid)
    return found


def scheduler_plugins(address):
    with Client(address, timeout="30s") as c:
        return c.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.worker_plugins))


def test_existing_scheduler_runs_the_job_with_the_code_folder_shipped(tmp_path):
    data = make_files(tmp_path / "data", 12)
    code = write_probe(tmp_path / "code")
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps(probe_job(data, code, args="--sleep 0.05")))
    driver_tmp = tmp_path / "driver-tmp"
    driver_tmp.mkdir()
    with dask_processes(tmp_path) as (address, procs):
        proc = cli("run", str(spec), "--set", f"cluster.address={address}", "--run-dir",
                   str(tmp_path / "run"), env=dict(os.environ, TMPDIR=str(driver_tmp)))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The run's plugins are gone from the scheduler, which outlives the run, and so are
        # the processes that ran user code on the workers.
        assert not [p for p in scheduler_plugins(address) if p.startswith("daskprs-")]
        deadline = time.monotonic() + 10
        while user_code_processes(procs["w0"], procs["w1"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert user_code_processes(procs["w0"], procs["w1"]) == []
    rows = parse_rows(tmp_path / "run/outputs/out/parallel_run_step.txt")
    assert [name for name, _ in rows] == sorted(os.listdir(data))  # exact, in input order
    assert {info["node"] for _, info in rows} == {"w0", "w1"}  # both workers did work
    shipped = {info["code"] for _, info in rows}
    assert len(shipped) == 1
    shipped_dir = shipped.pop()
    # The workers imported the shipped copy (unpacked under the driver's TMPDIR), not ./code.
    assert shipped_dir.startswith(str(driver_tmp / "daskprs-code")), shipped_dir
    assert sorted(os.listdir(shipped_dir)) == ["probe.py", "probe_helper.py"]


def test_losing_every_worker_of_a_cluster_says_so(tmp_path):
    data = make_files(tmp_path / "data", 40)
    code = write_probe(tmp_path / "code")
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps(probe_job(data, code, args="--sleep 0.5")))
    with dask_processes(tmp_path) as (address, procs):
        run = subprocess.Popen(
            [sys.executable, "-m", "daskprs", "run", str(spec), "--set",
             f"cluster.address={address}", "--set",
             "task.program_arguments=--sleep 0.5 --progress_update_timeout 5",
             "--run-dir", str(tmp_path / "run"), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        journal = tmp_path / "run" / "journal.jsonl"
        deadline = time.monotonic() + 60
        while not (journal.exists() and '"t":"chunk"' in journal.read_text()):
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.1)
        for name in ("w0", "w1"):  # every worker goes, the scheduler stays
            os.killpg(procs[name].pid, 9)
        out, _ = run.communicate(timeout=120)
    assert run.returncode == 1, out
    assert "no progress for 5 s (progress_update_timeout); the cluster has no Dask worker " \
           "left (lost or stopped): start workers again, then resume" in out, out


def test_a_cluster_left_without_workers_fails_the_run_after_a_grace(tmp_path, monkeypatch,
                                                                    caplog):
    # Batch jobs that hit their walltime do not come back: the run says so and stops after
    # NO_WORKER_GRACE, not after the stall limit (here 10 minutes).
    import daskprs.execute

    monkeypatch.setattr(daskprs.execute, "NO_WORKER_GRACE", 3.0)
    data = make_files(tmp_path / "data", 40)
    job = probe_job(data, write_probe(tmp_path / "code"), args="--sleep 0.5",
                    retry_settings={"timeout": 200})
    with dask_processes(tmp_path) as (address, procs):
        job["cluster"] = {"address": address}
        journal = tmp_path / "run" / "journal.jsonl"

        def kill_workers_after_a_commit():
            deadline = time.monotonic() + 60
            while not (journal.exists() and '"t":"chunk"' in journal.read_text()):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.1)
            for name in ("w0", "w1"):
                os.killpg(procs[name].pid, 9)

        killer = threading.Thread(target=kill_workers_after_a_commit)
        killer.start()
        start = time.monotonic()
        with caplog.at_level("WARNING", logger="daskprs"):
            result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
        killer.join()
    assert result.status == "failed"
    assert result.reason.startswith("the cluster has had no Dask worker for 3 s"), result.reason
    assert time.monotonic() - start < 90
    assert "Dask workers left the cluster (0 left)" in caplog.text
    assert result.counts["succeeded"] >= 1  # what finished is kept for the resume


def _unshare_prefix():
    """A command prefix that gives a process its own mount namespace, or None."""
    for prefix in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        try:
            ok = subprocess.run(prefix + ["sh", "-c", "mount -t tmpfs none /mnt"],
                                capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return prefix
    return None


def test_a_worker_that_cannot_reach_the_files_fails_the_run_up_front(tmp_path):
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("needs `unshare -m` (a mount namespace) to hide a folder from one worker")
    shared = tmp_path / "shared"
    data = make_files(shared / "data", 4)
    code = write_probe(tmp_path / "code")
    marks = tmp_path / "marks"
    marks.mkdir()
    # The worker "blind" sees an empty tmpfs where the data and run dir are.
    wrap = {"blind": prefix + ["sh", "-c", f'mount -t tmpfs none "{shared}" && exec "$0" "$@"']}
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps(probe_job(data, code, args=f"--marks {marks}")))
    with dask_processes(tmp_path, workers=("w0", "blind"), wrap=wrap) as (address, _):
        proc = cli("run", str(spec), "--set", f"cluster.address={address}", "--run-dir",
                   str(shared / "run"), env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "1 of 2 Dask workers cannot reach" in err, err
    assert "worker blind" in err and "worker w0" not in err, err
    assert f"input 'data' {data} does not exist there" in err, err
    assert f"the run dir {shared / 'run'}" in err, err
    assert "Traceback" not in err
    assert not os.listdir(marks)  # no user code ran


def test_unreachable_scheduler_is_a_clear_spec_error(tmp_path):
    data = make_files(tmp_path / "data", 2)
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps(probe_job(data, write_probe(tmp_path / "code"))))
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    proc = cli("run", str(spec), "--set", "cluster.address=tcp://127.0.0.1:9",
               "--run-dir", str(tmp_path / "run"), timeout=120, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot connect to a Dask scheduler at tcp://127.0.0.1:9" in proc.stderr


def test_code_zip_is_reproducible_and_skips_caches(tmp_path):
    code = write_probe(tmp_path / "code")
    (tmp_path / "code/__pycache__").mkdir()
    (tmp_path / "code/__pycache__/probe.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "code/run.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "code/run.sh", 0o755)
    sha, data = pack_code(code)
    assert pack_code(code) == (sha, data)
    target = unpack_code(data, str(tmp_path / "out" / sha))
    assert sorted(os.listdir(target)) == ["probe.py", "probe_helper.py", "run.sh"]
    assert os.access(os.path.join(target, "run.sh"), os.X_OK)
    assert unpack_code(data, target) == target  # already there: reused
    (tmp_path / "code/probe_helper.py").write_text("# changed\n")
    assert pack_code(code)[0] != sha


def test_local_dashboard_link_is_printed_and_answers(tmp_path, caplog):
    data = make_files(tmp_path / "data", 1)
    spec = load_spec(probe_job(data, write_probe(tmp_path / "code")))
    with caplog.at_level(logging.INFO, logger="daskprs"), open_client(spec, workers=1):
        lines = [r.getMessage() for r in caplog.records
                 if r.name == "daskprs" and "dashboard" in r.getMessage()]
        assert len(lines) == 1, lines
        link = lines[0].split()[2]
        assert link.startswith("http://127.0.0.1:"), link  # localhost only
        with urllib.request.urlopen(link, timeout=10) as page:
            body = page.read().decode()
        assert page.status == 200
        # Without bokeh, /status only says "Dask needs bokeh": we print a page that works.
        assert "needs bokeh" not in body


def test_stream_close_tracebacks_are_not_logged_for_clusters_daskprs_opens(tmp_path):
    # distributed logs "Batched Comm Closed" with a traceback whenever a stream closes: seen
    # when a SLURM cluster closes under SIGTERM; daskprs reports lost workers itself.
    data = make_files(tmp_path / "data", 1)
    spec = load_spec(probe_job(data, write_probe(tmp_path / "code")))
    seen: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("distributed.batched")
    logger.addHandler(handler)
    try:
        with open_client(spec, workers=1):
            try:
                raise OSError("closed")
            except OSError:
                logger.info("Batched Comm Closed %r", "<TCP (closed) local=tcp://x>",
                            exc_info=True)
            logger.info("another message")
    finally:
        logger.removeHandler(handler)
    assert seen == ["another message"]


@pytest.mark.timeout(120)
def test_slow_init_on_a_late_worker_does_not_loop_on_worker_ttl(tmp_path, marks):
    """A worker joining mid-run runs plugins before its first heartbeat (C1, E2): an init() of
    8 s under a 5 s TTL (1 s asked; the scheduler's floor is 10 heartbeats) must not get it
    restarted."""
    data = make_files(tmp_path / "data", 40)
    code = write_probe(tmp_path / "code")
    with dask.config.set({"distributed.scheduler.worker-ttl": "1s"}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    late = []

    def join_late():  # once the run's first init() started, i.e. the plugin is registered
        deadline = time.monotonic() + 60
        while not (marks / "init.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        late.append(subprocess.Popen(
            dask_cmd("worker", cluster.scheduler_address, "--nthreads", "1", "--name", "late",
                     "--no-dashboard", "--local-directory", str(tmp_path / "late")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    try:
        with Client(cluster) as client:
            thread = threading.Thread(target=join_late)
            thread.start()
            job = probe_job(data, code, args=f"--sleep 0.25 --init-sleep 8 --marks {marks}")
            result = daskprs.run(job, client=client, run_dir=tmp_path / "run", quiet=True)
            thread.join()
            events = [e for _, e in client.get_events("scheduler")
                      if isinstance(e, dict) and e.get("action") == "worker-ttl-timed-out"]
            names = sorted(str(w["name"]) for w in
                           client.scheduler_info(n_workers=-1)["workers"].values())
    finally:
        for proc in late:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        cluster.close()
    assert result.status == "succeeded", result.reason
    rows = parse_rows(result.append_row_file)
    assert [name for name, _ in rows] == sorted(os.listdir(data))
    assert "late" in {info["node"] for _, info in rows}  # the late worker did work
    assert events == []  # no TTL restart
    assert names == ["0", "late"]  # same two workers, no re-registration under a new name
    inits = [line.split()[1] for line in read_lines(marks / "init.txt")]
    assert sorted(inits) == ["0", "late"]  # init() once per worker process


def test_shipping_skips_the_run_dir_inside_the_code_folder(tmp_path):
    code = write_probe(tmp_path / "code")
    os.makedirs(tmp_path / "code/run/parts")
    (tmp_path / "code/run/parts/x.part").write_text("big")
    _, data = pack_code(code, exclude=(str(tmp_path / "code/run"),))
    target = unpack_code(data, str(tmp_path / "unpacked"))
    assert "run" not in os.listdir(target)
    shutil.rmtree(target)


@pytest.mark.parametrize("processes", [False, True])
def test_local_dask_workers_are_threads_unless_processes_is_set(tmp_path, marks, processes):
    # Either way user code runs in its own processes; cluster.processes decides whether the
    # Dask workers that start them are threads of the driver or processes of their own.
    data = make_files(tmp_path / "data", 8)
    job = {
        "type": "parallel", "inputs": {"data": {"type": "uri_folder", "path": str(data)}},
        "input_data": "${{inputs.data}}", "mini_batch_size": "2",
        "max_concurrency_per_instance": 2,
        "task": {"code": os.path.join(os.path.dirname(__file__), "scripts"),
                 "entry_script": "behave.py", "program_arguments": f"--marks {marks}"},
    }
    result = daskprs.run(job, [f"cluster.processes={str(processes).lower()}"],
                         run_dir=tmp_path / "run", quiet=True)
    assert result.ok, result.reason
    # behave.py marks the parent of each user-code process: the Dask worker that started it.
    parents = {int(p) for p in read_lines(marks / "parents.txt")}
    assert len(read_lines(marks / "parents.txt")) == 2
    if processes:
        assert os.getpid() not in parents and len(parents) == 2
    else:
        assert parents == {os.getpid()}
    assert load_spec(job, ["cluster.processes=true"]).cluster.processes is True
    with pytest.raises(daskprs.SpecError, match="cluster.processes"):
        load_spec(job, ["cluster.processes=sometimes"])
