"""The benchmarks keep working: ``benchmarks/run_all.py --smoke`` runs every one with small n.

No timing is asserted (a shared CI machine makes timings meaningless); the test checks that
each benchmark runs to the end, that daskprs and its baseline wrote identical outputs where
they must, and that every benchmark printed its ratio line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(240)
def test_run_all_smoke_prints_a_ratio_for_every_benchmark(tmp_path):
    env = dict(os.environ, DASKPRS_BENCH_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "run_all.py"), "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=230,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    summary = out[out.index("=== summary"):]
    ratio = re.compile(r"^RATIO (\S+): .+ = \d+\.\d+x \(.+\) (OK|MISSED|INFO)", re.M)
    found = {m.group(1) for m in ratio.finditer(summary)}
    assert {"tiny", "tabular", "memory", "startup", "peers-files", "peers-tabular"} <= found, out
    assert "identical" in out and "DIFFERENT" not in out and "FAILED" not in out
    memory = [m.group(0) for m in ratio.finditer(summary) if m.group(1) == "memory"]
    assert len(memory) == 4, memory  # driver and worker, for files and for tables


def test_run_all_rejects_an_unknown_benchmark():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "run_all.py"), "--only", "nope"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown benchmark(s) nope" in proc.stderr


def test_outputs_that_differ_only_in_float_digits_are_told_apart_from_real_differences(
        tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import _common
    finally:
        sys.path.pop(0)
    ref = tmp_path / "ref.txt"
    ref.write_text("1 -123.6616 0\n2 77.6663 1\n")

    def compare(text):
        other = tmp_path / "other.txt"
        other.write_text(text)
        return _common.how_outputs_compare(str(other), str(ref))

    assert compare("1 -123.6616 0\n2 77.6663 1\n") == "identical"
    assert compare("1 -123.66159999999999 0\n2 77.66629999999999 1\n").startswith(
        "differs only past 9 significant digits")
    assert compare("2 77.6663 1\n1 -123.6616 0\n") == "differs"  # order matters
    assert compare("1 -123.6617 0\n2 77.6663 1\n") == "differs"  # a real change
    assert compare("1 -123.6616 0\n") == "differs"  # a row missing
