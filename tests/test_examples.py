"""The shipped examples run as the README says (make demo runs the first one)."""

import os
import subprocess
import sys

import pandas as pd
from conftest import read_lines

import daskprs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _make_data(example):
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", example, "make_data.py")],
                   check=True, capture_output=True)


def test_file_scoring_example(tmp_path):
    _make_data("file_scoring")
    result = daskprs.run(os.path.join(ROOT, "examples/file_scoring/job.yml"),
                         run_dir=tmp_path / "run", quiet=True)
    assert result.ok, result.reason
    lines = read_lines(result.append_row_file)
    assert len(lines) == 240
    assert lines[0].startswith("review_00000.txt ")
    assert {line.split()[2] for line in lines} == {"positive", "negative"}


def test_tabular_scoring_example(tmp_path):
    _make_data("tabular_scoring")
    result = daskprs.run(os.path.join(ROOT, "examples/tabular_scoring/job.yml"),
                         run_dir=tmp_path / "run", quiet=True)
    assert result.ok, result.reason
    df = result.to_pandas()
    assert list(df[0]) == list(range(120_000))
    assert df[1].between(0, 2).all()
    assert isinstance(df, pd.DataFrame)
