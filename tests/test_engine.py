"""End-to-end runs of the core engine on a real LocalCluster (issue: core engine)."""

import csv
import gc
import os
import re
import shutil
import tempfile
import time
from collections import Counter

import pytest
from conftest import SCRIPTS, cli, file_job, make_files, read_lines

import daskprs


def test_1000_files_by_7_in_order_with_init_once_per_process(tmp_path, marks):
    data = make_files(tmp_path / "data", 1000)
    job = file_job(data, mini_batch_size="7", args=f"--marks {marks}")
    gc_before = gc.get_threshold(), gc.get_freeze_count()
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.status == "succeeded", result.reason
    assert (gc.get_threshold(), gc.get_freeze_count()) == gc_before  # the caller's gc untouched
    assert result.counts["mini_batches"] == 143
    assert result.counts["succeeded"] == 143
    assert result.counts["items_succeeded"] == 1000
    lines = read_lines(result.append_row_file)
    assert lines == sorted(os.listdir(data))  # every file once, in sorted input order
    inits = Counter(read_lines(marks / "init.txt"))
    runs = set(read_lines(marks / "run.txt"))
    assert all(count == 1 for count in inits.values())  # init() once per process
    assert runs <= set(inits)  # every process that ran run() had run init()
    assert len(read_lines(marks / "items.txt")) == 1000  # nothing processed twice
    # The run dir holds the contract's files.
    run_dir = tmp_path / "run"
    for rel in ("job.yaml", "journal.jsonl", "logs/job_result.txt", "logs/job_error.txt",
                "logs/job_progress_overview.txt",
                "logs/sys/job_report/processed_mini-batches.csv"):
        assert (run_dir / rel).is_file(), rel
    report = read_lines(run_dir / "logs/sys/job_report/processed_mini-batches.csv")
    assert report[0].split(",")[:4] == ["mini_batch_id", "index", "attempt", "status"]
    assert len(report) == 1 + 143
    assert "SUCCEEDED" in (run_dir / "logs/job_result.txt").read_text()


def test_report_rows_have_one_shape_whether_chunks_succeed_whole_or_not(tmp_path):
    # A chunk where everything succeeded is reported at array speed, any other one row by
    # row: both must write the same columns, ids and formats.
    data = make_files(tmp_path / "data", 300)
    job = file_job(data, mini_batch_size="1", args="--mode raise --trigger f00150.txt",
                   retry_settings={"max_retries": 0})
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.counts["succeeded"] == 299 and result.counts["failed"] == 1
    path = tmp_path / "run/logs/sys/job_report/processed_mini-batches.csv"
    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f))
    assert len(rows) == 300 and all(len(r) == len(header) for r in rows)
    plan = daskprs.make_plan(job)
    by_index = {int(r[1]): dict(zip(header, r, strict=True)) for r in rows}
    for index, row in by_index.items():
        assert row["mini_batch_id"] == plan[index].id
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["start"]), row
        assert re.fullmatch(r"\d+\.\d{4}", row["duration_s"]), row
        assert row["worker"] and row["process"].startswith("process")
    assert by_index[150]["status"] == "failed" and "cannot score" in by_index[150]["error"]
    assert {r["status"] for i, r in by_index.items() if i != 150} == {"succeeded"}
    assert all(r["error"] == "" and r["failed"] == "0" for i, r in by_index.items() if i != 150)


@pytest.mark.parametrize(("mode", "named"), [("none", "None"), ("dict", "dict")])
def test_wrong_return_type_fails_the_minibatch_naming_the_type(tmp_path, mode, named):
    data = make_files(tmp_path / "data", 4)
    job = file_job(data, mini_batch_size="2", args=f"--mode {mode}",
                   retry_settings={"max_retries": 0})
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.counts["failed"] == 2
    assert result.counts["items_failed"] == 4
    messages = {f["message"] for f in result.failures}
    assert any(f"it returned {named}" in m for m in messages), messages
    assert f"returned {named}" in (tmp_path / "run/logs/job_error.txt").read_text()
    # The default thresholds (-1) allow the failures, but nothing succeeded: the job failed.
    assert result.status == "failed" and result.reason.startswith("every mini-batch failed")


def test_short_return_counts_failed_items_against_error_threshold(tmp_path):
    data = make_files(tmp_path / "data", 12)
    job = file_job(data, mini_batch_size="4", args="--mode short", error_threshold=2)
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.status == "failed"
    assert "error_threshold exceeded" in result.reason
    assert result.counts["items_failed"] >= 3
    assert "error_threshold" in (tmp_path / "run/logs/job_result.txt").read_text()


def test_short_return_within_budget_keeps_rows(tmp_path):
    data = make_files(tmp_path / "data", 12)
    job = file_job(data, mini_batch_size="4", args="--mode short", error_threshold=3)
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.status == "succeeded"
    assert result.counts["items_failed"] == 3
    assert len(read_lines(result.append_row_file)) == 9


def test_summary_only_counts_but_writes_nothing(tmp_path):
    data = make_files(tmp_path / "data", 10)
    job = file_job(data, mini_batch_size="3", output=False)
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.ok
    assert result.append_row_file is None
    assert result.counts["items_succeeded"] == 10
    with pytest.raises(ValueError, match="summary_only"):
        result.to_pandas()


def test_run_result_repr_html_and_to_pandas(tmp_path):
    data = make_files(tmp_path / "data", 5)
    result = daskprs.run(file_job(data, mini_batch_size="2"), run_dir=tmp_path / "run",
                         quiet=True, workers=1)
    assert "succeeded" in repr(result) and "5 items ok" in repr(result)
    assert "succeeded" in result._repr_html_()
    df = result.to_pandas()
    assert list(df["row"]) == sorted(os.listdir(data))
    assert result.raise_for_status() is result


def test_client_is_reused_and_not_closed(tmp_path):
    from distributed import Client, LocalCluster

    data = make_files(tmp_path / "data", 6)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result = daskprs.run(file_job(data, mini_batch_size="2"), client=client,
                             run_dir=tmp_path / "run", quiet=True)
        assert result.ok
        assert client.status == "running"
        assert client.submit(lambda: 41 + 1).result() == 42
        # The run's plugin was unregistered: its processes are gone from the worker.
        plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
        assert not any(p.startswith("daskprs-") for ps in plugins.values() for p in ps)


def test_environment_variables_working_dir_and_argv_on_workers(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "env_script.py").write_text(
        "import os, sys\n"
        "def init():\n    global CWD\n    CWD = os.getcwd()\n"
        "def run(mb):\n"
        "    return [f\"{os.environ['MY_VAR']}|{os.environ['AZUREML_BI_OUTPUT_PATH']}|"
        "{CWD != os.path.dirname(__file__)}|{' '.join(sys.argv[1:])}\" for _ in mb]\n"
    )
    data = make_files(tmp_path / "data", 2)
    job = file_job(data, mini_batch_size="2", environment_variables={"MY_VAR": "hello"},
                   inputs={"data": {"type": "uri_folder", "path": str(data)},
                           "lr": {"type": "number", "default": 0.5}})
    job["task"] = {"code": str(code), "entry_script": "env_script.py",
                   "program_arguments": "--lr ${{inputs.lr}} --out ${{outputs.out}}",
                   "append_row_to": "${{outputs.out}}"}
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=1)
    out_dir = str(tmp_path / "run" / "outputs" / "out")
    expected = f"hello|{out_dir}|True|--lr 0.5 --out {out_dir}"
    assert read_lines(result.append_row_file) == [expected] * 2


LOGGING_SCRIPT = """
import logging

from azureml_user.parallel_run import EntryScript

log = logging.getLogger("myapp")
log.info("at import")


def init():
    log.debug("init debug")
    EntryScript().logger.warning("entry script line")


def run(mb):
    logging.info("root info")
    log.debug("run debug")
    log.warning("run warning")
    return mb
"""


def _user_logs(run_dir, kind):
    folder = run_dir / "logs" / "user" / kind
    return "".join(p.read_text() for p in sorted(folder.rglob("*.txt")))


@pytest.mark.parametrize(("level", "expected"), [
    ("DEBUG", ["INFO|myapp|at import", "DEBUG|myapp|init debug", "INFO|root|root info",
               "DEBUG|myapp|run debug", "WARNING|myapp|run warning"]),
    ("WARNING", ["WARNING|myapp|run warning"]),
])
def test_logging_level_applies_to_stdlib_logging_in_user_code(tmp_path, level, expected):
    # As Azure's PRS: a root-logger handler writes records at or above logging_level to the
    # process's stdout log, with time, level and logger name; EntryScript().logger keeps its
    # own file and is not repeated there.
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "logs.py").write_text(LOGGING_SCRIPT)
    job = file_job(make_files(tmp_path / "data", 2), mini_batch_size="2", output=False,
                   max_concurrency_per_instance=1, logging_level=level)
    job["task"] = {"code": str(tmp_path / "code"), "entry_script": "logs.py"}
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=1)
    assert result.ok, result.reason
    lines = _user_logs(tmp_path / "run", "stdout").splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\|"
    assert [line for line in lines if re.match(stamp, line)] == lines, lines
    assert [line.split("|", 1)[1] for line in lines] == expected
    assert "entry script line" in _user_logs(tmp_path / "run", "entry_script_log")


def test_a_script_that_calls_basic_config_gets_its_own_format_and_level(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "logs.py").write_text(
        "import logging\n"
        "def init():\n"
        "    logging.basicConfig(level=logging.DEBUG, format='mine %(levelname)s %(message)s')\n"
        "def run(mb):\n"
        "    logging.getLogger('myapp').debug('run debug')\n"
        "    return mb\n")
    job = file_job(make_files(tmp_path / "data", 2), mini_batch_size="2", output=False,
                   max_concurrency_per_instance=1)  # logging_level: INFO, the default
    job["task"] = {"code": str(tmp_path / "code"), "entry_script": "logs.py"}
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=1)
    assert result.ok, result.reason
    assert _user_logs(tmp_path / "run", "stdout").splitlines() == ["mine DEBUG run debug"]


def test_plan_of_100k_files_is_fast_and_runs_no_user_code(tmp_path):
    # File creation is slow on some disks; a RAM folder keeps the fixture cheap.
    base = tempfile.mkdtemp(dir="/dev/shm") if os.path.isdir("/dev/shm") else str(tmp_path)
    data = tmp_path / "data"
    data.symlink_to(base, target_is_directory=True)
    for d in range(10):
        sub = os.path.join(base, f"d{d}")
        os.mkdir(sub)
        for i in range(10_000):
            os.close(os.open(os.path.join(sub, f"{i:05d}.bin"), os.O_CREAT | os.O_WRONLY))
    code = tmp_path / "code"
    code.mkdir()
    marker = tmp_path / "imported"
    (code / "boom.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef run(mb):\n    return mb\n")
    spec = tmp_path / "job.yml"
    spec.write_text(
        "type: parallel\ninputs:\n  data: {type: uri_folder, path: ./data}\n"
        "input_data: ${{inputs.data}}\nmini_batch_size: '100'\n"
        "task: {code: ./code, entry_script: boom.py}\n")
    start = time.monotonic()
    proc = cli("plan", str(spec))
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert "mini-batches: 1000" in proc.stdout
    assert "total:        100000 files" in proc.stdout
    assert elapsed < 30, elapsed
    assert not marker.exists()
    shutil.rmtree(base, ignore_errors=True)


def _cli_spec(tmp_path, name, mini_batch_size, task_extra=""):
    """A v2 spec file over ./data writing ./result.txt, for runs through the CLI."""
    spec = tmp_path / "job.yml"
    spec.write_text(
        f"type: parallel\nname: {name}\ninputs:\n  data: {{type: uri_folder, path: ./data}}\n"
        "outputs:\n  out: {type: uri_file, path: ./result.txt}\n"
        f"input_data: ${{{{inputs.data}}}}\nmini_batch_size: '{mini_batch_size}'\n"
        f"task:\n  code: {SCRIPTS}\n  entry_script: behave.py\n"
        "  append_row_to: ${{outputs.out}}\n" + task_extra)
    return spec


def test_cli_run_prints_outputs_and_exit_codes(tmp_path):
    data = make_files(tmp_path / "data", 4)
    spec = _cli_spec(tmp_path, "cli-job", "2", "  environment: {image: x}\n")
    proc = cli("run", str(spec), "--run-dir", str(tmp_path / "run"), "--quiet",
               "--set", "max_concurrency_per_instance=1")
    assert proc.returncode == 0, proc.stderr
    assert "SUCCEEDED" in proc.stdout
    assert read_lines(tmp_path / "result.txt") == sorted(os.listdir(data))
    proc = cli("run", str(spec), "--run-dir", str(tmp_path / "run2"), "--quiet",
               "--set", "task.program_arguments=--mode raise", "--set",
               "mini_batch_error_threshold=0", "--set", "retry_settings.max_retries=0",
               "--set", "max_concurrency_per_instance=1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "mini_batch_error_threshold exceeded" in proc.stdout
    assert "daskprs resume" in proc.stdout
    proc = cli("validate", str(spec))
    assert proc.returncode == 0 and "ok: cli-job" in proc.stdout
    assert "ignoring Azure-only keys" in proc.stderr and "environment" in proc.stderr
    proc = cli("validate", str(spec), "--set", "mini_batch_size=seven")
    assert proc.returncode == 2
    assert "mini_batch_size: 'seven' is not a size" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_leaves_its_heap_to_the_os_but_still_runs_exit_handlers(tmp_path):
    # After the verdict the CLI freezes the heap, so the interpreter's final collections skip
    # it; exit handlers registered before the run (here: the first, so it runs last) still run.
    import subprocess
    import sys

    data = make_files(tmp_path / "data", 3)
    spec = _cli_spec(tmp_path, "exit-job", "1")
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
            "from daskprs.cli import main\n"
            f"main(['run', {str(spec)!r}, '--run-dir', {str(tmp_path / 'run')!r}, '-q'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "frozen at exit: True", proc.stdout
    assert read_lines(tmp_path / "result.txt") == sorted(os.listdir(data))


def test_local_run_adopts_user_processes_started_before_the_cluster(tmp_path, marks):
    # The embedded cluster's Dask workers are threads of the driver; their user-code
    # processes were started before distributed was imported, and each is used, once.
    data = make_files(tmp_path / "data", 40)
    job = file_job(data, mini_batch_size="2", args=f"--marks {marks}")
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=2)
    assert result.ok, result.reason
    logs = [read_lines(tmp_path / f"run/logs/sys/node/{w}/_main.txt") for w in ("0", "1")]
    assert all(len(lines) == 1 and " adopted process000 pid " in lines[0] for lines in logs)
    assert len(read_lines(marks / "init.txt")) == 2  # no process was started twice


def test_prestarted_processes_nobody_adopts_are_killed(tmp_path, marks):
    import psutil

    from daskprs import children
    from daskprs._child import ChildConfig
    from daskprs.plan import Reader

    config = ChildConfig(entry_path=os.path.join(SCRIPTS, "behave.py"), code_dir=SCRIPTS,
                         argv=("--marks", str(marks)), reader=Reader(), append_row=True)
    children.prestart("daskprs-test", config, {}, str(tmp_path), ["0", "1"], 2)
    pids = [c.proc.pid for k, cs in children._PRESTARTED.items() if k[0] == "daskprs-test"
            for c in cs]
    assert len(pids) == 4 and all(psutil.pid_exists(p) for p in pids)
    children.discard("daskprs-test")
    assert not any(k[0] == "daskprs-test" for k in children._PRESTARTED)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in pids)


def test_gc_settings_come_back_after_overlapping_runs():
    # Jobs may run in several threads of one process: the last loop to end restores the gc.
    from daskprs.execute import GC_THRESHOLD, _fewer_collections

    before = gc.get_threshold()
    first, second = _fewer_collections(), _fewer_collections()
    first.__enter__()
    second.__enter__()
    assert gc.get_threshold()[0] == max(before[0], GC_THRESHOLD) and gc.get_freeze_count() > 0
    first.__exit__(None, None, None)  # the first to start ends first
    assert gc.get_threshold()[0] == max(before[0], GC_THRESHOLD)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_file_name_that_is_not_utf8_is_planned_run_reported_and_written_as_is(tmp_path):
    data = make_files(tmp_path / "data", 3)
    odd = os.path.join(os.fsencode(data), b"caf\xe9.txt")  # Latin-1 bytes, not UTF-8
    with open(odd, "wb") as f:
        f.write(b"x\n")
    # mini-batches of one file: run() fails on the odd name; a second run succeeds
    job = file_job(data, args="--mode raise --trigger " + os.fsdecode(b"caf\xe9.txt"),
                   retry_settings={"max_retries": 0})
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.counts["failed"] == 1 and result.counts["succeeded"] == 3
    report = (tmp_path / "run/logs/sys/job_report/processed_mini-batches.csv").read_text()
    assert "caf\\udce9.txt" in report  # the error names the file, escaped
    job["task"]["program_arguments"] = ""
    again = daskprs.run(job, run_dir=tmp_path / "run2", quiet=True)
    assert again.ok, again.reason
    with open(again.append_row_file, "rb") as f:
        lines = f.read().splitlines()
    assert lines[0] == b"caf\xe9.txt"  # the name's own bytes, as the folder holds it


def test_an_entry_script_in_a_subfolder_imports_the_modules_next_to_it(tmp_path):
    data = make_files(tmp_path / "data", 4)
    scoring = tmp_path / "code" / "scoring"
    scoring.mkdir(parents=True)
    (scoring / "helpers.py").write_text("def fmt(p):\n    return 'seen ' + p\n")
    (scoring / "score.py").write_text(
        "import os\nfrom helpers import fmt\n\n"
        "def run(mb):\n    return [fmt(os.path.basename(p)) for p in mb]\n")
    job = file_job(data, mini_batch_size="2")
    job["task"].update(code=str(tmp_path / "code"), entry_script="scoring/score.py")
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.ok, result.reason
    assert read_lines(result.append_row_file) == [f"seen {n}" for n in sorted(os.listdir(data))]
