"""partition_keys: exactly one mini-batch per distinct key combination.

Keys come from one of two places:

* **Folders.** A partition format (MLTable ``extract_columns_from_partition_format``, e.g.
  ``{Store}/{Brand}/{file_name}.csv``) or hive-style ``Store=1000/`` folders name the keys.
  Planning is a listing: a group is the files of one key combination, loaded and concatenated
  by ``tabular.load_tabular`` (or, for a file list, handed to run() as paths).
* **A flat table** whose columns are the keys. It is read once, on the Dask cluster and never
  in the driver, and staged as one Parquet fragment per (source chunk, key combination) with
  its original row number; a group is its fragments, which the loader puts back in source
  order. The columns keep the dtypes they have without partition_keys (an int64 ``Store``
  stays int64), while key values are text, exact for CSV (``007``), so any character
  round-trips: the folder names of the staging area are hashes. A missing (null) key value is
  None, a group apart from the empty string.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ..errors import InputError, SpecError
from ..plan import Reader
from .tabular import (
    ROW_COLUMN,
    data_files,
    file_parts,
    key_text,
    load_part,
    parse_partition_path,
    partition_fields,
    plan_tabular,
    table_columns,
)

STAGE_CHUNK_BYTES = 64 * 1024 * 1024  # source bytes per staging task
_FILE, _BYTES, _CHUNK, _ROWS = "__daskprs_file", "__daskprs_bytes", "__daskprs_chunk", "__rows"
_FIRST = "__daskprs_first"  # a group's first row in its chunk: (chunk << 40) + row, as ROW_COLUMN
# The payload of a key group planned without staging (daskprs plan): never loaded.
UNSTAGED = ("group", (("staged", None),))


def plan_partitions(
    paths: list[str], reader: Reader, keys: Any, *, what: str,
    staging_dir: str | None = None, client: Any = None,
) -> list[tuple[dict[str, str | None], tuple, int]]:
    """``(key values, payload, estimated items)`` per distinct key combination, in input
    order: by the first file (key folders, in path order) or first row (a table, in file then
    row order) of each combination. Estimated items are bytes for tables and files for file
    lists. A key value is text; a table's missing (null) key is None, a group of its own.

    Folder keys need no data read. Keys that are columns of a flat table are staged into
    ``staging_dir`` on ``client`` (or Dask's threaded scheduler); each payload is then
    ``("group", (("staged", fragment.parquet), ...))``. Without ``staging_dir`` (``daskprs
    plan``) only the key columns are computed and every payload is the placeholder
    ``UNSTAGED = ("group", (("staged", None),))``, which cannot be loaded: the executor must
    always pass a staging_dir.
    """
    keys = tuple(dict.fromkeys(str(k) for k in keys))
    paths = data_files(paths, reader)
    if not keys:
        raise SpecError(f"{what}: partition_keys is empty; name at least one key.")
    folders: tuple[str, list[str]] | None = None  # (what they are, the keys found)
    if reader.partition_format:
        fields = [name for name, _ in partition_fields(reader.partition_format)]
        folders = (f"fields of the partition format {reader.partition_format!r}", fields)
        if all(k in fields for k in keys):
            return _plan_folders(paths, reader, keys, what,
                                 lambda p: _format_values(p, reader, what))
        if not reader.tabular:
            missing = [k for k in keys if k not in fields]
            raise SpecError(
                f"{what}: partition key(s) {', '.join(missing)} are not in the partition format "
                f"{reader.partition_format!r} (available: {', '.join(fields)}). Use those names "
                "in partition_keys, or add the field to extract_columns_from_partition_format."
            )
    else:
        hive = {p: hive_values(p, reader.root) for p in paths}
        if paths and all(all(k in h for k in keys) for h in hive.values()):
            return _plan_folders(paths, reader, keys, what, hive.__getitem__)
        found = list(dict.fromkeys(k for h in hive.values() for k in h))
        folders = ("key=value folders", found) if found else None
        if not reader.tabular:
            available = sorted({k for h in hive.values() for k in h})
            missing = [k for k in keys if not all(k in h for h in hive.values())]
            raise SpecError(
                f"{what}: partition key(s) {', '.join(missing)} are not folder names of every "
                f"file (available: {', '.join(available) or 'none'}). A file input is grouped "
                "by folders: use key=value folders, or an MLTable with "
                "extract_columns_from_partition_format: '{key}/{file_name}.ext'."
            )
    _check_columns(paths, reader, keys, what, folders)
    return _plan_table(paths, reader, keys, what=what, staging_dir=staging_dir, client=client)


def _check_columns(paths: list[str], reader: Reader, keys: tuple[str, ...], what: str,
                   folders: tuple[str, list[str]] | None) -> None:
    """Refuse keys that are not columns of the first file before the table is staged (a
    failed staging task would print Dask's traceback before the error)."""
    found = table_columns(paths, reader, what)
    if found is None:
        return
    path, columns = found
    missing = [k for k in keys if k not in columns]
    if not missing:
        return
    listed = f"columns of {path} ({', '.join(columns) or 'none'})"
    if folders is None:
        raise SpecError(
            f"{what}: partition key(s) {', '.join(missing)} are not {listed}. Name columns of "
            "the table in partition_keys (names are case-sensitive)."
        )
    label, names = folders
    in_folders = [k for k in keys if k in names]
    if any(k in names for k in missing) and len(in_folders) < len(keys):
        raise SpecError(
            f"{what}: partition_keys mix folder keys ({', '.join(in_folders)}) and other names "
            f"({', '.join(k for k in keys if k not in names)}): name only {label} (found: "
            f"{', '.join(names)}), or only {listed}."
        )
    if any(k in names for k in missing):
        raise SpecError(
            f"{what}: partition key(s) {', '.join(missing)} are folders of some files only: "
            f"put every file in {label} (found: {', '.join(names)}), or name {listed}."
        )
    raise SpecError(
        f"{what}: partition key(s) {', '.join(missing)} are neither {label} (found: "
        f"{', '.join(names)}) nor {listed}. Use those names in partition_keys (names are "
        "case-sensitive)."
    )


def hive_values(path: str, root: str | None = None) -> dict[str, str]:
    """``{"Store": "1000"}`` from folders such as ``.../Store=1000/...`` (URI-decoded)."""
    p = path.replace("\\", "/")
    if root:
        r = root.replace("\\", "/").rstrip("/") + "/"
        p = p[len(r):] if p.startswith(r) else p
    values: dict[str, str] = {}
    for segment in p.split("/")[:-1]:
        if "=" in segment:
            name, value = segment.split("=", 1)
            values[unquote(name)] = unquote(value)
    return values


def _format_values(path: str, reader: Reader, what: str) -> dict[str, str]:
    values = parse_partition_path(reader.partition_format or "", path, reader.root)
    if values is None:
        raise InputError(
            f"{what}: {path} does not match the partition format {reader.partition_format!r}"
            + (f" (relative to {reader.root})" if reader.root else "")
            + ". Every file must sit in the folders the format describes: move the file, or "
            "fix extract_columns_from_partition_format."
        )
    return values


def _plan_folders(
    paths: list[str], reader: Reader, keys: tuple[str, ...], what: str,
    values_of: Callable[[str], dict[str, str]],
) -> list[tuple[dict[str, str], tuple, int]]:
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        values = values_of(path)
        groups.setdefault(tuple(values[k] for k in keys), []).append(path)
    parts = dict.fromkeys(paths) if not reader.tabular else {
        payload[1]: (payload, est) for payload, est in file_parts(paths, reader, what=what)
    }
    out = []
    for combo, files in groups.items():  # first appearance in path order
        if reader.tabular:
            chosen = [parts[p] for p in files if p in parts]  # empty files are left out
            payload = ("group", tuple(part for part, _ in chosen))
            items = sum(est for _, est in chosen)
        else:
            payload = ("group", (("files", tuple(files)),))
            items = len(files)
        out.append((dict(zip(keys, combo, strict=True)), payload, items))
    return out


def _plan_table(
    paths: list[str], reader: Reader, keys: tuple[str, ...], *, what: str,
    staging_dir: str | None, client: Any,
) -> list[tuple[dict[str, str | None], tuple, int]]:
    import dask.dataframe as dd
    import pandas as pd

    chunks = plan_tabular(paths, reader, STAGE_CHUNK_BYTES, what=what)
    if not chunks:
        return []
    # A plain dict: the default options mapping (a mappingproxy) does not pickle.
    reader = dataclasses.replace(reader, options=dict(reader.options))
    jobs = [(i, payload) for i, (payload, _) in enumerate(chunks)]
    key_meta = {k: pd.Series([], dtype=object) for k in keys}  # text, None where missing
    if staging_dir is None:
        meta = pd.DataFrame({**key_meta, _ROWS: pd.Series([], dtype="int64"),
                             _FIRST: pd.Series([], dtype="int64")})
        counts = _compute(dd.from_map(_count_chunk, jobs, reader=reader, keys=keys, meta=meta,
                                      enforce_metadata=False, label="daskprs-keys"), client)
        if counts.empty:
            return []
        rows = counts.groupby(list(keys), sort=False, dropna=False).agg(
            {_ROWS: "sum", _FIRST: "min"})
        total_rows = max(int(rows[_ROWS].sum()), 1)
        total_bytes = sum(est for _, est in chunks)
        counted = {_combo(combo): (int(first), int(n))
                   for combo, n, first in zip(rows.index, rows[_ROWS], rows[_FIRST], strict=True)}
        return [(dict(zip(keys, combo, strict=True)), UNSTAGED,
                 round(total_bytes * counted[combo][1] / total_rows))
                for combo in group_order({c: first for c, (first, _) in counted.items()})]
    os.makedirs(staging_dir, exist_ok=True)
    meta = pd.DataFrame({**key_meta, _FILE: pd.Series([], dtype="str"),
                         _BYTES: pd.Series([], dtype="int64"),
                         _CHUNK: pd.Series([], dtype="int64"),
                         _FIRST: pd.Series([], dtype="int64")})
    staged = _compute(dd.from_map(_stage_chunk, jobs, reader=reader, keys=keys,
                                  staging_dir=staging_dir, meta=meta, enforce_metadata=False,
                                  label="daskprs-stage"), client)
    groups: dict[tuple[str | None, ...], list[tuple[int, str, int]]] = {}
    first: dict[tuple[str | None, ...], int] = {}
    columns = [staged[k] for k in keys] + [staged[c] for c in (_FILE, _BYTES, _CHUNK, _FIRST)]
    for *values, path, nbytes, chunk, row in zip(*columns, strict=True):
        combo = _combo(tuple(values))
        groups.setdefault(combo, []).append((int(chunk), str(path), int(nbytes)))
        first[combo] = min(first.get(combo, int(row)), int(row))
    out = []
    for combo in group_order(first):
        fragments = sorted(groups[combo])
        payload = ("group", tuple(("staged", path) for _, path, _ in fragments))
        out.append((dict(zip(keys, combo, strict=True)), payload, sum(n for _, _, n in fragments)))
    return out


def group_order(first: dict[tuple[str | None, ...], int]) -> list[tuple[str | None, ...]]:
    """Key combinations by their first row in the input (file order, then row order): the
    README's input order, not their text's (Store 5, 999, 1001, not 1001, 5, 999). Ids hold
    the index, so a resume of a run planned in another order (daskprs before this order)
    reuses only the mini-batches whose id is unchanged and runs the others again."""
    return sorted(first, key=first.__getitem__)


def _combo(value: Any) -> tuple[str | None, ...]:
    """Key values from a groupby key or a result row: text, None for a missing value."""
    values = value if isinstance(value, tuple) else (value,)
    return tuple(v if isinstance(v, str) else None for v in values)


def _compute(collection: Any, client: Any) -> Any:
    if client is not None:
        return client.compute(collection).result()
    return collection.compute(scheduler="threads")


def _keyed(job: tuple[int, tuple], reader: Reader, keys: tuple[str, ...],
           **kw: Any) -> tuple[Any, Any, list[Any]]:
    """One source chunk as run() would see it, and its keys as integer codes: ``codes[row,
    i]`` indexes ``uniques[i]``, the texts of key i, or is -1 where the value is missing.
    Codes, not a column of Python strings per key, keep a chunk's memory and grouping low."""
    import numpy as np
    import pandas as pd

    _, payload = job
    df = load_part(payload, reader, key_columns=keys, **kw)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise SpecError(
            f"partition key(s) {', '.join(missing)} are neither folders nor columns of "
            f"{payload[1]} (columns: {', '.join(_visible(df.columns))}). Name columns of the "
            "table in partition_keys, or key=value folders."
        )
    factors = [pd.factorize(key_text(df, k).to_numpy()) for k in keys]
    return df, np.stack([c for c, _ in factors], axis=1), [list(u) for _, u in factors]


def _values(codes: Any, uniques: list[Any]) -> tuple[str | None, ...]:
    import numpy as np

    codes = (codes,) if np.ndim(codes) == 0 else codes  # a groupby on one key may give a scalar
    return tuple(None if c < 0 else u[c] for c, u in zip(codes, uniques, strict=True))


def _visible(columns: Any) -> list[str]:
    return [str(c) for c in columns if not str(c).startswith("__daskprs_")]


def _count_chunk(job: tuple[int, tuple], reader: Reader, keys: tuple[str, ...]) -> Any:
    """Rows per key combination in one source chunk (plan only: nothing is written)."""
    import numpy as np
    import pandas as pd

    # Only the key columns are needed unless a transform or the path column needs the rest.
    columns = keys if not reader.transforms and reader.format == "parquet" else None
    index, _ = job
    _, codes, uniques = _keyed(job, reader, keys, columns=columns)
    combos, first, rows = np.unique(codes, axis=0, return_index=True, return_counts=True)
    values = [_values(combo, uniques) for combo in combos]
    return pd.DataFrame({
        **{k: [v[i] for v in values] for i, k in enumerate(keys)},
        _ROWS: rows.astype("int64"), _FIRST: (index << 40) + first.astype("int64")},
        columns=[*keys, _ROWS, _FIRST])


def _stage_chunk(
    job: tuple[int, tuple], reader: Reader, keys: tuple[str, ...], staging_dir: str
) -> Any:
    """Write one source chunk as a Parquet fragment per key combination; return their list."""
    import numpy as np
    import pandas as pd

    index, _ = job
    df, codes, uniques = _keyed(job, reader, keys)
    df[ROW_COLUMN] = (index << 40) + np.arange(len(df), dtype="int64")
    rows = []
    for combo, group in df.groupby(list(codes.T), sort=False):
        values = _values(combo, uniques)
        folder = os.path.join(staging_dir, group_folder(values))
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, f"part-{index:06d}.parquet")
        tmp = f"{target}.{uuid.uuid4().hex}.tmp"
        _write_fragment(group, tmp)
        os.replace(tmp, target)  # a retried task overwrites its own fragment whole
        first = int(group[ROW_COLUMN].iloc[0])
        rows.append([*values, target, os.path.getsize(target), index, first])
    return pd.DataFrame(rows, columns=[*keys, _FILE, _BYTES, _CHUNK, _FIRST]).astype(
        {_BYTES: "int64", _CHUNK: "int64", _FIRST: "int64"})


def _write_fragment(group: Any, path: str) -> None:
    """``group`` as Parquet, which keeps the dtypes run() would get without partition keys;
    a column of mixed types (pandas makes one of a large CSV column that is numbers in part
    of it) cannot be Parquet and is written as text."""
    import pyarrow as pa

    try:
        group.to_parquet(path, index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        mixed = {c: group[c].astype("str").where(group[c].notna()) for c in group.columns
                 if group[c].dtype == object}
        group.assign(**mixed).to_parquet(path, index=False)


def group_folder(values: tuple[str | None, ...]) -> str:
    """A safe, unique folder name for a key combination: a readable prefix plus a hash."""
    digest = hashlib.sha1(json.dumps(list(values)).encode()).hexdigest()[:16]
    text = "-".join("" if v is None else v for v in values)
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:40].strip("._") or "key"
    return f"{prefix}-{digest}"
