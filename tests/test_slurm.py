"""SLURM through dask-jobqueue on a real single-node SLURM (issue 5; .ci/setup-slurm.sh brings it
up as root). Every mini-batch must run inside a SLURM job, and no job may be left in the queue
however the run ends. Skipped, with the reason, where SLURM is not up."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import make_files
from test_clusters import parse_rows, probe_job, write_probe

import daskprs


def _slurm_missing():
    """Why the SLURM tests cannot run here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed here (CI installs it: sudo bash .ci/setup-slurm.sh)"
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        return "dask-jobqueue is not installed (pip install daskprs[hpc])"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return f"sinfo failed: {e}"
    states = proc.stdout.split()
    if proc.returncode != 0 or not {"idle", "mixed"} & set(states):
        return (f"no idle SLURM node (sinfo: {proc.stdout.strip() or proc.stderr.strip()}); "
                "run .ci/setup-slurm.sh as root")
    return None


REASON = _slurm_missing()
pytestmark = pytest.mark.slurm
up = pytest.mark.skipif(REASON is not None, reason=str(REASON))


def queued(job_name):
    proc = subprocess.run(["squeue", "-h", "-n", job_name, "-o", "%i %T"], capture_output=True,
                          text=True, timeout=20)
    return proc.stdout.split("\n") if proc.stdout.strip() else []


def assert_queue_empty(job_name, within=20.0):
    """No job of the run is pending, running or completing (scancel'd jobs drain quickly)."""
    deadline = time.monotonic() + within
    while queued(job_name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert queued(job_name) == [], f"SLURM jobs left: {queued(job_name)}"


def slurm_job(tmp_path, *, n=12, args="--sleep 0.2", instances=2, extra=None, **cluster):
    name = f"t{uuid.uuid4().hex[:8]}"
    data = make_files(tmp_path / "data", n)
    job = probe_job(data, write_probe(tmp_path / "code"), args=args, name=name,
                    resources={"instance_count": instances},
                    cluster={"type": "slurm", "memory": "1GiB", "walltime": "00:10:00",
                             "log_directory": str(tmp_path / "slurm-logs"), **cluster},
                    **(extra or {}))
    return job, f"daskprs-{name}", data


@up
def test_every_minibatch_runs_in_a_slurm_job_and_no_job_is_left(tmp_path):
    job, job_name, data = slurm_job(tmp_path)
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.status == "succeeded", result.reason
    rows = parse_rows(result.append_row_file)
    assert [name for name, _ in rows] == sorted(os.listdir(data))  # exact, in input order
    jobs = {info["job"] for _, info in rows}
    assert "-" not in jobs  # every mini-batch saw SLURM_JOB_ID
    assert len(jobs) == 2  # instance_count: 2 -> two SLURM jobs, both did work
    assert_queue_empty(job_name)


@up
def test_no_job_is_left_after_the_error_budget_is_exceeded(tmp_path):
    job, job_name, _ = slurm_job(tmp_path, args="--fail",
                                   extra={"mini_batch_error_threshold": 0})
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.status == "failed"
    assert "mini_batch_error_threshold exceeded" in result.reason
    assert_queue_empty(job_name)


@up
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_no_job_is_left_after_ctrl_c_or_sigterm(tmp_path, sig):
    marks = tmp_path / "marks"
    marks.mkdir()
    job, job_name, _ = slurm_job(tmp_path, n=40, args=f"--sleep 1 --marks {marks}")
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps(job))
    proc = subprocess.Popen([sys.executable, "-m", "daskprs", "run", str(spec), "--run-dir",
                             str(tmp_path / "run"), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (marks / "started").exists():  # user code runs inside the SLURM jobs
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        assert queued(job_name)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert out.startswith("INTERRUPTED"), out
    assert "Traceback" not in err, err
    assert_queue_empty(job_name)


@up
def test_gpu_jobs_get_a_gres_gpu_each_and_pin_it(tmp_path):
    """Two fake GPUs (setup-slurm.sh); one per job: SLURM picks the device, daskprs pins it."""
    job, job_name, data = slurm_job(tmp_path, gpus_per_instance=1)
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.status == "succeeded", result.reason
    rows = parse_rows(result.append_row_file)
    assert [name for name, _ in rows] == sorted(os.listdir(data))
    device_of = {}
    for _, info in rows:
        device_of.setdefault(info["job"], set()).add(info["cvd"])
    assert "-" not in device_of and len(device_of) == 2
    assert sorted(d for seen in device_of.values() for d in seen) == ["0", "1"]
    assert_queue_empty(job_name)


@up
def test_adaptive_jobs_finish_the_run_and_are_cancelled(tmp_path):
    job, job_name, data = slurm_job(tmp_path, adapt={"minimum": 0, "maximum": 2})
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.status == "succeeded", result.reason
    rows = parse_rows(result.append_row_file)
    assert [name for name, _ in rows] == sorted(os.listdir(data))
    assert "-" not in {info["job"] for _, info in rows}
    assert_queue_empty(job_name)


@pytest.mark.skipif(shutil.which("sbatch") is None or not os.path.exists("/etc/slurm/slurm.conf"),
                    reason="SLURM's commands and /etc/slurm/slurm.conf are not installed here")
def test_a_batch_system_that_does_not_answer_fails_the_run_fast_in_one_message(tmp_path):
    # sbatch fails (here: the controller's port is wrong); dask-jobqueue only logs that, as a
    # traceback, and submits again and again, so the run would wait first_task_creation_timeout
    conf = tmp_path / "slurm.conf"
    conf.write_text(Path("/etc/slurm/slurm.conf").read_text() + "\nSlurmctldPort=9\n")
    # (2 GPUs for 1 process per job: said too, before anything is submitted)
    job, _, _ = slurm_job(tmp_path, n=3, instances=1, gpus_per_instance=2,
                          extra={"max_concurrency_per_instance": 1})
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps(job))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "daskprs", "run", str(spec), "--run-dir",
                           str(tmp_path / "run"), "--quiet"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SLURM_CONF": str(conf)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "submitting the slurm jobs failed: 'sbatch " in proc.stderr
    assert "Unable to contact slurm controller" in proc.stderr
    assert "gpus_per_instance is 2 but each job runs 1 worker processes" in proc.stderr
    assert "1 GPU(s) per job go unused" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert time.monotonic() - started < 120  # not first_task_creation_timeout (600 s)
