"""GPU placement without a GPU (issue 5): one worker process per declared GPU, each with its own
CUDA_VISIBLE_DEVICES as the entry script sees it, and tasks that only run on GPU workers."""

import logging
import os
import subprocess

import pytest
from conftest import make_files
from distributed import Client, LocalCluster
from test_clusters import dask_cmd, parse_rows, probe_job, write_probe

import daskprs
from daskprs.dialects import load_spec
from daskprs.errors import SpecError
from daskprs.gpu import LocalGPUCluster


@pytest.mark.parametrize(("visible", "devices"), [(None, {"0", "1"}), ("3,5", {"3", "5"})])
def test_one_worker_per_gpu_each_pinned_to_its_own_device(tmp_path, monkeypatch, visible,
                                                          devices):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    data = make_files(tmp_path / "data", 12)
    job = probe_job(data, write_probe(tmp_path / "code"), args="--sleep 0.05",
                    cluster={"gpus_per_instance": 2})
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.status == "succeeded", result.reason
    rows = parse_rows(result.append_row_file)
    assert [name for name, _ in rows] == sorted(os.listdir(data))
    device_of = {}
    for _, info in rows:
        device_of.setdefault(info["node"], set()).add(info["cvd"])
    assert len(device_of) == 2  # two worker processes
    assert all(len(seen) == 1 for seen in device_of.values())  # each always on one device
    assert {d for seen in device_of.values() for d in seen} == devices  # distinct devices


def test_tasks_only_run_on_workers_with_a_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    data = make_files(tmp_path / "data", 16)
    cluster = LocalGPUCluster(["0", "1"], dashboard_address=None, silence_logs=logging.ERROR)
    cpu = None
    try:
        with Client(cluster) as client:
            # A third worker without the GPU resource joins the same scheduler.
            cpu = subprocess.Popen(
                dask_cmd("worker", cluster.scheduler_address, "--nthreads", "1", "--name",
                         "cpu-only", "--no-dashboard", "--local-directory", str(tmp_path / "cpu")),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            client.wait_for_workers(3, timeout=60)
            resources = {str(w["name"]): w.get("resources", {})
                         for w in client.scheduler_info(n_workers=-1)["workers"].values()}
            assert resources["cpu-only"] == {}
            assert sorted(r.get("GPU") for n, r in resources.items() if n != "cpu-only") == [1, 1]
            job = probe_job(data, write_probe(tmp_path / "code"), args="--sleep 0.05",
                            cluster={"gpus_per_instance": 2})
            result = daskprs.run(job, client=client, run_dir=tmp_path / "run", quiet=True)
    finally:
        if cpu is not None:
            os.killpg(cpu.pid, 15)
            cpu.wait(timeout=30)
        cluster.close()
    assert result.status == "succeeded", result.reason
    rows = parse_rows(result.append_row_file)
    assert len(rows) == 16
    assert {info["cvd"] for _, info in rows} == {"0", "1"}  # none ran on the CPU-only worker
    assert "cpu-only" not in {info["node"] for _, info in rows}
    # A caller's client with workers on this host: the code folder is used in place.
    assert {info["code"] for _, info in rows} == {str(tmp_path / "code")}


def test_gpus_without_gpu_workers_is_a_clear_error(tmp_path):
    data = make_files(tmp_path / "data", 2)
    job = probe_job(data, write_probe(tmp_path / "code"), cluster={"gpus_per_instance": 1})
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client, \
            pytest.raises(SpecError, match="none of the 1 workers declares a GPU resource"):
        daskprs.run(job, client=client, run_dir=tmp_path / "run", quiet=True)


def test_more_gpus_than_visible_devices_is_a_spec_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    data = make_files(tmp_path / "data", 2)
    job = probe_job(data, write_probe(tmp_path / "code"), cluster={"gpus_per_instance": 2})
    with pytest.raises(SpecError, match="CUDA_VISIBLE_DEVICES='0' makes only 1 visible"):
        daskprs.run(job, run_dir=tmp_path / "run", quiet=True)


def test_slurm_gpu_jobs_request_gres_and_pin_each_worker(tmp_path):
    jobqueue = pytest.importorskip("dask_jobqueue", reason="the hpc extra is not installed")
    from daskprs.hpc import jobqueue_kwargs

    data = make_files(tmp_path / "data", 2)
    job = probe_job(data, write_probe(tmp_path / "code"),
                    cluster={"type": "slurm", "gpus_per_instance": 2, "queue": "gpu",
                             "walltime": "01:00:00"})
    del job["max_concurrency_per_instance"]  # default: one worker process per GPU
    kwargs, adapt = jobqueue_kwargs(load_spec(job))
    assert adapt is None
    assert (kwargs["processes"], kwargs["cores"], kwargs["memory"]) == (2, 2, "8.00 GiB")
    with jobqueue.SLURMCluster(**kwargs) as cluster:
        script = cluster.job_script()
    assert "#SBATCH --gres=gpu:2" in script
    assert "#SBATCH -p gpu" in script
    assert "--resources GPU=1" in script
    assert "--preload-nanny daskprs.gpu" in script
    assert "--nworkers 2" in script and "--nthreads 1" in script


def test_nanny_preload_gives_each_worker_of_a_job_its_own_device(tmp_path):
    """What a SLURM GPU job runs: one `dask worker --nworkers 2 --preload-nanny daskprs.gpu`
    with the job's CUDA_VISIBLE_DEVICES."""
    with LocalCluster(n_workers=0, dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="4,6")
        proc = subprocess.Popen(
            dask_cmd("worker", cluster.scheduler_address, "--nworkers", "2", "--nthreads", "1",
                     "--name", "job7", "--resources", "GPU=1", "--preload-nanny", "daskprs.gpu",
                     "--no-dashboard", "--local-directory", str(tmp_path / "w")),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        try:
            client.wait_for_workers(2, timeout=60)
            seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
            client.restart()  # a restarted worker process keeps its device
            client.wait_for_workers(2, timeout=60)
            after = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
    assert sorted(seen.values()) == ["4", "6"]
    assert sorted(after.values()) == ["4", "6"]
