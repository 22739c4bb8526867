"""Tabular jobs end to end: size-based mini-batches and partition keys, on a real cluster."""

import csv
import importlib
import os
import threading
import time

import pandas as pd
import psutil
import pytest
from conftest import SCRIPTS, read_lines

import daskprs


def write_csv(path, start, n):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "x", "label"])
        for i in range(start, start + n):
            w.writerow([i, i % 97, f"row number {i} with some padding text"])


@pytest.fixture(scope="module")
def two_csvs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tab")
    data = folder / "data"
    data.mkdir()
    write_csv(data / "a.csv", 0, 200_000)
    write_csv(data / "b.csv", 200_000, 180_000)
    (data / "MLTable").write_text(
        "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited:\n"
        "      delimiter: ','\n      header: all_files_same_headers\n")
    return data


def tab_job(data, **extra):
    job = {
        "type": "parallel",
        "inputs": {"table": {"type": "mltable", "path": str(data), "mode": "direct"}},
        "outputs": {"scores": {"type": "uri_file"}},
        "input_data": "${{inputs.table}}",
        "mini_batch_size": "1MB",
        "max_concurrency_per_instance": 2,
        "task": {"code": SCRIPTS, "entry_script": "tabular.py",
                 "append_row_to": "${{outputs.scores}}"},
    }
    job.update(extra)
    return job


def test_20mb_of_csv_by_1mb_reads_each_byte_once(two_csvs, tmp_path):
    total = sum(os.path.getsize(two_csvs / f) for f in ("a.csv", "b.csv"))
    assert 15e6 < total < 25e6
    plan = daskprs.make_plan(tab_job(two_csvs))
    paths = [mb.payload[1] for mb in plan]
    assert 15 <= len(plan) <= 25  # about 20 mini-batches
    assert all(mb.payload[0] == "range" for mb in plan)  # each within one file
    assert paths == sorted(paths)

    result = daskprs.run(tab_job(two_csvs), run_dir=tmp_path / "run", quiet=True)
    assert result.ok, result.reason
    assert result.counts["mini_batches"] == len(plan)
    assert result.counts["items_succeeded"] == 380_000
    report = pd.read_csv(tmp_path / "run/logs/sys/job_report/processed_mini-batches.csv")
    assert len(report) == len(plan)  # exactly the planned number of run() calls
    assert report["bytes_read"].sum() == total  # every byte read once, by one mini-batch
    out = pd.read_csv(result.append_row_file, sep=" ", header=None, names=["id", "double"])
    assert list(out["id"]) == list(range(380_000))  # input order, exactly once
    assert (out["double"] == (out["id"] % 97) * 2).all()
    assert result.to_pandas().shape == (380_000, 2)


def test_a_crashed_table_mini_batch_counts_rows_not_bytes(two_csvs, tmp_path):
    """error_threshold counts items: for a table, rows. A mini-batch whose process died
    reported none, so its rows are estimated (about 19,000 here), never its ~1 MB of bytes."""
    job = tab_job(two_csvs, error_threshold=50_000, retry_settings={"max_retries": 0})
    job["task"]["program_arguments"] = "--crash-on-id 100000"  # mid-table: rows were seen
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.ok, result.reason
    assert result.counts["failed"] == 1
    rows = result.counts["items_failed"]
    assert 10_000 < rows < 30_000, rows
    assert result.counts["items_succeeded"] + rows == pytest.approx(380_000, rel=0.05)
    (failure,) = result.failures
    assert failure["error_type"] == "WorkerProcessDied"


def _peak_rss_while(proc, stop):
    peak = 0
    while not stop.is_set():
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    return peak


def test_partition_keys_on_flat_csv_one_run_per_key(tmp_path, marks):
    rows = 400_000
    df = pd.DataFrame({
        "store": [f"s{i % 7}" for i in range(rows)],
        "brand": [["tropicana", "minute.maid", "dominicks/x"][i % 3] for i in range(rows)],
        "qty": [i % 10 for i in range(rows)],
        "note": ["a fairly long text column to make the table bigger"] * rows,
    })
    data = tmp_path / "flat"
    data.mkdir()
    df.to_csv(data / "sales.csv", index=False)
    job = tab_job(data / "sales.csv", partition_keys=["store", "brand"])
    job["task"]["program_arguments"] = f"--marks {marks}"

    # What a run imports is not the table: import it first, so the test means the same run
    # alone as after other tests (alone, the imports were 40 MB of the growth).
    importlib.import_module("dask.dataframe")
    importlib.import_module("distributed")
    importlib.import_module("pyarrow.parquet")
    peak = {}
    stop = threading.Event()
    me = psutil.Process()
    sampler = threading.Thread(target=lambda: peak.setdefault("rss", _peak_rss_while(me, stop)))
    before = me.memory_info().rss
    sampler.start()
    try:
        result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    finally:
        stop.set()
        sampler.join()
    assert result.ok, result.reason
    assert result.counts["mini_batches"] == 21  # 7 stores x 3 brands
    expected = df.groupby(["store", "brand"], sort=False)["qty"].agg(["size", "sum"])
    got = read_lines(result.append_row_file)
    assert got == [f"{s}-{b}:{n}:{q}:O" for (s, b), (n, q) in expected.iterrows()]
    calls = [line for f in os.listdir(marks) for line in read_lines(marks / f)]
    assert len(calls) == 21
    # The table (~30 MB as CSV, more as a DataFrame) was staged on the workers, not loaded
    # into the driver: the driver grew by far less than the table's size.
    table_bytes = os.path.getsize(data / "sales.csv")
    assert peak["rss"] - before < table_bytes, (peak["rss"] - before, table_bytes)


def key_table(tmp_path):
    """Stores 999, 5, 1001 in order of first appearance; int64 in the file."""
    data = tmp_path / "flat"
    data.mkdir()
    pd.DataFrame({"store": [999, 5, 999, 1001, 5], "brand": "a", "qty": [1, 2, 3, 4, 5]}).to_csv(
        data / "sales.csv", index=False)
    return data / "sales.csv"


IN_INPUT_ORDER = ["999-a:2:4:i", "5-a:2:7:i", "1001-a:1:4:i"]


def test_resume_of_a_run_planned_in_text_order(tmp_path, monkeypatch):
    """daskprs once ordered key groups as text (1001, 5, 999). Resuming such a run with the
    input order reuses only the mini-batch whose id (index and content) is unchanged."""
    from daskprs.inputs import partitioned

    flag = tmp_path / "fail"
    flag.write_text("")
    job = tab_job(key_table(tmp_path), partition_keys=["store", "brand"])
    job["task"]["program_arguments"] = f"--fail-store 999 --fail-while {flag}"
    monkeypatch.setattr(partitioned, "group_order", sorted)  # the old order
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.counts["failed"] == 1
    assert read_lines(result.append_row_file) == ["1001-a:1:4:i", "5-a:2:7:i"]
    monkeypatch.undo()
    flag.unlink()

    result = daskprs.resume(tmp_path / "run", quiet=True)
    assert result.ok and result.counts["reused"] == 1  # 5 is at index 1 in both orders
    assert read_lines(result.append_row_file) == IN_INPUT_ORDER


def test_staged_key_groups_go_once_every_mini_batch_succeeded(tmp_path):
    """RUN_DIR/staging holds a copy of the table: kept while a key group failed (the dead
    letters name its files; resume stages anew), removed once all succeeded."""
    from daskprs.errors import ResumeError

    table = key_table(tmp_path)
    flag = tmp_path / "fail"
    flag.write_text("")
    job = tab_job(table, partition_keys=["store", "brand"])
    job["task"]["program_arguments"] = f"--fail-store 999 --fail-while {flag}"
    staging = tmp_path / "run" / "staging"
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.counts["failed"] == 1 and staging.is_dir()
    dead = pd.read_json(tmp_path / "run" / "failed_mini-batches.jsonl", lines=True)
    assert all(os.path.isfile(p) for p in dead["items"][0])

    flag.unlink()
    for _ in range(2):  # a resume after the failure, then one after the success
        result = daskprs.resume(tmp_path / "run", quiet=True)
        assert result.ok and read_lines(result.append_row_file) == IN_INPUT_ORDER
        assert not staging.exists()

    table.write_text(table.read_text() + "5,a,1\n")  # a refused resume leaves no copy
    with pytest.raises(ResumeError, match="inputs changed"):
        daskprs.resume(tmp_path / "run", quiet=True)
    assert not staging.exists()
