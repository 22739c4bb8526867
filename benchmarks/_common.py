"""Shared helpers for the benchmarks: arguments, data generation, timing, RSS sampling, report.

Every benchmark measures daskprs and its baseline in the same run, alternating the order
(A B, B A, ...) so that drift of the machine (page cache, CPU boost) is shared, and reports
medians. A result line always has the form

    RATIO <bench>: <what> = <x>x (target <op> <t>x) OK|MISSED|INFO

which ``run_all.py`` and the smoke test look for.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = sys.executable
CACHE_ENV = "DASKPRS_BENCH_CACHE"
# Commands run from here: ``python -m daskprs`` in a checkout would import that checkout's
# package before PYTHONPATH (DASKPRS_BENCH_SOURCE) could choose one.
NEUTRAL_CWD = tempfile.gettempdir()


# ----------------------------------------------------------------------------- arguments


def parse_args(doc: str | None, argv: Sequence[str] | None = None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None,
               runs: int = 3) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    p.add_argument("--smoke", action="store_true",
                   help="small n, one run: checks that the benchmark works, not its speed")
    p.add_argument("--runs", type=int, default=None,
                   help=f"runs per contestant (default {runs})")
    p.add_argument("--cache-dir", default=None,
                   help=f"where generated inputs are kept (default ${CACHE_ENV} or "
                        "<tmp>/daskprs-bench-cache)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    if extra:
        extra(p)
    args = p.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.smoke else runs
    return args


def cache_dir(args: argparse.Namespace) -> str:
    path = args.cache_dir or os.environ.get(CACHE_ENV) or os.path.join(
        tempfile.gettempdir(), "daskprs-bench-cache")
    os.makedirs(path, exist_ok=True)
    return path


class Scratch:
    """A temporary folder for run dirs and outputs, removed at exit unless ``--keep``."""

    def __init__(self, name: str, keep: bool = False) -> None:
        self.path = tempfile.mkdtemp(prefix=f"daskprs-bench-{name}-")
        self.keep = keep

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: Any) -> None:
        if self.keep:
            print(f"kept {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# ----------------------------------------------------------------------------- inputs


def make_files(root: str, n: int) -> str:
    """``n`` tiny text files in ``root/files-<n>`` (created once, then reused)."""
    folder = os.path.join(root, f"files-{n}")
    marker = os.path.join(root, f".files-{n}.done")
    if os.path.exists(marker) and os.path.isdir(folder):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for i in range(n):
        with open(os.path.join(folder, f"f{i:07d}.txt"), "w") as f:
            f.write(f"item {i}\n")
    open(marker, "w").close()
    return folder


CSV_COLUMNS = "id,a,b,c,label"


def make_csv(root: str, megabytes: float) -> str:
    """A CSV of about ``megabytes`` MB in ``root`` (created once, then reused).

    Numbers have at most 7 significant digits, so every parser reads them exactly and the
    outputs of different readers are byte-identical.
    """
    import numpy as np

    name = f"table-{megabytes:g}mb"
    folder = os.path.join(root, name)
    path = os.path.join(folder, "data.csv")
    marker = os.path.join(root, f".{name}.done")
    if os.path.exists(marker) and os.path.isfile(path):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    target = int(megabytes * 1e6)
    rng = np.random.default_rng(42)
    labels = np.array(["alpha", "beta", "gamma", "delta"])
    written = 0
    row = 0
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(CSV_COLUMNS + "\n")
        while written < target:
            n = max(1000, min(200_000, (target - written) // 30))
            ids = np.arange(row, row + n)
            a = np.round(rng.uniform(-500, 500, n), 3)
            b = np.round(rng.uniform(0, 100, n), 4)
            c = rng.integers(0, 10_000, n)
            lab = labels[rng.integers(0, 4, n)]
            block = "".join(f"{i},{x:.3f},{y:.4f},{z},{w}\n"
                            for i, x, y, z, w in zip(ids, a, b, c, lab, strict=True))
            f.write(block)
            written += len(block)
            row += n
    os.replace(tmp, path)
    open(marker, "w").close()
    return folder


# ----------------------------------------------------------------------------- entry scripts

TINY_SCRIPT = '''\
"""A trivial entry script: per-mini-batch overhead is all that is measured."""
import os

model = None


def init():
    global model
    model = "ready"


def run(mini_batch):
    return [os.path.basename(p) + " " + model for p in mini_batch]
'''

TABULAR_SCRIPT = '''\
"""A vectorised entry script: a linear score per row, as a batch model would give."""
import pandas as pd

weights = None


def init():
    global weights
    weights = (0.25, -1.5, 0.001)


def run(mini_batch):
    df = mini_batch
    score = df["a"] * weights[0] + df["b"] * weights[1] + df["c"] * weights[2]
    return pd.DataFrame({"id": df["id"], "score": score.round(6),
                         "hot": (df["label"] == "gamma").astype(int)})
'''


def write_code(root: str, kind: str) -> str:
    """A code folder holding ``score.py`` of the given kind ("tiny" or "tabular")."""
    folder = os.path.join(root, f"code-{kind}")
    os.makedirs(folder, exist_ok=True)
    text = {"tiny": TINY_SCRIPT, "tabular": TABULAR_SCRIPT}[kind]
    with open(os.path.join(folder, "score.py"), "w") as f:
        f.write(text)
    return folder


def write_job(root: str, name: str, *, data: str, data_type: str, code: str,
              mini_batch_size: str, workers: int = 2) -> str:
    """A v2 parallel job spec; the output path is given per run with ``--set``."""
    path = os.path.join(root, f"{name}.yml")
    with open(path, "w") as f:
        f.write(f"""\
type: parallel
name: {name}
inputs:
  data:
    type: {data_type}
    path: {data}
outputs:
  out:
    type: uri_file
input_data: ${{{{inputs.data}}}}
mini_batch_size: "{mini_batch_size}"
resources:
  instance_count: 1
max_concurrency_per_instance: {workers}
error_threshold: 0
mini_batch_error_threshold: 0
retry_settings:
  max_retries: 0
  timeout: 600
logging_level: WARNING
task:
  type: run_function
  code: {code}
  entry_script: score.py
  append_row_to: ${{{{outputs.out}}}}
""")
    return path


def daskprs_cmd(job: str, run_dir: str, out: str, *sets: str) -> list[str]:
    cmd = [PY, "-m", "daskprs", "run", job, "--run-dir", run_dir, "-q",
           "--set", f"outputs.out.path={out}"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def baseline_cmd(kind: str, *args: str) -> list[str]:
    return [PY, os.path.join(HERE, "_baselines.py"), kind, *args]


# ----------------------------------------------------------------------------- timing


def env() -> dict[str, str]:
    """The environment for child runs: this checkout's daskprs, byte code cached.

    ``DASKPRS_BENCH_SOURCE=/other/checkout`` measures the daskprs found there instead.

    ``PYTHONDONTWRITEBYTECODE`` (set in some sandboxes) would make every process compile
    daskprs from source, a start-up cost no installed package pays; byte code goes to a
    cache folder instead, so the checkout stays clean.
    """
    e = dict(os.environ)
    source = e.get("DASKPRS_BENCH_SOURCE", REPO)  # another checkout, to compare a change
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [source, e.get("PYTHONPATH")]))
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(),
                                                     "daskprs-bench-pycache"))
    e.setdefault("PYTHONHASHSEED", "0")
    return e


def wait_quiet(max_wait: float = 30.0, busy_percent: float = 25.0) -> float:
    """Wait (up to ``max_wait`` s) until other processes leave the CPUs idle; returns the wait.

    A shared machine (CI, other jobs) makes single timings noisy; starting each run on an
    idle machine and taking medians keeps the ratios honest.
    """
    import psutil

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        if psutil.cpu_percent(interval=0.3) < busy_percent:
            break
    return time.perf_counter() - t0


def run_cmd(cmd: list[str], *, cwd: str | None = None, timeout: float = 3600) -> float:
    """Wall seconds from process start to exit; raises with the output if it failed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd or NEUTRAL_CWD, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:  # a timeout or Ctrl-C: take its whole process group down
        _kill_group(proc)
        raise
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                           f"{stdout[-3000:]}\n{stderr[-3000:]}")
    return elapsed


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def alternate(runs: int, contestants: dict[str, Callable[[int], float]], quiet: bool = True
              ) -> dict[str, list[float]]:
    """Run each contestant ``runs`` times, alternating the order each round.

    With ``quiet``, each run starts once the machine is idle (see ``wait_quiet``).
    """
    names = list(contestants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            waited = wait_quiet() if quiet else 0.0
            if waited > 1:
                print(f"  (waited {waited:.0f} s for an idle machine)", flush=True)
            t = contestants[n](r)
            times[n].append(t)
            print(f"  run {r + 1}/{runs} {n}: {t:.2f} s", flush=True)
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def file_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def how_outputs_compare(a: str, b: str, digits: int = 9) -> str:
    """"identical", or, for outputs of the same lines in the same order whose numbers differ
    only past ``digits`` significant digits (a CSV parsed by another float parser), says so;
    else "differs"."""
    if file_hash(a) == file_hash(b):
        return "identical"
    with open(a, encoding="utf-8") as fa, open(b, encoding="utf-8") as fb:
        for la, lb in itertools.zip_longest(fa, fb):
            if la == lb:
                continue
            if la is None or lb is None or not _close(la.split(), lb.split(), digits):
                return "differs"
    return f"differs only past {digits} significant digits (same rows, same order)"


def _close(fields_a: list[str], fields_b: list[str], digits: int) -> bool:
    if len(fields_a) != len(fields_b):
        return False
    for x, y in zip(fields_a, fields_b, strict=True):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if abs(fx - fy) > 10.0 ** -digits * max(abs(fx), abs(fy)):
            return False
    return True


def same_output(a: str, b: str) -> bool:
    ha, hb = file_hash(a), file_hash(b)
    ok = ha == hb
    print(f"  output sha256 {ha[:16]} vs {hb[:16]}: {'identical' if ok else 'DIFFERENT'}",
          flush=True)
    return ok


@dataclass
class Verdict:
    bench: str
    what: str
    ratio: float
    op: str = ""  # "<=" or ">=" or "" (informational)
    target: float = 0.0
    ok: bool = True
    note: str = ""

    def line(self) -> str:
        if not self.op:
            state, tgt = "INFO", "no target"
        else:
            state = "OK" if self.ok else "MISSED"
            tgt = f"target {self.op} {self.target:g}x"
        note = f"  [{self.note}]" if self.note else ""
        return f"RATIO {self.bench}: {self.what} = {self.ratio:.2f}x ({tgt}) {state}{note}"


def verdict(bench: str, what: str, ratio: float, op: str = "", target: float = 0.0,
            note: str = "") -> Verdict:
    ok = True
    if op == "<=":
        ok = ratio <= target
    elif op == ">=":
        ok = ratio >= target
    v = Verdict(bench, what, ratio, op, target, ok, note)
    print(v.line(), flush=True)
    return v


EXIT_MISSED = 3  # a target was missed (full mode); any other non-zero status: it broke


def finish(verdicts: list[Verdict], smoke: bool) -> int:
    """Exit status: a missed target fails a full run (EXIT_MISSED), never a smoke run."""
    missed = [v for v in verdicts if not v.ok]
    if missed and not smoke:
        print(f"{len(missed)} target(s) MISSED", flush=True)
        return EXIT_MISSED
    return 0


def machine() -> str:
    import dask
    import distributed
    import pandas

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{os.cpu_count()} cpus ({cpu}), Python {platform.python_version()}, "
            f"dask {dask.__version__}, distributed {distributed.__version__}, "
            f"pandas {pandas.__version__}")


# ----------------------------------------------------------------------------- memory


@dataclass
class TreePeak:
    """Peak RSS of a process tree: the root alone, and the largest child subtree."""

    root: int = 0
    largest_child_tree: int = 0
    samples: int = 0
    per_child: dict[int, int] = field(default_factory=dict)


def run_sampled(cmd: list[str], interval: float = 0.05, timeout: float = 3600
                ) -> tuple[float, TreePeak]:
    """Run ``cmd`` and sample the RSS of its process tree with psutil until it exits.

    The root is the driver; each direct child with its descendants is one worker (a Dask
    worker process plus the user-code processes it started). Returns (seconds, peaks).
    """
    import psutil

    peak = TreePeak()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=NEUTRAL_CWD, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out: dict[str, str] = {}

    def drain() -> None:
        out["stdout"], out["stderr"] = proc.communicate(timeout=timeout)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        root = psutil.Process(proc.pid)
    except psutil.NoSuchProcess:
        root = None
    while root is not None and proc.poll() is None:
        try:
            peak.root = max(peak.root, root.memory_info().rss)
            children = root.children()
        except psutil.Error:
            break
        for child in children:
            total = 0
            try:
                tree = [child, *child.children(recursive=True)]
            except psutil.Error:
                continue
            for p in tree:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak.per_child[child.pid] = max(peak.per_child.get(child.pid, 0), total)
            peak.largest_child_tree = max(peak.largest_child_tree, total)
        peak.samples += 1
        time.sleep(interval)
    reader.join()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                           f"{out.get('stdout', '')[-3000:]}\n{out.get('stderr', '')[-3000:]}")
    return elapsed, peak


def mb(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"
