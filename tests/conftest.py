import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "scripts")


def make_files(folder, n, width=5):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        with open(os.path.join(folder, f"f{i:0{width}d}.txt"), "w") as f:
            f.write(f"{i}\n")
    return folder


def file_job(data, *, mini_batch_size="1", args="", output=True, **extra):
    """A v2 parallel job mapping over a folder of files, running tests/scripts/behave.py."""
    job = {
        "type": "parallel",
        "name": "test-job",
        "inputs": {"data": {"type": "uri_folder", "path": str(data)}},
        "input_data": "${{inputs.data}}",
        "mini_batch_size": str(mini_batch_size),
        "max_concurrency_per_instance": 2,
        "task": {"code": SCRIPTS, "entry_script": "behave.py", "program_arguments": args},
    }
    if output:
        job["outputs"] = {"out": {"type": "uri_folder"}}
        job["task"]["append_row_to"] = "${{outputs.out}}"
    job.update(extra)
    return job


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()


def cli(*args, cwd=None, timeout=180, env=None):
    import subprocess

    return subprocess.run([sys.executable, "-m", "daskprs", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.fixture
def marks(tmp_path):
    path = tmp_path / "marks"
    path.mkdir()
    return path
