"""Fault tolerance with real processes and real signals: crashes, hangs, kills, resume."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
from conftest import cli, file_job, make_files, read_lines

import daskprs


def run_job(job, run_dir, **kw):
    return daskprs.run(job, run_dir=run_dir, quiet=True, workers=kw.pop("workers", 2), **kw)


def exactly_once_in_order(result, data):
    assert read_lines(result.append_row_file) == sorted(os.listdir(data))


def test_segfault_in_run_charges_only_that_minibatch(tmp_path):
    data = make_files(tmp_path / "data", 40)
    once = tmp_path / "once"
    once.mkdir()
    job = file_job(data, mini_batch_size="2",
                   args=f"--mode segv --trigger f00005.txt,f00030.txt --once {once}")
    result = run_job(job, tmp_path / "run")
    assert result.ok, result.reason
    exactly_once_in_order(result, data)
    assert result.counts["retries"] == 2
    report = read_lines(tmp_path / "run/logs/sys/job_report/processed_mini-batches.csv")
    crashed = [r for r in report if ",crashed," in r]
    assert len(crashed) == 2 and all("SIGSEGV" in r for r in crashed)
    # items, succeeded, failed: the 2 files of the mini-batch, though run() never reported
    assert all(r.split(",")[4:7] == ["2", "0", "2"] for r in crashed), crashed


def test_hung_run_is_killed_at_the_timeout_and_retried(tmp_path):
    data = make_files(tmp_path / "data", 12)
    once = tmp_path / "once"
    once.mkdir()
    job = file_job(data, mini_batch_size="3",
                   args=f"--mode hang --trigger f00004.txt --once {once}",
                   retry_settings={"max_retries": 2, "timeout": 2})
    start = time.monotonic()
    result = run_job(job, tmp_path / "run")
    assert result.ok, result.reason
    assert time.monotonic() - start < 60
    exactly_once_in_order(result, data)
    report = (tmp_path / "run/logs/sys/job_report/processed_mini-batches.csv").read_text()
    assert ",timeout," in report and "retry_settings.timeout" in report


def test_always_hanging_minibatch_fails_with_reason_timeout_after_its_tries(tmp_path):
    data = make_files(tmp_path / "data", 6)
    job = file_job(data, mini_batch_size="2", args="--mode hang --trigger f00001.txt",
                   retry_settings={"max_retries": 1, "timeout": 1})
    result = run_job(job, tmp_path / "run")
    assert result.counts["failed"] == 1 and result.counts["succeeded"] == 2
    (failure,) = result.failures
    assert failure["error_type"] == "Timeout" and failure["tries"] == 2
    assert failure["items"] == [str(data / "f00000.txt"), str(data / "f00001.txt")]
    dead = [json.loads(x) for x in read_lines(tmp_path / "run/failed_mini-batches.jsonl")]
    assert dead[0]["id"] == failure["id"] and dead[0]["status"] == "timeout"
    lines = read_lines(result.append_row_file)
    assert lines == ["f00002.txt", "f00003.txt", "f00004.txt", "f00005.txt"]


def test_the_running_mini_batch_is_never_read_half_written(tmp_path):
    """The worker reads which mini-batch runs, and since when, from a file its user-code
    process rewrites twice per mini-batch. A read caught mid-write once paired a new index
    with the idle start (0.0), and a healthy run() was killed as 'timed out' 14 s into a
    run with a 600 s timeout. A real writer process in a tight loop, read here for 1.5 s."""
    from daskprs._child import StatusFile

    path = str(tmp_path / "status")
    StatusFile(path, create=True)
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from daskprs._child import StatusFile\n"
        "s, i, end = StatusFile(sys.argv[1]), 0, time.time() + 30\n"
        "while time.time() < end:\n"
        "    s.set(i, time.time()); s.set(-1, 0.0); i += 1\n"), path])
    try:
        status, stale, reads, running = StatusFile(path), 0, 0, 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            index, started = status.get()
            reads += 1
            if index >= 0:
                running += 1
                stale += time.time() - started > 1.0  # it started microseconds ago
    finally:
        writer.kill()
        writer.wait()
    assert running > 1000, (reads, running)  # the writer really was writing
    assert stale == 0, f"{stale} of {reads} reads saw a start time that was not written"


def _user_processes(root):
    return [p for p in root.children(recursive=True)
            if "daskprs._child" in " ".join(p.cmdline())]


def _dask_workers(root):
    workers = [p.parent() for p in _user_processes(root)]
    assert all(w.pid != root.pid for w in workers), "the Dask workers are not processes"
    return workers


@pytest.mark.parametrize("target", ["dask-worker", "user-process"])
def test_kill_9_mid_job_loses_and_duplicates_nothing(tmp_path, marks, target):
    _kill_trial(tmp_path, marks, target, seed=1)


def _kill_trial(tmp_path, marks, target, seed):
    rng = random.Random(seed)
    data = make_files(tmp_path / "data", 240)
    job = file_job(data, mini_batch_size=str(rng.choice([1, 2, 3])),
                   args=f"--sleep 0.03 --marks {marks}")
    if target == "dask-worker":  # local Dask workers are threads of the driver by default
        job["cluster"] = {"processes": True}
    me = psutil.Process()
    killed = []
    # Kill once a random share of the work is done (not after a fixed time: a fast machine
    # would finish first), so the victim is busy mid-job.
    kill_after = rng.randrange(20, 120)

    def killer():
        deadline = time.monotonic() + 120
        items = marks / "items.txt"
        while time.monotonic() < deadline:
            if items.exists() and len(items.read_text().splitlines()) >= kill_after:
                break
            time.sleep(0.02)
        victims = _dask_workers(me) if target == "dask-worker" else _user_processes(me)
        if victims:
            victim = rng.choice(victims)
            killed.append(victim.pid)
            os.kill(victim.pid, signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    result = run_job(job, tmp_path / "run", workers=2)
    t.join()
    assert killed, "the job ended before the kill"
    assert result.ok, result.reason
    exactly_once_in_order(result, data)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(10))
def test_stress_random_kills_crashes_and_hangs(tmp_path_factory, trial):
    rng = random.Random(trial)
    kind = ["dask-worker", "user-process", "segv", "hang"][trial % 4]
    tmp = tmp_path_factory.mktemp(f"trial{trial}")
    marks = tmp / "marks"
    marks.mkdir()
    if kind in ("dask-worker", "user-process"):
        _kill_trial(tmp, marks, kind, seed=trial)
        return
    data = make_files(tmp / "data", 60)
    once = tmp / "once"
    once.mkdir()
    victims = ",".join(f"f{rng.randrange(60):05d}.txt" for _ in range(3))
    job = file_job(data, mini_batch_size=str(rng.choice([1, 2, 5])),
                   args=f"--mode {kind} --trigger {victims} --once {once}",
                   retry_settings={"max_retries": 2, "timeout": 2})
    result = run_job(job, tmp / "run")
    assert result.ok, result.reason
    exactly_once_in_order(result, data)


def test_init_failing_everywhere_fails_fast_with_its_traceback(tmp_path):
    data = make_files(tmp_path / "data", 10)
    job = file_job(data, mini_batch_size="2", args="--init-fail")
    start = time.monotonic()
    result = run_job(job, tmp_path / "run")
    assert time.monotonic() - start < 30
    assert result.status == "failed"
    assert "init() failed on every worker" in result.reason
    text = (tmp_path / "run/logs/job_result.txt").read_text()
    assert "model file is corrupt" in text and "Traceback" in text


def test_stall_fails_the_job_with_progress_update_timeout(tmp_path, caplog):
    data = make_files(tmp_path / "data", 6)
    job = file_job(data, mini_batch_size="1", args="--mode hang --trigger f00002.txt",
                   retry_settings={"max_retries": 0, "timeout": 100})
    job["task"]["program_arguments"] += " --progress_update_timeout 3"
    job["max_concurrency_per_instance"] = 1
    start = time.monotonic()
    with caplog.at_level("WARNING", logger="daskprs"):
        result = run_job(job, tmp_path / "run", workers=1)
    # said up front: the stall limit is shorter than a run()'s own timeout
    assert "progress_update_timeout (3 s) is shorter than retry_settings.timeout (100 s)" \
        in caplog.text
    assert result.status == "failed"
    assert "no progress for 3 s (progress_update_timeout)" in result.reason
    assert time.monotonic() - start < 20
    assert result.counts["succeeded"] == 2  # what finished before the stall is kept


def test_first_task_creation_timeout(tmp_path):
    data = make_files(tmp_path / "data", 4)
    job = file_job(data, args="--init-sleep 60 --first_task_creation_timeout 3")
    start = time.monotonic()
    result = run_job(job, tmp_path / "run", workers=1)
    assert result.status == "failed"
    assert "first_task_creation_timeout (3 s)" in result.reason
    assert time.monotonic() - start < 20


def test_budget_exceeded_keeps_committed_rows_and_names_threshold(tmp_path):
    data = make_files(tmp_path / "data", 30)
    job = file_job(data, mini_batch_size="1", args="--mode raise --trigger f00010.txt,f00011.txt",
                   mini_batch_error_threshold=1, retry_settings={"max_retries": 0})
    result = run_job(job, tmp_path / "run")
    assert result.status == "failed"
    assert "mini_batch_error_threshold exceeded: 2 mini-batches failed, 1 allowed" in result.reason
    lines = read_lines(result.append_row_file)
    assert len(lines) == len(set(lines)) and lines == sorted(lines)
    text = (tmp_path / "run/logs/job_result.txt").read_text()
    assert "cannot score f0001" in text and "daskprs resume" in text


def _start_cli_run(spec_args, run_dir):
    return subprocess.Popen(
        [sys.executable, "-m", "daskprs", "run", *spec_args, "--run-dir", str(run_dir), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for_commits(run_dir, n, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journal = run_dir / "journal.jsonl"
        if journal.exists() and journal.read_text().count('"t":"chunk"') >= n:
            return
        time.sleep(0.1)
    raise AssertionError("no progress in the journal")


def _spec_file(tmp_path, data, args, mini_batch_size="1"):
    spec = tmp_path / "job.yml"
    spec.write_text(
        "type: parallel\nname: killme\ninputs:\n  data: {type: uri_folder, path: ./data}\n"
        "outputs:\n  out: {type: uri_folder}\ninput_data: ${{inputs.data}}\n"
        f"mini_batch_size: '{mini_batch_size}'\nmax_concurrency_per_instance: 2\n"
        f"task:\n  code: {os.path.dirname(__file__)}/scripts\n  entry_script: behave.py\n"
        f"  program_arguments: {args}\n  append_row_to: ${{{{outputs.out}}}}\n")
    return spec


def _committed_items(run_dir, data):
    names = sorted(os.listdir(data))
    done = set()
    for line in read_lines(run_dir / "journal.jsonl"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("t") == "chunk":
            done.update(names[r[0]] for r in rec["rows"] if r[2] == "ok")
    return done


def test_driver_sigkill_then_resume_exactly_once_without_redoing_commits(tmp_path, marks):
    data = make_files(tmp_path / "data", 150)
    spec = _spec_file(tmp_path, data, f"--sleep 0.05 --marks {marks}")
    run_dir = tmp_path / "run"
    proc = _start_cli_run([str(spec)], run_dir)
    _wait_for_commits(run_dir, 20)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a crashed machine
    proc.wait()
    time.sleep(2.5)  # orphaned user processes notice their worker is gone and exit
    committed = _committed_items(run_dir, data)
    assert 0 < len(committed) < 150
    seen_before = len(read_lines(marks / "items.txt"))
    status = cli("status", str(run_dir))
    assert status.returncode == 0 and "interrupted or running" in status.stdout
    resumed = cli("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    out = run_dir / "outputs/out/parallel_run_step.txt"
    assert read_lines(out) == sorted(os.listdir(data))
    processed_again = read_lines(marks / "items.txt")[seen_before:]
    assert not committed & set(processed_again)  # committed items were not processed again
    assert len(processed_again) == 150 - len(committed)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_exits_130_prints_resume_and_resume_finishes(tmp_path, sig):
    data = make_files(tmp_path / "data", 100)
    spec = _spec_file(tmp_path, data, "--sleep 0.05")
    run_dir = tmp_path / "run"
    proc = _start_cli_run([str(spec)], run_dir)
    _wait_for_commits(run_dir, 10)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    else:
        os.kill(proc.pid, signal.SIGTERM)  # kill, or a batch job's time limit: stops the same
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "INTERRUPTED" in out
    said = "Ctrl-C" if sig == signal.SIGINT else "received SIGTERM"
    assert f"reason: interrupted ({said})" in out, out
    assert "Traceback" not in out and "Compute Failed" not in out, out  # a quiet stop
    assert f"daskprs resume {run_dir}" in out
    resumed = cli("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_lines(run_dir / "outputs/out/parallel_run_step.txt") == sorted(os.listdir(data))


def test_resume_after_failure_reruns_only_failed(tmp_path, marks):
    data = make_files(tmp_path / "data", 20)
    once = tmp_path / "once"
    once.mkdir()
    spec = _spec_file(tmp_path, data, f"--mode raise --trigger f00007.txt --once {once} "
                      f"--marks {marks} --run_max_try 1")
    run_dir = tmp_path / "run"
    first = cli("run", str(spec), "--run-dir", str(run_dir), "-q",
                "--set", "mini_batch_error_threshold=0")
    assert first.returncode == 1, first.stdout + first.stderr
    before = len(read_lines(marks / "items.txt"))
    resumed = cli("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    again = read_lines(marks / "items.txt")[before:]
    assert "f00007.txt" in again
    assert len(again) == 20 - len(_committed_before_resume(run_dir, data, before))
    assert read_lines(run_dir / "outputs/out/parallel_run_step.txt") == sorted(os.listdir(data))


def test_resume_after_a_success_with_tolerated_failures_redoes_only_those(tmp_path):
    """Failures within the thresholds end SUCCEEDED; the run must stay resumable (its part
    files kept), and resuming a run with nothing left to do changes nothing."""
    data = make_files(tmp_path / "data", 12)
    once = tmp_path / "once"
    once.mkdir()
    spec = _spec_file(tmp_path, data, f"--mode raise --trigger f00003.txt,f00008.txt "
                      f"--once {once}", mini_batch_size="2")
    run_dir = tmp_path / "run"
    out = run_dir / "outputs/out/parallel_run_step.txt"
    first = cli("run", str(spec), "--run-dir", str(run_dir), "-q", "--set",
                "retry_settings.max_retries=0", "--set", "mini_batch_error_threshold=-1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "SUCCEEDED: 4/6" in first.stdout and f"daskprs resume {run_dir}" in first.stdout
    assert len(read_lines(out)) == 8
    resumed = cli("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "SUCCEEDED: 6/6" in resumed.stdout and "resume:" not in resumed.stdout
    assert read_lines(out) == sorted(os.listdir(data))
    assert not (run_dir / "parts").exists()  # all merged: nothing left to resume
    again = cli("resume", str(run_dir), "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "SUCCEEDED: 6/6" in again.stdout
    assert read_lines(out) == sorted(os.listdir(data))
    assert not [p for p in os.listdir(out.parent) if p != out.name]  # no half-merged file


def test_resume_redoes_mini_batches_whose_part_files_are_gone(tmp_path):
    data = make_files(tmp_path / "data", 10)
    spec = _spec_file(tmp_path, data, "--mode raise --trigger f00009.txt")
    run_dir = tmp_path / "run"
    first = cli("run", str(spec), "--run-dir", str(run_dir), "-q", "--set",
                "retry_settings.max_retries=0", "--set", "mini_batch_error_threshold=0")
    assert first.returncode == 1, first.stdout + first.stderr
    parts = sorted((run_dir / "parts").iterdir())
    assert parts
    parts[0].unlink()  # lost (deleted by hand, or by an older daskprs)
    spec.write_text(spec.read_text().replace("--mode raise", "--mode echo"))
    (run_dir / "job.yaml").write_text(
        (run_dir / "job.yaml").read_text().replace("--mode raise", "--mode echo"))
    resumed = cli("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "lost their output part files" in resumed.stderr
    assert read_lines(run_dir / "outputs/out/parallel_run_step.txt") == sorted(os.listdir(data))


def test_a_run_dir_in_use_is_not_resumed_twice(tmp_path):
    import fcntl

    data = make_files(tmp_path / "data", 4)
    spec = _spec_file(tmp_path, data, "--mode raise --trigger f00001.txt")
    run_dir = tmp_path / "run"
    first = cli("run", str(spec), "--run-dir", str(run_dir), "-q", "--set",
                "retry_settings.max_retries=0", "--set", "mini_batch_error_threshold=0")
    assert first.returncode == 1
    with open(run_dir / ".lock", "a+") as held:  # as a resume still running would hold it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = cli("resume", str(run_dir), "-q")
    assert busy.returncode == 2, busy.stdout + busy.stderr
    assert "is in use by another daskprs run or resume" in busy.stderr
    assert cli("resume", str(run_dir), "-q").returncode == 1  # free again: it runs (and fails)


def _committed_before_resume(run_dir, data, _):
    # Everything but what the resume processed had been committed by the first attempt.
    starts = [i for i, line in enumerate(read_lines(run_dir / "journal.jsonl"))
              if '"t":"start"' in line]
    names = sorted(os.listdir(data))
    done = set()
    for line in read_lines(run_dir / "journal.jsonl")[:starts[1]]:
        rec = json.loads(line)
        if rec.get("t") == "chunk":
            done.update(names[r[0]] for r in rec["rows"] if r[2] == "ok")
    return done


def test_resume_refuses_changed_inputs_unless_forced(tmp_path):
    data = make_files(tmp_path / "data", 6)
    spec = _spec_file(tmp_path, data, "--mode raise --trigger f00002.txt")
    run_dir = tmp_path / "run"
    first = cli("run", str(spec), "--run-dir", str(run_dir), "-q", "--set",
                "mini_batch_error_threshold=0", "--set", "retry_settings.max_retries=0")
    assert first.returncode == 1
    make_files(tmp_path / "data", 7)  # a new file appears
    refused = cli("resume", str(run_dir), "-q")
    assert refused.returncode == 2
    assert "inputs changed" in refused.stderr and "--force" in refused.stderr
    forced = cli("resume", str(run_dir), "-q", "--force")  # f00002 still fails
    assert forced.returncode == 1, forced.stdout + forced.stderr
    # the inputs a forced resume accepted are the new baseline: no --force needed again
    again = cli("resume", str(run_dir), "-q")
    assert again.returncode == 1 and "inputs changed" not in again.stderr, again.stderr
    make_files(tmp_path / "data", 8)  # ... until they change again
    assert cli("resume", str(run_dir), "-q").returncode == 2


def _report_rows(run_dir):
    with open(run_dir / "logs/sys/job_report/processed_mini-batches.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    return [dict(zip(header, r, strict=True)) for r in rows]


def test_counts_after_a_budget_stop_and_after_resume(tmp_path):
    # Every mini-batch fails; 3 tries each; the run stops at the first final failure, while
    # others are between tries. Retries are the tries that ran, not those queued; a tried
    # mini-batch is "unfinished", not "not run".
    data = make_files(tmp_path / "data", 40)
    job = file_job(data, mini_batch_size="1", args="--mode raise",
                   retry_settings={"max_retries": 2}, mini_batch_error_threshold=0)
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.status == "failed"
    c = result.counts
    rows = _report_rows(tmp_path / "run")
    tried = {r["index"] for r in rows}
    assert c["attempts"] == len(rows)
    assert c["retries"] == sum(int(r["attempt"]) > 1 for r in rows)
    assert c["failed"] >= 1 and c["succeeded"] == 0
    assert c["unfinished"] == len(tried) - c["failed"] > 0
    assert c["not_run"] == 40 - len(tried)
    text = (tmp_path / "run/logs/job_result.txt").read_text()
    assert f"{c['unfinished']} unfinished (tried, a retry due), {c['not_run']} not run" in text


def test_item_counts_after_resume_cover_the_reused_mini_batches(tmp_path):
    once = tmp_path / "once"
    once.mkdir()
    data = make_files(tmp_path / "data", 20)
    job = file_job(data, mini_batch_size="2", args=f"--mode raise --trigger f00007.txt "
                   f"--once {once}", retry_settings={"max_retries": 0})
    first = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert first.counts["failed"] == 1 and first.counts["items_succeeded"] == 18
    resumed = daskprs.resume(tmp_path / "run")
    c = resumed.counts
    assert resumed.status == "succeeded" and c["reused"] == 9 and c["attempts"] == 1
    assert c["items_succeeded"] == c["items"] == 20 and c["items_failed"] == 0
    assert c["retries"] == 1  # the resumed mini-batch ran its second try
    text = (tmp_path / "run/logs/job_result.txt").read_text()
    assert "Items: 20 succeeded, 0 failed." in text


def test_a_job_with_no_result_fails_even_within_its_thresholds(tmp_path):
    data = make_files(tmp_path / "data", 6)
    # every mini-batch fails; the default thresholds (-1) allow it, the verdict does not
    job = file_job(data, mini_batch_size="2", args="--mode raise",
                   retry_settings={"max_retries": 0})
    result = daskprs.run(job, run_dir=tmp_path / "all-failed", quiet=True)
    assert result.status == "failed" and result.exit_code == 1
    assert result.reason.startswith("every mini-batch failed (3)")
    # append_row with no item anywhere (one-file mini-batches, run() returns one item less)
    job = file_job(data, args="--mode short")
    result = daskprs.run(job, run_dir=tmp_path / "no-items", quiet=True)
    assert result.status == "failed" and "NoResultToAppendError" in result.reason
    assert result.counts["succeeded"] == 6  # each mini-batch itself succeeded
    # the many-models idiom: summary_only and empty returns is a success
    job = file_job(data, args="--mode short", output=False)
    assert daskprs.run(job, run_dir=tmp_path / "summary", quiet=True).status == "succeeded"


def test_processes_user_code_starts_in_their_own_session_end_with_it(tmp_path):
    # killpg does not reach a process started with start_new_session=True (a daemon, a
    # server): on a hard timeout and at the end of the run they are killed too.
    data = make_files(tmp_path / "data", 4)
    pids = tmp_path / "pids"
    pids.mkdir()
    code = tmp_path / "code"
    code.mkdir()
    (code / "spawn.py").write_text(
        "import os, subprocess, time\n\n"
        "def run(mb):\n"
        "    p = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        f"    open(os.path.join({str(pids)!r}, str(p.pid)), 'w').close()\n"
        "    if any(x.endswith('f00002.txt') for x in mb):\n"
        "        time.sleep(600)  # hangs: killed at the timeout\n"
        "    return mb\n")
    job = file_job(data, retry_settings={"max_retries": 0, "timeout": 3})
    job["task"].update(code=str(code), entry_script="spawn.py")
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.counts["failed"] == 1 and result.failures[0]["error_type"] == "Timeout"
    started = [int(p) for p in os.listdir(pids)]
    assert len(started) == 4
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in started):
        assert time.monotonic() < deadline, [p for p in started if psutil.pid_exists(p)]
        time.sleep(0.1)


def test_driver_killed_while_staging_partition_keys_then_resume(tmp_path):
    import pandas as pd

    rows = 600_000
    table = tmp_path / "flat"
    table.mkdir()
    pd.DataFrame({"store": [f"s{i % 5}" for i in range(rows)], "qty": [i % 10 for i in range(rows)],
                  "note": ["some text to make the table take a while"] * rows}).to_csv(
        table / "sales.csv", index=False)
    spec = tmp_path / "job.yml"
    spec.write_text(json.dumps({
        "type": "parallel", "inputs": {"t": {"type": "mltable", "path": str(table)}},
        "outputs": {"out": {"type": "uri_file"}}, "input_data": "${{inputs.t}}",
        "partition_keys": ["store"],
        "task": {"code": str(tmp_path / "code"), "entry_script": "s.py",
                 "append_row_to": "${{outputs.out}}"}}))
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "s.py").write_text(
        "def run(df, ctx):\n    return [f\"{ctx.partition_key_value['store']} {len(df)}\"]\n")
    run_dir = tmp_path / "run"
    proc = _start_cli_run([str(spec)], run_dir)
    deadline = time.monotonic() + 60
    while not (run_dir / "staging").is_dir():  # staging started; no mini-batch has run yet
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "journal.jsonl").exists()
    resumed = cli("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_lines(run_dir / "outputs/out/out.txt") == [f"s{k} {rows // 5}" for k in range(5)]


def test_status_shows_a_long_multi_line_error_on_one_line(tmp_path):
    data = make_files(tmp_path / "data", 2)
    code = tmp_path / "code"
    code.mkdir()
    (code / "s.py").write_text("def run(mb):\n    raise ValueError('first line\\n' + 'x' * 400)\n")
    job = file_job(data, retry_settings={"max_retries": 0})
    job["task"].update(code=str(code), entry_script="s.py")
    daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    out = cli("status", str(tmp_path / "run")).stdout
    line = next(x for x in out.splitlines() if "ValueError: 2" in x)
    assert "first line xxx" in line and line.endswith("...") and len(line) < 260, out
