"""Run every benchmark and print their ratios: ``make bench`` (full) and ``--smoke`` (CI).

Each benchmark runs as its own process (a crash in one does not hide the others) with the
same flags. Full mode exits 1 when a target is MISSED; smoke mode (small n, one run) only
checks that every benchmark still works and exits 1 only when one of them fails to run.

    python benchmarks/run_all.py                 # full: ~15-25 min on 2 cores
    python benchmarks/run_all.py --smoke         # well under a minute
    python benchmarks/run_all.py --only tiny,tabular --runs 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = ("tiny", "tabular", "memory", "startup", "peers")
EXIT_MISSED = 3  # as _common.EXIT_MISSED (not imported: this script stays dependency-free)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="small n, one run each")
    p.add_argument("--runs", type=int, default=None, help="runs per contestant (default 3; tiny 5)")
    p.add_argument("--cache-dir", default=None, help="where generated inputs are kept")
    p.add_argument("--only", default=None,
                   help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    flags = ["--smoke"] if args.smoke else []
    if args.runs:
        flags += ["--runs", str(args.runs)]
    if args.cache_dir:
        flags += ["--cache-dir", args.cache_dir]
    ratios: list[str] = []
    failed: list[str] = []
    missed = False
    t0 = time.perf_counter()
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, f"bench_{name}.py"), *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("RATIO "):
                ratios.append(line.rstrip())
        code = proc.wait()
        if code == EXIT_MISSED:
            missed = True
        elif code != 0:
            failed.append(f"{name} (exit {code})")
    print(f"\n=== summary ({time.perf_counter() - t0:.0f} s, "
          f"{'smoke' if args.smoke else 'full'}) ===")
    for r in ratios:
        print(r)
    if failed:
        print(f"FAILED to run: {', '.join(failed)}")
        return 1
    if missed:
        print("some targets were MISSED")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
