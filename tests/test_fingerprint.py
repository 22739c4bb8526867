"""Plan fingerprints: hashed in a helper process for large file lists, identical to inline,
and never waited for before a fresh run starts (recorded in the journal when ready)."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import cli, file_job, make_files, read_lines

import daskprs
from daskprs import _filehash
from daskprs.api import load
from daskprs.inputs import build_plan, files
from daskprs.inputs.files import fingerprint_files, fingerprint_files_later
from daskprs.rundir import RunDir, load_state


def _paths(folder):
    return sorted(os.path.join(folder, n) for n in os.listdir(folder))


def _held_helper(tmp_path, until, text=""):
    """A hash helper that starts hashing only once the file ``until`` holds ``text`` (a slow
    network file system, under the test's control); the real script does the hashing."""
    script = tmp_path / "held_filehash.py"
    script.write_text(
        "import os, runpy, sys, time\n"
        "def held():\n"
        f"    if not os.path.exists({str(until)!r}):\n"
        "        return True\n"
        f"    with open({str(until)!r}) as f:\n"
        f"        return {text!r} not in f.read()\n"
        "deadline = time.monotonic() + 120\n"
        "while held() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        f"sys.argv = [{files._filehash.__file__!r}, sys.argv[1]]\n"
        f"runpy.run_path({files._filehash.__file__!r}, run_name='__main__')\n")
    return str(script)


def _journal(run_dir):
    return [json.loads(line) for line in read_lines(run_dir / "journal.jsonl")]


def test_helper_hashes_exactly_what_the_driver_would(tmp_path, monkeypatch):
    data = make_files(tmp_path / "data", 30)
    (data / "with space é.txt").write_text("x")
    paths = _paths(data)
    monkeypatch.setattr(files, "LISTING_SLICE", 7)  # the listing is written in 5 slices
    helper = files._Helper(paths)
    assert helper() == fingerprint_files(paths)
    assert helper.proc.returncode == 0  # really ran in a helper process
    assert not os.path.exists(helper.listing)  # its temporary path list is gone
    monkeypatch.setattr(files, "BACKGROUND_MIN_FILES", 1)
    assert fingerprint_files_later(paths, then=str.upper).result() == helper().upper()


@pytest.mark.parametrize("block", [1, 3, 64, 1 << 20])
def test_the_helper_reads_its_listing_block_by_block(block):
    paths = ["/data/a.txt", "/data/é ü/b c.txt", "/x", "/data/" + "n" * 100 + ".bin"]
    listing = io.BytesIO(os.fsencode("\0".join(paths)))
    assert list(_filehash._read_paths(listing, block)) == paths


@pytest.mark.parametrize("broken", ["no interpreter", "script fails"])
def test_a_failing_helper_falls_back_to_hashing_here(tmp_path, monkeypatch, broken):
    paths = _paths(make_files(tmp_path / "data", 10))
    monkeypatch.setattr(files, "BACKGROUND_MIN_FILES", 1)
    if broken == "no interpreter":
        monkeypatch.setattr(files.sys, "executable", str(tmp_path / "no-python"))
    else:
        monkeypatch.setattr(files._filehash, "__file__", str(tmp_path / "missing.py"))
    assert fingerprint_files_later(paths).result() == fingerprint_files(paths)


def test_plan_fingerprint_from_the_helper_guards_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "BACKGROUND_MIN_FILES", 1)
    data = make_files(tmp_path / "data", 40)
    job = file_job(data, args="--mode raise --trigger f00007.txt",
                   retry_settings={"max_retries": 0}, mini_batch_error_threshold=0)
    inline = daskprs.make_plan(job).fingerprint
    spec = load(job)
    assert build_plan(spec, background=True).fingerprint == inline
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.status == "failed"
    assert load_state(RunDir(str(tmp_path / "run")), 40)[1]["fingerprint"] == inline
    (data / "f00003.txt").write_text("changed, and longer\n")  # a file's content changes
    assert build_plan(spec, background=True).fingerprint != inline
    with pytest.raises(daskprs.ResumeError, match="inputs changed"):
        daskprs.resume(tmp_path / "run", quiet=True)


def test_a_fresh_run_starts_before_its_input_is_hashed(tmp_path, monkeypatch):
    """Hashing a million files on a network file system takes minutes: the run goes on, and
    the hash lands in the journal (for resume) as soon as it is ready."""
    monkeypatch.setattr(files, "BACKGROUND_MIN_FILES", 1)
    data = make_files(tmp_path / "data", 40)
    job = file_job(data)
    inline = daskprs.make_plan(job).fingerprint
    run_dir = tmp_path / "run"
    # The helper waits for the run's first commit: were the run waiting for the hash, neither
    # would move until the helper's two minutes ran out.
    monkeypatch.setattr(files._filehash, "__file__",
                        _held_helper(tmp_path, run_dir / "journal.jsonl", '"t":"chunk"'))
    started = time.monotonic()
    result = daskprs.run(job, run_dir=run_dir, quiet=True, workers=2)
    assert result.ok, result.reason
    assert time.monotonic() - started < 60
    records = _journal(run_dir)
    kinds = [r["t"] for r in records]
    assert kinds[0] == "start" and "fingerprint" not in records[0]
    assert kinds.index("chunk") < kinds.index("fingerprint") < kinds.index("end")
    assert records[kinds.index("fingerprint")]["fingerprint"] == inline
    assert load_state(RunDir(str(run_dir)), 40)[1]["fingerprint"] == inline
    assert read_lines(result.append_row_file) == sorted(os.listdir(data))


def test_killed_before_the_hash_was_recorded_resume_asks_for_force(tmp_path):
    data = make_files(tmp_path / "data", 60)
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps(file_job(data, args="--sleep 0.05")))
    run_dir = tmp_path / "run"
    never = tmp_path / "never"  # the helper never gets to hash
    code = ("import sys; from daskprs.inputs import files; files.BACKGROUND_MIN_FILES = 1; "
            f"files._filehash.__file__ = {_held_helper(tmp_path, never)!r}; "
            "from daskprs.cli import main; main()")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", str(spec), "--run-dir", str(run_dir), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while '"t":"chunk"' not in _text(run_dir / "journal.jsonl"):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(proc.communicate()[0].decode())
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its hash helper, as a crashed machine
    proc.wait()
    assert not any(r["t"] == "fingerprint" or r.get("fingerprint")
                   for r in _journal(run_dir))
    refused = cli("resume", str(run_dir), "-q")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "before it finished hashing" in refused.stderr and "--force" in refused.stderr
    forced = cli("resume", str(run_dir), "-q", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    out = run_dir / "outputs/out/parallel_run_step.txt"
    assert read_lines(out) == sorted(os.listdir(data))


def _text(path):
    return path.read_text() if path.exists() else ""
