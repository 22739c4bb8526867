"""peers: the tiny file job and the tabular job with plain Dask and with Ray Data.

Plain Dask as a user would write it: ``dask.bag.from_sequence(mini_batches).map_partitions``
(default partitioning) and ``dask.dataframe.read_csv(blocksize=).map_partitions(run)
.to_csv(single_file=True)``, on a LocalCluster of 2 workers. Ray Data: ``map_batches`` with an
actor pool of 2 (``concurrency=2``), order preserved. Ray is optional (the ``bench`` extra);
without it those lines say "skipped". Every contestant runs the same entry script as its own
process; a ratio is peer time / daskprs time (above 1: daskprs is faster). No target.
"""

from __future__ import annotations

import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as c  # noqa: E402


def options(p: object) -> None:
    p.add_argument("--n", type=int, default=None, help="file mini-batches (default 50000; "
                   "smoke 300)")
    p.add_argument("--mb", type=float, default=None, help="CSV size in MB (default 250; smoke 4)")
    p.add_argument("--no-ray", action="store_true", help="leave Ray Data out")
    p.add_argument("--ray", action="store_true",
                   help="run Ray Data in smoke mode too (its start-up alone takes 10-20 s)")


def compare(bench: str, tmp: str, runs: int, quiet: bool, why: str,
            contestants: dict[str, tuple[object, str]]) -> list[c.Verdict]:
    """Time each command (alternating); ratios against daskprs; output hashes compared."""
    avail = {k: v for k, v in contestants.items() if v[0] is not None}
    times = c.alternate(runs, {k: (lambda r, cmd=cmd: c.run_cmd(cmd(r) if callable(cmd) else cmd))
                               for k, (cmd, _) in avail.items()}, quiet=quiet)
    ref_out = contestants["daskprs"][1]
    ref = c.median(times["daskprs"])
    print(f"  median daskprs: {ref:.2f} s", flush=True)
    verdicts = []
    for name, (cmd, out) in contestants.items():
        if name == "daskprs":
            continue
        if cmd is None:
            print(f"RATIO {bench}: {name}/daskprs skipped: ray {why}", flush=True)
            continue
        t = c.median(times[name])
        verdicts.append(c.verdict(bench, f"{name}/daskprs", t / ref,
                                  note=f"{t:.2f} s vs {ref:.2f} s; output "
                                       f"{c.how_outputs_compare(out, ref_out)}"))
    return verdicts


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__, argv, options)
    n = args.n or (300 if args.smoke else 50_000)
    size = args.mb or (4 if args.smoke else 250)
    mbs = "256KB" if args.smoke else "8MB"
    installed = importlib.util.find_spec("ray") is not None
    ray = installed and not args.no_ray and (args.ray or not args.smoke)
    why = ("not installed (pip install 'daskprs[bench]')" if not installed
           else "left out (--no-ray)" if args.no_ray else "left out in smoke mode (--ray)")
    root = c.cache_dir(args)
    print(f"peers: {n} one-file mini-batches and a {size:g} MB CSV (mini_batch_size {mbs}); "
          f"{c.machine()}; ray {'available' if ray else why}", flush=True)
    verdicts = []
    with c.Scratch("peers", args.keep) as tmp:
        code = c.write_code(root, "tiny")
        data = c.make_files(root, n)
        job = c.write_job(root, f"tiny-{n}", data=data, data_type="uri_folder", code=code,
                          mini_batch_size="1")
        out = {k: os.path.join(tmp, f"files-{k}.txt") for k in ("daskprs", "dask", "ray")}
        print(" file job", flush=True)
        verdicts += compare("peers-files", tmp, args.runs, not args.smoke, why, {
            "daskprs": (lambda r: c.daskprs_cmd(job, os.path.join(tmp, f"f-run-{r}"),
                                                out["daskprs"]), out["daskprs"]),
            "dask bag": (c.baseline_cmd("dask-files", code, data, out["dask"]), out["dask"]),
            "ray data": (c.baseline_cmd("ray-files", code, data, out["ray"]) if ray else None,
                         out["ray"]),
        })
        code = c.write_code(root, "tabular")
        data = c.make_csv(root, size)
        job = c.write_job(root, f"tabular-{size:g}-{mbs}", data=data, data_type="mltable",
                          code=code, mini_batch_size=mbs)
        out = {k: os.path.join(tmp, f"table-{k}.txt") for k in ("daskprs", "dask", "ray")}
        print(" tabular job", flush=True)
        verdicts += compare("peers-tabular", tmp, args.runs, not args.smoke, why, {
            "daskprs": (lambda r: c.daskprs_cmd(job, os.path.join(tmp, f"t-run-{r}"),
                                                out["daskprs"]), out["daskprs"]),
            "dask dataframe": (c.baseline_cmd("dask-tabular", code, data, out["dask"],
                                              mbs.replace("KB", "kiB").replace("MB", "MiB")),
                               out["dask"]),
            "ray data": (c.baseline_cmd("ray-tabular", code, data, out["ray"]) if ray else None,
                         out["ray"]),
        })
    return c.finish(verdicts, args.smoke)


if __name__ == "__main__":
    sys.exit(main())
