"""The baselines and peers the benchmarks compare daskprs with, each run as its own process.

    python _baselines.py pool   CODE DATA_DIR OUT        multiprocessing.Pool(2), imap(chunksize=64)
    python _baselines.py pandas CODE CSV OUT             one pandas process, read_csv(chunksize=)
    python _baselines.py dask-files   CODE DATA_DIR OUT  dask.bag.from_sequence + map_partitions
    python _baselines.py dask-tabular CODE CSV OUT BLOCK dask.dataframe.read_csv + map_partitions
    python _baselines.py ray-files    CODE DATA_DIR OUT  Ray Data map_batches, actor pool of 2
    python _baselines.py ray-tabular  CODE CSV OUT       Ray Data read_csv + map_batches
    python _baselines.py floor                           import distributed + start LocalCluster(2)

Every one imports the same entry script (``CODE/score.py``), calls its ``init()`` once per
process and writes the same append_row text as daskprs (a list element per line; DataFrame rows
space-separated, no header, no index), in input order, so outputs can be compared by hash.
"""

from __future__ import annotations

import importlib
import os
import sys

WORKERS = 2
TO_CSV = {"sep": " ", "index": False, "header": False}


def _score(code: str):  # noqa: ANN202 - the user's module
    """The entry script, imported and initialised once in this process."""
    if code not in sys.path:
        sys.path.insert(0, code)
    module = importlib.import_module("score")
    if not getattr(module, "_bench_ready", False):
        module.init()
        module._bench_ready = True
    return module


def _list(data: str) -> list[str]:
    return sorted(os.path.join(data, n) for n in os.listdir(data) if not n.startswith("."))


def _lines(result: list) -> str:
    return "\n".join(map(str, result)) + "\n" if result else ""


# ------------------------------------------------------------------------------ file lists


def _pool_init(code: str) -> None:
    global _module
    _module = _score(code)


def _pool_run(mini_batch: list[str]) -> list:
    return _module.run(mini_batch)


def pool(code: str, data: str, out: str) -> None:
    from multiprocessing import Pool

    batches = [[p] for p in _list(data)]
    with Pool(WORKERS, initializer=_pool_init, initargs=(code,)) as p, \
            open(out, "w", encoding="utf-8") as f:
        for result in p.imap(_pool_run, batches, chunksize=64):
            f.write(_lines(result))


def _bag_part(batches: list, code: str) -> list:
    score = _score(code)
    lines: list = []
    for mb in batches:
        lines.extend(score.run(mb))
    return lines


def dask_files(code: str, data: str, out: str) -> None:
    import dask.bag as db
    from distributed import Client, LocalCluster

    batches = [[p] for p in _list(data)]
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1) as cluster, Client(cluster):
        lines = db.from_sequence(batches).map_partitions(_bag_part, code).compute()
    with open(out, "w", encoding="utf-8") as f:
        f.write(_lines(lines))


class _RayFiles:
    def __init__(self, code: str) -> None:
        self.score = _score(code)

    def __call__(self, batch: dict) -> dict:
        lines: list = []
        for path in batch["path"]:
            lines.extend(self.score.run([str(path)]))
        return {"line": lines}


def _ray_start():  # noqa: ANN202
    import ray

    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    return ray


def ray_files(code: str, data: str, out: str) -> None:
    ray = _ray_start()
    ds = ray.data.from_items([{"path": p} for p in _list(data)])
    ds = ds.map_batches(_RayFiles, fn_constructor_args=(code,), concurrency=WORKERS,
                        batch_size=64)
    try:
        with open(out, "w", encoding="utf-8") as f:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                f.write(_lines(list(batch["line"])))
    finally:
        ray.shutdown()


# ------------------------------------------------------------------------------ tables


def _csv(data: str) -> str:
    return os.path.join(data, "data.csv") if os.path.isdir(data) else data


def pandas(code: str, data: str, out: str, rows: str = "200000") -> None:
    import pandas as pd

    score = _score(code)
    with open(out, "w", encoding="utf-8", newline="") as f:
        for chunk in pd.read_csv(_csv(data), chunksize=int(rows)):
            f.write(score.run(chunk).to_csv(**TO_CSV))


def _ddf_part(df, code: str):  # noqa: ANN001, ANN202
    return _score(code).run(df)


def dask_tabular(code: str, data: str, out: str, blocksize: str = "8MB") -> None:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster

    meta = pd.DataFrame({"id": pd.Series(dtype="int64"), "score": pd.Series(dtype="float64"),
                         "hot": pd.Series(dtype="int64")})
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1) as cluster, Client(cluster):
        ddf = dd.read_csv(_csv(data), blocksize=blocksize)
        ddf.map_partitions(_ddf_part, code, meta=meta).to_csv(out, single_file=True, **TO_CSV)


class _RayTable:
    def __init__(self, code: str) -> None:
        self.score = _score(code)

    def __call__(self, df):  # noqa: ANN001, ANN204
        return self.score.run(df)


def ray_tabular(code: str, data: str, out: str) -> None:
    ray = _ray_start()
    ds = ray.data.read_csv(_csv(data))
    # Actors take half a CPU each, or the 2 actors would hold both CPUs and the read tasks
    # could never be scheduled (a deadlock on a 2-core machine).
    ds = ds.map_batches(_RayTable, fn_constructor_args=(code,), concurrency=WORKERS,
                        num_cpus=0.5, batch_format="pandas")
    try:
        with open(out, "w", encoding="utf-8", newline="") as f:
            for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
                f.write(batch.to_csv(**TO_CSV))
    finally:
        ray.shutdown()


# ------------------------------------------------------------------------------ floor


def floor() -> None:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=WORKERS, threads_per_worker=1) as cluster, Client(cluster):
        pass


COMMANDS = {
    "pool": pool, "pandas": pandas, "dask-files": dask_files, "dask-tabular": dask_tabular,
    "ray-files": ray_files, "ray-tabular": ray_tabular, "floor": floor,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
