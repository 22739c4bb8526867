"""Plan fingerprints: hashed in a helper process for large file lists, identical to inline."""

import os

import pytest
from conftest import file_job, make_files

import daskprs
from daskprs.api import load
from daskprs.inputs import build_plan, files
from daskprs.inputs.files import fingerprint_files, fingerprint_files_later
from daskprs.rundir import RunDir


def _paths(folder):
    return sorted(os.path.join(folder, n) for n in os.listdir(folder))


def test_helper_hashes_exactly_what_the_driver_would(tmp_path, monkeypatch):
    data = make_files(tmp_path / "data", 30)
    (data / "with space é.txt").write_text("x")
    paths = _paths(data)
    monkeypatch.setattr(files, "BACKGROUND_MIN_FILES", 1)
    later = fingerprint_files_later(paths)
    assert isinstance(later, files._Helper)  # really ran in a helper process
    assert later() == fingerprint_files(paths)
    assert later.proc.returncode == 0
    assert not os.path.exists(later.listing)  # its temporary path list is gone


@pytest.mark.parametrize("broken", ["no interpreter", "script fails"])
def test_a_failing_helper_falls_back_to_hashing_here(tmp_path, monkeypatch, broken):
    paths = _paths(make_files(tmp_path / "data", 10))
    monkeypatch.setattr(files, "BACKGROUND_MIN_FILES", 1)
    if broken == "no interpreter":
        monkeypatch.setattr(files.sys, "executable", str(tmp_path / "no-python"))
    else:
        monkeypatch.setattr(files._filehash, "__file__", str(tmp_path / "missing.py"))
    assert fingerprint_files_later(paths)() == fingerprint_files(paths)


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
    assert RunDir(str(tmp_path / "run")).read_job()["fingerprint"] == inline
    (data / "f00003.txt").write_text("changed, and longer\n")  # a file's content changes
    assert build_plan(spec, background=True).fingerprint != inline
    with pytest.raises(daskprs.ResumeError, match="inputs changed"):
        daskprs.resume(tmp_path / "run", quiet=True)
