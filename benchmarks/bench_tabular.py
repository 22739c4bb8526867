"""tabular: a ~250 MB CSV scored by a vectorised run(): daskprs (2 workers) vs one pandas process.

daskprs splits the CSV into byte-range mini-batches (``mini_batch_size``) that two workers parse
and score; the baseline reads the same CSV with ``pd.read_csv(chunksize=)`` in one process and
writes ``run(chunk).to_csv(sep=" ", header=False, index=False)`` for each chunk. Both outputs
must be byte-identical (compared by hash). Target: daskprs >= 1.6x faster.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as c  # noqa: E402

TARGET = 1.6


def options(p: object) -> None:
    p.add_argument("--mb", type=float, default=None, help="CSV size in MB (default 250; smoke 4)")
    p.add_argument("--mini-batch-size", default=None,
                   help="daskprs mini_batch_size (default 8MB; smoke 256KB)")


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__, argv, options)
    size = args.mb or (4 if args.smoke else 250)
    mbs = args.mini_batch_size or ("256KB" if args.smoke else "8MB")
    root = c.cache_dir(args)
    data = c.make_csv(root, size)
    code = c.write_code(root, "tabular")
    job = c.write_job(root, f"tabular-{size:g}", data=data, data_type="mltable", code=code,
                      mini_batch_size=mbs)
    real = os.path.getsize(os.path.join(data, "data.csv")) / 1e6
    print(f"tabular: {real:.0f} MB CSV, mini_batch_size {mbs}, 2 workers; {c.machine()}",
          flush=True)
    with c.Scratch("tabular", args.keep) as tmp:
        outs = {"daskprs": os.path.join(tmp, "daskprs.txt"),
                "pandas": os.path.join(tmp, "pandas.txt")}
        times = c.alternate(args.runs, {
            "daskprs": lambda r: c.run_cmd(c.daskprs_cmd(job, os.path.join(tmp, f"run-{r}"),
                                                         outs["daskprs"])),
            "pandas": lambda r: c.run_cmd(c.baseline_cmd("pandas", code, data, outs["pandas"])),
        }, quiet=not args.smoke)
        identical = c.same_output(outs["daskprs"], outs["pandas"])
    d, p = c.median(times["daskprs"]), c.median(times["pandas"])
    print(f"  median daskprs: {d:.2f} s, pandas: {p:.2f} s", flush=True)
    v = c.verdict("tabular", "pandas/daskprs speed-up", p / d, ">=", TARGET,
                  f"{d:.2f} s vs {p:.2f} s; output {'identical' if identical else 'DIFFERENT'}")
    if not identical:
        print("tabular: FAILED: the outputs differ", flush=True)
        return 2
    return c.finish([v], args.smoke)


if __name__ == "__main__":
    sys.exit(main())
