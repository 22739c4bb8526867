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
