"""Inputs: JobSpec -> Plan on the driver (metadata only), payload -> data on workers.

``build_plan`` decides what the data input is (a file list or a table), lists it and splits it
into mini-batches. ``load_payload`` runs in the worker's child process and must stay cheap to
import: pandas and pyarrow are imported only for tabular data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import InputError, SpecError
from ..plan import MiniBatch, Plan, Reader, minibatch_id
from ..spec import DEFAULT_FILE_MINI_BATCH, DEFAULT_TABULAR_MINI_BATCH, JobSpec, parse_size
from .files import fingerprint_files, fingerprint_files_later, is_url, list_files

if TYPE_CHECKING:  # user-code processes import this package: keep it light
    from concurrent.futures import Future

TABULAR_EXTENSIONS = {
    ".csv": "delimited", ".tsv": "delimited", ".txt": "delimited",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "json_lines", ".json": "json_lines", ".ndjson": "json_lines",
}


def build_plan(spec: JobSpec, *, staging_dir: str | None = None, client: Any = None,
               background: bool = False) -> Plan:
    """Split the spec's data input into mini-batches, from metadata only.

    ``staging_dir`` and ``client`` are used only when ``partition_keys`` need a flat table
    shuffled into key groups first (done on the cluster, never in the driver's memory).
    ``background``: a large file list is fingerprinted by a helper process while the run
    goes on (``plan.fingerprint_ready``; ``plan.fingerprint`` waits for it).
    """
    inp = spec.data_input
    what = f"inputs.{inp.name}"
    started = time.time()
    reader, paths, source = _resolve(inp.type, inp.path, what)
    if spec.partition_keys:
        from .partitioned import plan_partitions

        groups = plan_partitions(paths, reader, spec.partition_keys, what=what,
                                 staging_dir=staging_dir, client=client)
        mbs = [MiniBatch(index=i, id=minibatch_id(i, payload, key), payload=payload,
                         items=items, partition_key_value=key)
               for i, (key, payload, items) in enumerate(groups)]
        notes = (f"partition_keys: {', '.join(spec.partition_keys)} "
                 f"({len(mbs)} key combinations; mini_batch_size ignored)",)
        return Plan.from_list(mbs, reader=reader, fingerprint=_fingerprint(paths, reader, spec),
                              total_items=sum(mb.items for mb in mbs),
                              unit="bytes" if reader.tabular else "files", source=source,
                              notes=notes)
    if not reader.tabular:
        return _file_plan(paths, reader, spec, source, what, background)
    from .tabular import plan_tabular

    size_raw = spec.mini_batch_size or DEFAULT_TABULAR_MINI_BATCH
    batch_bytes, _ = parse_size(size_raw)
    parts = plan_tabular(paths, reader, batch_bytes, what=what)
    reader = dataclasses.replace(reader, unchanged_since=max(started, _newest_mtime(paths)))
    mbs = [MiniBatch(index=i, id=minibatch_id(i, payload), payload=payload, items=est)
           for i, (payload, est) in enumerate(parts)]
    return Plan.from_list(mbs, reader=reader, fingerprint=_fingerprint(paths, reader, spec),
                          total_items=sum(mb.items for mb in mbs), unit="bytes", source=source)


def _newest_mtime(paths: list[str]) -> float:
    """The latest modification time of the local files (0 if none): a file server whose clock
    runs ahead of ours must not make files look changed after the plan."""
    newest = 0.0
    for p in paths:
        if not is_url(p):
            with contextlib.suppress(OSError):
                newest = max(newest, os.stat(p).st_mtime)
    return newest


def _file_plan(paths: list[str], reader: Reader, spec: JobSpec, source: str, what: str,
               background: bool) -> Plan:
    size_raw = spec.mini_batch_size or DEFAULT_FILE_MINI_BATCH
    count, has_unit = parse_size(size_raw)
    if has_unit:
        raise SpecError(
            f"mini_batch_size: {size_raw!r} is a size, but {what} is a file list: give a number "
            "of files per mini-batch, e.g. mini_batch_size: \"10\". (Sizes apply to tabular "
            "MLTable inputs.)"
        )
    n = (len(paths) + count - 1) // count

    def work(i: int) -> tuple:
        payload = ("files", tuple(paths[i * count:(i + 1) * count]))
        return minibatch_id(i, payload), payload, None

    def work_many(indices: list[int]) -> list[tuple]:
        if count != 1:
            return [work(i) for i in indices]
        # One file per mini-batch (the hot path): the id is left to the user-code process.
        return [(None, ("files", (p,)), None) for p in map(paths.__getitem__, indices)]

    def make(i: int) -> MiniBatch:
        mb_id, payload, _ = work(i)
        return MiniBatch(index=i, id=mb_id, payload=payload, items=len(payload[1]))

    return Plan(reader=reader, count=n, make=make, work=work, work_many=work_many,
                fingerprint=_fingerprint(paths, reader, spec, background),
                total_items=len(paths), unit="files", source=source)


def _fingerprint(paths: list[str], reader: Reader, spec: JobSpec,
                 background: bool = False) -> str | Future[str]:
    settings = repr((reader.format, sorted(reader.options.items()), reader.transforms,
                     reader.partition_format, spec.mini_batch_size, spec.partition_keys))

    def combine(files_hash: str) -> str:
        return hashlib.sha1(files_hash.encode() + settings.encode()).hexdigest()

    if not background:
        return combine(fingerprint_files(paths))
    return fingerprint_files_later(paths, then=combine)


def _resolve(kind: str, path: str | None, what: str) -> tuple[Reader, list[str], str]:
    """(reader, file list, description) for a data input."""
    if path is None:
        raise InputError(f"{what}: no path given.")
    if kind == "mltable":
        mltable_file = _mltable_file(path)
        if mltable_file:
            from .mltable import read_mltable

            table = read_mltable(mltable_file, what=what)
            return table.reader, table.paths, mltable_file
        files = _dataset_files(path, list_files(path, what=what))
        if not files:
            raise InputError(f"{what}: {path} holds only files whose names start with '_' "
                             "(_SUCCESS, _metadata, ...), which are not table data.")
        fmt = _tabular_format(files, what)
        return Reader(format=fmt, options={}), files, path
    if kind in ("uri_folder", "uri_file", "custom_model", "mlflow_model"):
        if kind == "uri_file" and not is_url(path) and os.path.isdir(path):
            raise InputError(f"{what}: declared uri_file but {path} is a folder; use uri_folder.")
        return Reader(format="files"), list_files(path, what=what), path
    raise SpecError(f"{what}: type {kind!r} cannot be split into mini-batches.")


def _mltable_file(path: str) -> str | None:
    if is_url(path):
        return None
    if os.path.basename(path) == "MLTable" and os.path.isfile(path):
        return path
    candidate = os.path.join(path, "MLTable")
    return candidate if os.path.isfile(candidate) else None


def _dataset_files(root: str, files: list[str]) -> list[str]:
    """The files of a table folder without those under a name starting with ``_``.

    Spark, Hadoop, Dask and pyarrow write ``_SUCCESS``, ``_metadata``, ``_common_metadata``
    and ``_temporary/`` next to the data, and pyarrow, pandas and Dask skip them when they
    read the folder (names starting with ``.`` are already left out of every listing).
    """
    prefix = root.rstrip("/" + os.sep) + "/"

    def hidden(f: str) -> bool:
        rel = f.replace(os.sep, "/")
        rel = rel[len(prefix):] if rel.startswith(prefix) else rel.rsplit("/", 1)[-1]
        return any(part.startswith("_") for part in rel.split("/"))

    return [f for f in files if not hidden(f)]


def _tabular_format(files: list[str], what: str) -> str:
    formats = set()
    for f in files:
        name = f
        for suffix in (".gz", ".bz2", ".xz", ".zst", ".zip"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        ext = os.path.splitext(name)[1].lower()
        if ext not in TABULAR_EXTENSIONS:
            raise InputError(
                f"{what}: {f} is not a CSV, Parquet or JSON-lines file. An mltable input without "
                "an MLTable file must hold tabular files (.csv, .tsv, .parquet, .jsonl); for a "
                "list of files use type: uri_folder."
            )
        formats.add(TABULAR_EXTENSIONS[ext])
    if len(formats) > 1:
        raise InputError(f"{what}: mixes file formats ({', '.join(sorted(formats))}); use one.")
    return formats.pop()


def load_payload(payload: tuple, reader: Reader, key: Any = None) -> Any:
    """What run() gets for a payload: a list of paths, or a pandas DataFrame (child side)."""
    if payload[0] == "files":
        return list(payload[1])
    if payload[0] == "group" and not reader.tabular:
        return [p for part in payload[1] for p in part[1]]
    from .tabular import load_tabular

    return load_tabular(payload, reader, key)
