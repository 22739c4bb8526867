"""startup: a 10-file job end to end next to the floor (import distributed, start a LocalCluster).

Also times what the floor is made of and the CLI's own cost: a bare interpreter,
``import distributed``, ``daskprs --help`` (CLI imports), ``import daskprs.execute`` (the
driver's imports), so a regression shows where it came from. No target: the ratio says how
much daskprs adds to the least any Dask job pays.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as c  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__, argv)
    root = c.cache_dir(args)
    data = c.make_files(root, 10)
    code = c.write_code(root, "tiny")
    job = c.write_job(root, "startup-10", data=data, data_type="uri_folder", code=code,
                      mini_batch_size="1")
    print(f"startup: 10 one-file mini-batches; {c.machine()}", flush=True)
    with c.Scratch("startup", args.keep) as tmp:
        out = os.path.join(tmp, "out.txt")
        times = c.alternate(args.runs, {
            "daskprs": lambda r: c.run_cmd(c.daskprs_cmd(job, os.path.join(tmp, f"run-{r}"),
                                                         out)),
            "floor": lambda r: c.run_cmd(c.baseline_cmd("floor")),
        }, quiet=not args.smoke)
        parts = c.alternate(args.runs, {
            "python": lambda r: c.run_cmd([c.PY, "-c", "pass"]),
            "import distributed": lambda r: c.run_cmd([c.PY, "-c", "import distributed"]),
            "daskprs --help": lambda r: c.run_cmd([c.PY, "-m", "daskprs", "--help"]),
            "import daskprs.execute": lambda r: c.run_cmd([c.PY, "-c", "import daskprs.execute"]),
        }, quiet=not args.smoke)
    for name, ts in {**times, **parts}.items():
        print(f"  median {name}: {c.median(ts):.3f} s", flush=True)
    d, f = c.median(times["daskprs"]), c.median(times["floor"])
    v = c.verdict("startup", "daskprs 10-file job / floor", d / f,
                  note=f"{d:.2f} s vs {f:.2f} s (import distributed + LocalCluster(2) + close)")
    return c.finish([v], args.smoke)


if __name__ == "__main__":
    sys.exit(main())
