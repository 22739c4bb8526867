"""memory: peak RSS of the driver and of the largest worker at 1x and 10x input: flat (<= 1.2x).

The process tree of ``daskprs run`` is sampled from outside with psutil every 50 ms. The
driver is the root process alone. A worker is each direct child of the driver with all its
descendants summed: a Dask worker process plus the user-code processes it started (with an
in-process cluster the driver's children are the user-code processes themselves). Done for a
file list (one file per mini-batch) and for a CSV table (fixed ``mini_batch_size``): growing
the input 10x must not grow either peak by more than 1.2x.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as c  # noqa: E402

TARGET = 1.2


def options(p: object) -> None:
    p.add_argument("--files", type=int, default=None,
                   help="files at 1x (default 5000; smoke 200)")
    p.add_argument("--mb", type=float, default=None, help="CSV MB at 1x (default 25; smoke 1)")


def measure(job: str, tmp: str, label: str, runs: int) -> tuple[int, int]:
    """Median over runs of (driver peak, largest worker peak)."""
    drivers, workers = [], []
    for r in range(runs):
        out = os.path.join(tmp, f"{label}-{r}.txt")
        secs, peak = c.run_sampled(c.daskprs_cmd(job, os.path.join(tmp, f"run-{label}-{r}"), out))
        drivers.append(peak.root)
        workers.append(peak.largest_child_tree)
        print(f"  {label} run {r + 1}/{runs}: {secs:.1f} s, driver {c.mb(peak.root)}, "
              f"largest worker {c.mb(peak.largest_child_tree)} ({peak.samples} samples)",
              flush=True)
    return int(c.median(drivers)), int(c.median(workers))


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__, argv, options)
    n_files = args.files or (200 if args.smoke else 5000)
    size = args.mb or (1 if args.smoke else 25)
    mbs = "128KB" if args.smoke else "8MB"
    root = c.cache_dir(args)
    print(f"memory: files {n_files} vs {10 * n_files}, CSV {size:g} MB vs {10 * size:g} MB "
          f"(mini_batch_size {mbs}); {c.machine()}", flush=True)
    verdicts = []
    with c.Scratch("memory", args.keep) as tmp:
        cases = []
        code = c.write_code(root, "tiny")
        for scale in (1, 10):
            data = c.make_files(root, n_files * scale)
            cases.append(("files", scale, c.write_job(
                root, f"tiny-{n_files * scale}", data=data, data_type="uri_folder", code=code,
                mini_batch_size="1")))
        code = c.write_code(root, "tabular")
        for scale in (1, 10):
            data = c.make_csv(root, size * scale)
            cases.append(("table", scale, c.write_job(
                root, f"tabular-{size * scale:g}-{mbs}", data=data, data_type="mltable",
                code=code, mini_batch_size=mbs)))
        peaks = {}
        for kind, scale, job in cases:
            peaks[kind, scale] = measure(job, tmp, f"{kind}-{scale}x", args.runs)
        for kind in ("files", "table"):
            (d1, w1), (d10, w10) = peaks[kind, 1], peaks[kind, 10]
            verdicts.append(c.verdict("memory", f"{kind} driver peak RSS 10x/1x", d10 / d1, "<=",
                                      TARGET, f"{c.mb(d1)} -> {c.mb(d10)}"))
            verdicts.append(c.verdict("memory", f"{kind} largest worker peak RSS 10x/1x",
                                      w10 / max(w1, 1), "<=", TARGET,
                                      f"{c.mb(w1)} -> {c.mb(w10)}"))
    return c.finish(verdicts, args.smoke)


if __name__ == "__main__":
    sys.exit(main())
