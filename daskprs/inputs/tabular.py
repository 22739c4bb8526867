"""Tabular mini-batches: plan byte ranges and row groups on the driver, parse them in the child.

Planning reads metadata only: file sizes, Parquet footers, the header line of a file that is
split, and a few bytes after each approximate cut so that every cut lands on a line start. The
ranges of a file are contiguous and disjoint, so each byte is read once, by the mini-batch that
owns it; ``bytes_read`` counts those reads so tests and the runtime can check it.

pandas, numpy and pyarrow are imported inside functions: the worker's child process imports this
module for every tabular job, and importing it must stay cheap.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import InputError
from ..plan import Reader

# Bytes read from input files by load_tabular in this process (header bytes that came with a
# payload are not counted; Parquet counts the compressed bytes of the row groups it reads).
bytes_read = 0
_bytes_lock = threading.Lock()

ENCODINGS = {
    "utf8": "utf-8", "ascii": "ascii", "latin1": "latin-1", "iso88591": "iso-8859-1",
    "utf16": "utf-16", "utf32": "utf-32", "utf8bom": "utf-8-sig", "windows1252": "cp1252",
}
# Their newline is not the byte b"\n", so a byte offset cannot be checked for a line start.
_WIDE_ENCODINGS = {"utf16", "utf32"}
HEADER_MODES = (
    "all_files_same_headers", "from_first_file", "all_files_different_headers", "no_header",
)
# Transforms that need to see the whole table in order, which a mini-batch never does.
WHOLE_TABLE_TRANSFORMS = ("take", "skip")
COLUMN_TYPES = ("int", "float", "string", "boolean", "datetime")
_TYPE_ALIASES = {
    "int": "int", "integer": "int", "long": "int", "float": "float", "double": "float",
    "decimal": "float", "number": "float", "string": "string", "str": "string",
    "boolean": "boolean", "bool": "boolean", "datetime": "datetime", "date": "datetime",
}
_COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
_PEEK = 64 * 1024
_QUOTE_WINDOW = 16 * 1024  # bytes sampled around each cut of a delimited file for quotes
_MULTI_LINE_SETTING = ("support_multi_line: true in read_delimited (MLTable), or "
                       "support_multi_line=True in from_delimited_files (SDK v1)")
# Written next to Parquet data by Spark, Dask and pyarrow; not data files themselves.
_PARQUET_SIDECARS = ("_metadata", "_common_metadata", "_SUCCESS")
# pandas' default NA strings (the NA rules of infer_column_types: false and empty_as_string).
_NA_STRINGS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)
log = logging.getLogger("daskprs")
ROW_COLUMN = "__daskprs_row"  # original row order of staged key groups (see partitioned.py)
# KEY_TEXT + name: a partition key's text where its parsed column lost it (see load_part)
KEY_TEXT = "__daskprs_text:"
_HIDDEN = "__daskprs_"  # columns of ours that transforms carry along


def codec(encoding: str | None) -> str:
    """The Python codec for an MLTable encoding name (``utf8``, ``utf8bom``, ``latin1`` ...)."""
    if encoding is None:
        return "utf-8"
    key = _encoding_key(encoding)
    if key not in ENCODINGS:
        raise ValueError(
            f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)} (the MLTable encodings)."
        )
    return ENCODINGS[key]


def _encoding_key(encoding: str | None) -> str:
    return str(encoding or "utf8").lower().replace("-", "").replace("_", "")


# ---------------------------------------------------------------------------------- planning


def plan_tabular(
    paths: list[str], reader: Reader, batch_bytes: int, *, what: str
) -> list[tuple[tuple, int]]:
    """Split tabular files into mini-batches of about ``batch_bytes`` on-disk bytes.

    Returns ``(payload, est_bytes)`` in input order. A mini-batch never crosses a file.
    Delimited and JSON-lines files become ``("range", path, start, end, header)`` byte ranges
    cut at line starts (``header`` is the file's header line, given to ranges after the first
    so the loader need not re-read it). Files that cannot be cut safely (compressed,
    ``support_multi_line``, UTF-16/32) are one ``("file", path)`` each. Parquet files become
    ``("rowgroups", path, (i, ...))``: consecutive row groups until their compressed size
    reaches ``batch_bytes``; a row group is never split. Empty files produce no mini-batch.
    """
    refuse_whole_table_transforms(reader, what)
    if batch_bytes <= 0:
        raise InputError(f"{what}: mini_batch_size must be a positive size, got {batch_bytes}.")
    paths = data_files(paths, reader)
    if reader.format == "parquet":
        return [part for path in paths for part in _plan_parquet(path, batch_bytes, what)]
    if reader.format not in ("delimited", "json_lines"):
        raise InputError(f"{what}: {reader.format!r} data cannot be split into tabular "
                         "mini-batches; expected delimited, parquet or json_lines.")
    out: list[tuple[tuple, int]] = []
    for path, size, own_header, header in _text_files(paths, reader, what):
        if not _splittable(path, reader):
            payload = ("file", path) if header is None else ("range", path, 0, size, header)
            out.append((payload, size))
        else:
            out.extend(_plan_text(path, size, batch_bytes, own_header, header,
                                  quoted=reader.format == "delimited"))
    return out


def file_parts(paths: list[str], reader: Reader, *, what: str) -> list[tuple[tuple, int]]:
    """One whole-file payload per non-empty file, with the header rules applied (key groups).

    ``("file", path)`` unless the file needs a header from elsewhere (``from_first_file``), then
    ``("range", path, 0, size, header)``. Empty files are left out.
    """
    refuse_whole_table_transforms(reader, what)
    paths = data_files(paths, reader)
    if reader.format == "parquet":
        return [(("file", p), s) for p in paths if (s := _size(p, what)) > 0]
    return [(("file", p) if header is None else ("range", p, 0, size, header), size)
            for p, size, _, header in _text_files(paths, reader, what)]


def data_files(paths: list[str], reader: Reader) -> list[str]:
    """The paths without Parquet sidecar files (``_metadata``, ``_common_metadata``, ...)."""
    if reader.format != "parquet":
        return paths
    return [p for p in paths if os.path.basename(p.rstrip("/")) not in _PARQUET_SIDECARS]


def refuse_whole_table_transforms(reader: Reader, what: str) -> None:
    for name, _ in reader.transforms:
        if name in WHOLE_TABLE_TRANSFORMS:
            raise InputError(
                f"{what}: the MLTable transform '{name}' applies to the whole table in order, but "
                "daskprs splits a table into mini-batches without reading it first, so no "
                f"mini-batch knows which rows come first. Remove '{name}' from the MLTable, or "
                "select the rows inside run()."
            )


def _text_files(
    paths: list[str], reader: Reader, what: str
) -> Iterable[tuple[str, int, bool, bytes | None]]:
    """(path, size, has its own header line, header bytes to prepend) for non-empty files."""
    opts = reader.options
    mode = opts.get("header", HEADER_MODES[0]) if reader.format == "delimited" else "no_header"
    if mode not in HEADER_MODES:
        raise InputError(f"{what}: read_delimited header {mode!r} is not one of "
                         f"{', '.join(HEADER_MODES)}.")
    first_header: bytes | None = None
    first = True
    for path in paths:
        size = _size(path, what)
        if size == 0:
            continue
        if mode == "from_first_file":
            if first:
                if _encoding_key(opts.get("encoding")) in _WIDE_ENCODINGS:
                    raise InputError(
                        f"{what}: header: from_first_file is not supported with encoding "
                        f"{opts.get('encoding')}; use all_files_same_headers."
                    )
                first_header = _first_line(path, what)
                yield path, size, True, None
            else:
                yield path, size, False, first_header
        else:
            yield path, size, mode != "no_header", None
        first = False


def _splittable(path: str, reader: Reader) -> bool:
    opts = reader.options
    return not (_compression(path) or _truthy(opts.get("support_multi_line"))
                or _encoding_key(opts.get("encoding")) in _WIDE_ENCODINGS)


def _plan_text(
    path: str, size: int, batch_bytes: int, own_header: bool, header: bytes | None,
    *, quoted: bool = False,
) -> list[tuple[tuple, int]]:
    n = -(-size // batch_bytes)
    whole = [(("range", path, 0, size, header), size)]
    if n <= 1:
        return whole
    with _open(path) as f:
        floor = 0
        if own_header:
            floor = _next_line_start(f, 1, size)
            if floor >= size:
                return [(("range", path, 0, size, None), size)]
            f.seek(0)
            header = f.read(floor)
        cuts = []
        prev = floor
        for k in range(1, n):
            approx = max(round(k * size / n), prev + 1)
            if approx >= size:
                break
            cut = _next_line_start(f, approx, size)
            if cut >= size:
                break
            cuts.append(cut)
            prev = cut
        spans = _quoted_line_break(f, floor, cuts) if quoted else None
    if spans is not None:
        log.warning("%s: a quoted value spans lines near byte %d, so the file is not cut at "
                    "line breaks and is read as one mini-batch. To say so and silence this "
                    "warning, set %s.", path, spans, _MULTI_LINE_SETTING)
        return whole
    bounds = [0, *cuts, size]
    return [
        (("range", path, start, end, None if own_header and i == 0 else header), end - start)
        for i, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]


def _quoted_line_break(f: Any, floor: int, cuts: list[int]) -> int | None:
    """A byte offset near which a quoted value seems to span lines, or None.

    Cutting at a line break inside a quoted value corrupts both mini-batches, and which line
    breaks are quoted is only known by reading the file from its start. This samples instead:
    the first data block and a window around each cut, where a whole line with an odd number
    of quote characters opens or closes a multi-line value (or holds a stray quote, which is
    also safest read whole). The worker checks the rest (``_check_quotes``).
    """
    for pos in (floor, *cuts):
        lo = floor if pos == floor else max(floor, pos - _QUOTE_WINDOW // 2)
        f.seek(lo)
        block = f.read(_PEEK if pos == floor else _QUOTE_WINDOW)
        if b'"' not in block:
            continue
        lines = block.split(b"\n")[:-1]  # the last may be cut short by the window
        if lo > floor:
            lo += len(lines[0]) + 1 if lines else 0
            lines = lines[1:]  # may start mid-line
        for line in lines:
            if line.count(b'"') % 2:
                return lo
            lo += len(line) + 1
    return None


def _next_line_start(f: Any, pos: int, size: int) -> int:
    """The first line start at or after ``pos`` (a position just after a ``\\n``), or ``size``."""
    offset = pos - 1
    f.seek(offset)
    while True:
        block = f.read(_PEEK)
        if not block:
            return size
        i = block.find(b"\n")
        if i >= 0:
            return min(offset + i + 1, size)
        offset += len(block)


def _first_line(path: str, what: str) -> bytes:
    """The first line of a file, decompressed if needed (the header for from_first_file)."""
    try:
        with _open(path) as raw:
            f = _decompressing(raw, path) if _compression(path) else raw
            chunks = []
            while True:
                block = f.read(_PEEK)
                if not block:
                    break
                i = block.find(b"\n")
                if i >= 0:
                    chunks.append(block[:i + 1])
                    break
                chunks.append(block)
            return b"".join(chunks)
    except OSError as e:
        raise InputError(f"{what}: cannot read the header line of {path}: {e}") from None


def table_columns(paths: list[str], reader: Reader, what: str) -> tuple[str, list[str]] | None:
    """``(file, columns)``: the columns run() gets from the first non-empty file, read from
    its Parquet schema, header line or first JSON line alone, with the path column and the
    column transforms applied; None when that cannot tell (the loader then reports it)."""
    import json

    import pandas as pd

    opts = reader.options
    path = next((p for p in data_files(paths, reader) if _size(p, what) > 0), None)
    if path is None:
        return None
    try:
        if reader.format == "parquet":
            import pyarrow.parquet as pq

            with _open(path) as f:
                names = list(pq.ParquetFile(f).schema_arrow.names)
        elif reader.format == "delimited":
            line = _first_line(path, what)
            kw = {"sep": _delimiter(opts, path), "encoding": codec(opts.get("encoding"))}
            if opts.get("header", HEADER_MODES[0]) == "no_header":
                width = pd.read_csv(io.BytesIO(line), header=None, nrows=1, **kw).shape[1]
                names = [f"Column{i + 1}" for i in range(width)]
            else:
                names = [str(c) for c in pd.read_csv(io.BytesIO(line), nrows=0, **kw).columns]
        elif reader.format == "json_lines":
            names = list(json.loads(_first_line(path, what).decode(codec(opts.get("encoding")))))
        else:
            return None
    except Exception:  # noqa: BLE001 - an unreadable file: its mini-batch will say why
        return None
    if _truthy(opts.get("include_path_column")):
        name = str(opts.get("path_column") or "Path")
        names = names if name in names else [name, *names]
    for name, arg in reader.transforms:
        if name == "keep_columns":
            names = _names(arg)
        elif name == "drop_columns":
            names = [c for c in names if c not in _names(arg)]
        elif name == "extract_columns_from_partition_format":
            names += [f for f, _ in partition_fields(arg) if f not in names]
    return path, names


def _plan_parquet(path: str, batch_bytes: int, what: str) -> list[tuple[tuple, int]]:
    import pyarrow.parquet as pq

    size = _size(path, what)
    if size == 0:
        return []
    try:
        with _open(path) as f:
            md = pq.ParquetFile(f).metadata
    except Exception:  # noqa: BLE001 - unreadable: its own mini-batch fails, naming the file
        return [(("file", path), size)]
    out = []
    group: list[int] = []
    group_bytes = 0
    for i in range(md.num_row_groups):
        group.append(i)
        group_bytes += _row_group_bytes(md.row_group(i))
        if group_bytes >= batch_bytes:
            out.append((("rowgroups", path, tuple(group)), group_bytes))
            group, group_bytes = [], 0
    if group:
        out.append((("rowgroups", path, tuple(group)), group_bytes))
    return out


def _row_group_bytes(rg: Any) -> int:
    return sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))


# ---------------------------------------------------------------------------------- loading


def load_tabular(payload: tuple, reader: Reader, key: dict[str, str] | None = None) -> Any:
    """The pandas DataFrame for one mini-batch (runs in the worker's child process).

    Reads exactly the payload's bytes, parses them with the reader's options, applies the
    MLTable transforms, and adds the partition ``key`` columns (as strings, a None value as
    missing) when the data lacks them.
    A ``("group", parts)`` payload is its parts concatenated in order. Unreadable data raises
    ``ValueError`` naming the file, so only this mini-batch fails.
    """
    import pandas as pd

    if payload[0] == "group":
        frames = [load_part(part, reader) for part in payload[1]]
        frames = [f for f in frames if len(f.columns)] or frames
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if ROW_COLUMN in df.columns:
            df = (df.sort_values(ROW_COLUMN, kind="stable").drop(columns=ROW_COLUMN)
                  .reset_index(drop=True))
    else:
        df = load_part(payload, reader)
    for name, value in (key or {}).items():
        if name not in df.columns:
            df[name] = pd.Series([value] * len(df), index=df.index, dtype="str")
    return df


def load_part(
    part: tuple, reader: Reader, *, key_columns: tuple[str, ...] = (),
    columns: tuple[str, ...] | None = None,
) -> Any:
    """One payload (not a group) parsed and transformed.

    Columns are parsed as without partition keys, so run() sees the same dtypes either way.
    Partition key values are text, though, and a parsed column may have lost it (CSV ``007``
    is the number 7; an int64 Parquet column with nulls is float64, ``1001.0``): such a
    ``key_columns`` column gets a hidden companion ``KEY_TEXT + name`` with the text (None
    where the value is null), which transforms carry along. ``columns`` limits a Parquet read
    when no transform needs the rest.
    """
    kind = part[0]
    if kind == "staged":
        return _read_staged(part[1])
    if kind not in ("range", "file", "rowgroups"):
        raise ValueError(f"a {kind!r} payload is not tabular data.")
    path = part[1]
    opts = reader.options
    if reader.format == "parquet":
        df = _read_parquet(part, columns, key_columns, reader.unchanged_since)
    elif reader.format in ("delimited", "json_lines"):
        if kind == "rowgroups":
            raise ValueError(f"{path}: row groups given for a {reader.format} reader.")
        data, header, label, sliced = _read_text(part, reader.unchanged_since)
        if reader.format == "delimited":
            df = _parse_delimited(data, header, path, label, opts, key_columns, sliced)
            if sliced and b'"' in data and _fewer_rows_than_lines(df, data, header, opts):
                _check_quotes(df, label)
        else:
            df = _parse_json_lines(data, label, opts)
    else:
        raise ValueError(f"{path}: reader format {reader.format!r} is not tabular.")
    if _truthy(opts.get("include_path_column")):
        name = str(opts.get("path_column") or "Path")
        if name in df.columns:
            df[name] = path
        else:
            df.insert(0, name, path)
    return apply_transforms(df, part, reader)


def key_text(df: Any, name: str) -> Any:
    """A partition key column as text, None where missing; takes its companion out of ``df``.

    A CSV key is its field as written (an empty field is ``""``: CSV cannot tell it from a
    missing value); other formats give the value's ``str``, or None where it is null.
    """
    companion = KEY_TEXT + name
    if companion in df.columns:
        return df.pop(companion)
    column = df[name]
    return column.astype("str").astype(object).where(column.notna(), None)


def _count(n: int) -> None:
    global bytes_read
    with _bytes_lock:
        bytes_read += n


class FileChanged(ValueError):
    """A table file was modified after the plan was made."""


def _unchanged(f: Any, path: str, since: float | None, label: str) -> None:
    """Refuse a local file modified after the plan was made: reading the planned byte range
    or row groups of a rewritten or growing file would cut records into wrong rows."""
    if since is None or not hasattr(f, "fileno"):
        return
    try:
        mtime = os.fstat(f.fileno()).st_mtime
    except (OSError, ValueError):
        return
    if mtime > since:
        raise FileChanged(
            f"{label}: the file changed after the plan was made (modified "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(mtime))}), so its planned "
            "byte ranges or row groups no longer fit. Keep the input unchanged while a job "
            "runs; then resume (--force, as its fingerprint changed) or start a new run."
        )


def _read_text(part: tuple, since: float | None = None) -> tuple[bytes, bytes | None, str, bool]:
    """The payload's bytes, the header to prepend, a label for errors, and whether the bytes
    are a slice of their file (not all of it), so records may have been cut."""
    path = part[1]
    if part[0] == "file":
        start, end, header, label = 0, None, None, path
    else:
        _, _, start, end, header = part
        label = f"{path} (bytes {start}-{end})"
    try:
        with _open(path) as f:
            _unchanged(f, path, since, label)
            f.seek(start)
            data = f.read() if end is None else f.read(end - start)
            sliced = start > 0 or (end is not None and f.read(1) != b"")
    except OSError as e:
        raise ValueError(f"{label}: cannot read: {e}") from None
    _count(len(data))
    if end is not None and len(data) != end - start:
        raise ValueError(f"{label}: the file is shorter than planned; it changed after the plan "
                         "was made. Run again (or resume) to plan it anew.")
    if _compression(path):
        try:
            with _decompressing(io.BytesIO(data), path) as f:
                data = f.read()
        except Exception as e:  # noqa: BLE001 - any codec error means a corrupt file
            raise ValueError(f"{path}: cannot decompress: {e}") from None
    return data, header, label, sliced


def _parse_delimited(
    data: bytes, header: bytes | None, path: str, label: str, opts: Any,
    key_columns: tuple[str, ...] = (), sliced: bool = False,
) -> Any:
    import pandas as pd

    buf = (header or b"") + data
    base: dict[str, Any] = {"sep": _delimiter(opts, path), "encoding": codec(opts.get("encoding"))}
    infer = _truthy(opts.get("infer_column_types", True))
    empty_as_string = _truthy(opts.get("empty_as_string", False))
    try:
        if not buf.strip():
            return pd.DataFrame()
        if opts.get("header", HEADER_MODES[0]) == "no_header":
            width = pd.read_csv(io.BytesIO(buf), header=None, nrows=1, **base).shape[1]
            base.update(header=None, names=[f"Column{i + 1}" for i in range(width)])
        kw: dict[str, Any] = {}
        if infer and not empty_as_string:
            pass  # pandas' own NA rules: the same frame as pd.read_csv of the file
        else:
            kw["na_values"] = [v for v in (_NA_STRINGS if infer else ("",))
                               if not (empty_as_string and v == "")]
            kw["keep_default_na"] = False
        if not infer:
            kw["dtype"] = str
        df = pd.read_csv(io.BytesIO(buf), **base, **kw)
    except (ValueError, UnicodeError, pd.errors.ParserError) as e:
        if "EOF inside string" in str(e):
            raise ValueError(
                f"{label}: a quoted value is not closed before the end of this "
                + (f"mini-batch ({e}). {_MULTI_LINE_HINT}" if sliced else f"file ({e}). Fix it.")
            ) from None
        raise ValueError(
            f"{label}: cannot parse as delimited text: {e}. Check the delimiter and encoding "
            "in read_delimited, or fix the file."
        ) from None
    if empty_as_string and infer:
        df = _numeric_where_only_empty(df)
    # Key columns whose text the parse changed (a number, a boolean, a missing value, mixed
    # types): read once more, only those, as written.
    lost = [k for k in key_columns if k in df.columns
            and not (pd.api.types.is_string_dtype(df[k]) and not df[k].hasnans)]
    if lost:
        text = pd.read_csv(io.BytesIO(buf), usecols=lost, dtype=object, na_filter=False, **base)
        if len(text) != len(df):  # cannot happen: the same bytes and rules give the same rows
            raise ValueError(f"{label}: the partition key columns parse to {len(text)} rows, "
                             f"the table to {len(df)}.")
        for k in lost:
            df[KEY_TEXT + k] = text[k].to_numpy()
    return df


_MULTI_LINE_HINT = (
    f"If quoted values in this file hold line breaks, set {_MULTI_LINE_SETTING}: the file is "
    "then read as one mini-batch instead of being cut at line breaks."
)


def _fewer_rows_than_lines(df: Any, data: bytes, header: bytes | None, opts: Any) -> bool:
    """Whether some record may span lines: fewer rows than lines (blank lines also do that).

    Counting newlines takes a millisecond where scanning every value takes as long as the
    parse, so most quoted CSV (every value in quotes, no line breaks) skips the scan.
    """
    lines = data.count(b"\n") + (not data.endswith(b"\n")) + (1 if header else 0)
    header_rows = 0 if opts.get("header", HEADER_MODES[0]) == "no_header" else 1
    return len(df) + header_rows < lines


def _check_quotes(df: Any, label: str) -> None:
    """Fail a slice of a file whose values hold line breaks: its cuts may split a record.

    The plan samples for quoted line breaks (``_quoted_line_break``) but cannot see every
    line; a value with a line break here means the file has them, and a cut elsewhere may
    have split one, turning its halves into wrong rows that would pass as results.
    """
    from pandas.api.types import is_object_dtype, is_string_dtype

    for name in df.columns:
        s = df[name]
        if not (is_string_dtype(s.dtype) or is_object_dtype(s.dtype)):
            continue
        try:
            hit = s.str.contains("[\r\n]", regex=True, na=False)
        except AttributeError:  # an object column without any string
            continue
        if hit.any():
            row = int(hit.to_numpy().argmax()) + 1
            raise ValueError(
                f"{label}: row {row} of this mini-batch has a line break inside the quoted "
                f"value of column {name!r}, but the file is cut into mini-batches at line "
                f"breaks, which can split such a record. {_MULTI_LINE_HINT}"
            )


def _numeric_where_only_empty(df: Any) -> Any:
    """With empty_as_string, columns that are numbers apart from empty fields stay numeric."""
    import pandas as pd

    for name in df.columns:
        s = df[name]
        if str(name).startswith(_HIDDEN) or s.dtype.kind in "biufcmM":
            continue
        empty = s == ""
        if empty.any():
            try:
                df[name] = pd.to_numeric(s.mask(empty))
            except (ValueError, TypeError):
                pass
    return df


def _delimiter(opts: Any, path: str) -> str:
    if opts.get("delimiter"):
        return str(opts["delimiter"])
    name = path.lower()
    for ext in _COMPRESSED:
        name = name.removesuffix(ext)
    return "\t" if name.endswith(".tsv") else ","


def _parse_json_lines(data: bytes, label: str, opts: Any) -> Any:
    import json

    import pandas as pd

    try:
        text = data.decode(codec(opts.get("encoding")))
    except UnicodeError as e:
        raise ValueError(f"{label}: cannot decode: {e}. Set encoding in read_json_lines.") from None
    if not text.strip():
        return pd.DataFrame()
    try:
        return pd.read_json(io.StringIO(text), **_json_options(pd))
    except ValueError as e:
        first_error = e
    good = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if ok:
            good.append(line)
        elif opts.get("invalid_lines", "error") != "drop":
            raise ValueError(
                f"{label}: line {number} of this mini-batch is not a JSON object: "
                f"{line[:80]!r}. Fix it, or set invalid_lines: drop in read_json_lines."
            )
    if not good:
        return pd.DataFrame()
    try:
        return pd.read_json(io.StringIO("\n".join(good)), **_json_options(pd))
    except ValueError:
        raise ValueError(f"{label}: cannot parse JSON lines: {first_error}") from None


def _json_options(pd: Any) -> dict[str, Any]:
    # dtype=False keeps JSON's own types: "007" stays a string and no column is guessed to be
    # a date (pandas 2 also needs convert_dates=False for that; pandas 3 deprecates it).
    options: dict[str, Any] = {"lines": True, "dtype": False}
    if int(pd.__version__.split(".")[0]) < 3:
        options["convert_dates"] = False
    return options


def _read_parquet(part: tuple, columns: tuple[str, ...] | None,
                  key_columns: tuple[str, ...] = (), since: float | None = None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = part[1]
    try:
        with _open(path) as f:
            _unchanged(f, path, since, path)
            pf = pq.ParquetFile(f)
            md = pf.metadata
            groups = list(part[2]) if part[0] == "rowgroups" else list(range(md.num_row_groups))
            names = pf.schema_arrow.names
            # only the columns asked for, when they all exist (else all: for the error message)
            cols = list(columns) if columns and all(c in names for c in columns) else None
            if groups:
                table = pf.read_row_groups(groups, columns=cols)
            else:
                table = pf.schema_arrow.empty_table()
            n = sum(_row_group_bytes(md.row_group(i)) for i in groups)
    except FileChanged:
        raise
    except Exception as e:  # noqa: BLE001 - any pyarrow error here means the file is unreadable
        raise ValueError(
            f"{path}: cannot read it as Parquet ({type(e).__name__}: {e}). The file is corrupt "
            "or not Parquet; replace it or remove it from the input."
        ) from None
    _count(n)
    df = table.to_pandas()
    for k in key_columns:  # pandas makes integers with nulls floats: 1001 would be "1001.0"
        if k in table.column_names and pa.types.is_integer(table.schema.field(k).type) \
                and df[k].dtype.kind == "f":
            df[KEY_TEXT + k] = pc.cast(table.column(k), pa.string()).to_numpy(zero_copy_only=False)
    return df


def _read_staged(path: str | None) -> Any:
    import pyarrow.parquet as pq

    if path is None:
        raise ValueError("this key group was planned without staging (daskprs plan shows key "
                         "groups only); run the job to stage and load it.")
    try:
        return pq.read_table(path).to_pandas()
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read the staged key group: {e}. Run the job again to "
                         "re-stage the partition keys.") from None


# ---------------------------------------------------------------------------------- transforms


def apply_transforms(df: Any, part: tuple, reader: Reader) -> Any:
    """Apply the MLTable's row-wise transforms, in order, to one mini-batch's frame."""
    for name, arg in reader.transforms:
        fn = _TRANSFORMS.get(name)
        if fn is None:
            raise ValueError(f"{part[1]}: the MLTable transform {name!r} is not supported "
                             f"(supported: {', '.join(sorted(_TRANSFORMS))}).")
        df = fn(df, arg, part, reader)
    return df


def _keep_columns(df: Any, arg: Any, part: tuple, reader: Reader) -> Any:
    wanted = _names(arg)
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise ValueError(f"{part[1]}: keep_columns names {missing}, but the data has columns "
                         f"{list(df.columns)}.")
    return df[wanted + [c for c in df.columns if str(c).startswith(_HIDDEN)]]


def _drop_columns(df: Any, arg: Any, part: tuple, reader: Reader) -> Any:
    return df.drop(columns=[c for c in _names(arg) if c in df.columns])


def _convert_column_types(df: Any, arg: Any, part: tuple, reader: Reader) -> Any:
    for columns, column_type in arg:
        spec = column_type_spec(column_type)
        for name in _names(columns):
            if name not in df.columns:
                raise ValueError(f"{part[1]}: convert_column_types names column {name!r}, but "
                                 f"the data has columns {list(df.columns)}.")
            try:
                df[name] = _convert(df[name], spec)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{part[1]}: cannot convert column {name!r} to {spec[0]}: "
                                 f"{e}") from None
    return df


def _extract_columns(df: Any, arg: Any, part: tuple, reader: Reader) -> Any:
    import pandas as pd

    path = part[1]
    values = parse_partition_path(arg, path, reader.root)
    if values is None:
        raise ValueError(f"{path}: does not match the partition format {arg!r}"
                         + (f" (relative to {reader.root})" if reader.root else "") + ".")
    for name, strftime in partition_fields(arg):
        if strftime:
            df[name] = pd.to_datetime(pd.Series([values[name]] * len(df), index=df.index,
                                                dtype="str"), format=strftime)
        else:
            df[name] = pd.Series([values[name]] * len(df), index=df.index, dtype="str")
    return df


def _filter(df: Any, arg: Any, part: tuple, reader: Reader) -> Any:
    try:
        mask = compile_filter(arg)(df)
    except (TypeError, ValueError) as e:  # e.g. a string column compared with a number
        raise ValueError(f"{part[1]}: {e}" if str(e).startswith("filter") else
                         f"{part[1]}: filter {arg!r}: {e}") from None
    if not hasattr(mask, "fillna"):
        return df if mask else df.iloc[0:0]
    return df[mask.fillna(False).astype(bool)].reset_index(drop=True)


def _take_random_sample(df: Any, arg: Any, part: tuple, reader: Reader) -> Any:
    import numpy as np

    probability, seed = arg
    # Seeded by the mini-batch too: a retried mini-batch samples the same rows.
    digest = hashlib.sha1(repr((seed, part[:4])).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return df[rng.random(len(df)) < float(probability)].reset_index(drop=True)


_TRANSFORMS: dict[str, Callable[[Any, Any, tuple, Reader], Any]] = {
    "keep_columns": _keep_columns,
    "drop_columns": _drop_columns,
    "convert_column_types": _convert_column_types,
    "extract_columns_from_partition_format": _extract_columns,
    "filter": _filter,
    "take_random_sample": _take_random_sample,
}
SUPPORTED_TRANSFORMS = (*_TRANSFORMS, *WHOLE_TABLE_TRANSFORMS)


def _names(arg: Any) -> list[str]:
    return [arg] if isinstance(arg, str) else list(arg)


def column_type_spec(raw: Any) -> tuple:
    """An MLTable ``column_type`` as a hashable tuple.

    ``int`` -> ``("int",)``; ``{datetime: {formats: [...]}}`` -> ``("datetime", formats)``;
    ``{boolean: {true_values, false_values, mismatch_as}}`` -> ``("boolean", t, f, m)``.
    """
    if isinstance(raw, tuple):
        return raw
    if isinstance(raw, dict) and len(raw) == 1:
        (name, args), = raw.items()
    elif isinstance(raw, str):
        name, args = raw, None
    else:
        raise ValueError(f"column_type {raw!r} is not a type name or a one-key mapping.")
    kind = _TYPE_ALIASES.get(str(name).lower())
    if kind is None:
        raise ValueError(f"column_type {name!r} is not one of {', '.join(COLUMN_TYPES)}.")
    args = args or {}
    if not isinstance(args, dict):
        raise ValueError(f"column_type {name}: expected a mapping of options, got {args!r}.")
    if kind == "datetime":
        formats = args.get("formats", ())
        return ("datetime", (formats,) if isinstance(formats, str) else tuple(formats))
    if kind == "boolean":
        mismatch = str(args.get("mismatch_as", "error")).lower()
        if mismatch not in ("error", "true", "false"):
            raise ValueError(f"boolean mismatch_as {mismatch!r} is not error, true or false.")
        return ("boolean", tuple(str(v) for v in args.get("true_values", ("True", "true", "1"))),
                tuple(str(v) for v in args.get("false_values", ("False", "false", "0"))),
                mismatch)
    return (kind,)


def _convert(s: Any, spec: tuple) -> Any:
    import pandas as pd

    kind = spec[0]
    if kind in ("int", "float"):
        if s.dtype.kind not in "biuf":
            s = s.mask(s.astype("str").str.strip() == "")
        number = pd.to_numeric(s)
        return number.astype("Int64") if kind == "int" else number.astype("float64")
    if kind == "string":
        return s.astype("str").where(s.notna())
    if kind == "boolean":
        if s.dtype.kind == "b":
            return s.astype("boolean")
        text = s.astype("str")
        out = pd.Series(pd.NA, index=s.index, dtype="boolean")
        true, false = text.isin(spec[1]), text.isin(spec[2])
        out[true] = True
        out[false] = False
        mismatch = s.notna() & ~true & ~false
        if mismatch.any():
            if spec[3] == "error":
                raise ValueError(f"{text[mismatch].iloc[0]!r} is in neither true_values "
                                 f"{list(spec[1])} nor false_values {list(spec[2])}")
            out[mismatch] = spec[3] == "true"
        return out
    if s.dtype.kind == "M":
        return s
    formats = spec[1] or (None,)
    out = None
    for fmt in formats:
        parsed = pd.to_datetime(s, format=fmt, errors="coerce")
        out = parsed if out is None else out.fillna(parsed)
    bad = s.notna() & (s.astype("str") != "") & out.isna()
    if bad.any():
        raise ValueError(f"{s[bad].iloc[0]!r} matches none of the formats {list(spec[1])}")
    return out


# ------------------------------------------------------------------------- partition formats

_FIELD = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")
_DATETIME_TOKENS = (
    ("yyyy", r"\d{4}", "%Y"), ("MM", r"\d{2}", "%m"), ("dd", r"\d{2}", "%d"),
    ("HH", r"\d{2}", "%H"), ("mm", r"\d{2}", "%M"), ("ss", r"\d{2}", "%S"),
)


@functools.lru_cache(maxsize=64)
def _compile_format(fmt: str) -> tuple[Any, Any, Any, tuple[tuple[str, str | None], ...]]:
    parts: list[str] = []
    fields: list[tuple[str, str | None]] = []
    body = fmt.lstrip("/")
    pos = 0
    for m in _FIELD.finditer(body):
        parts.append(re.escape(body[pos:m.start()]))
        group = f"f{len(fields)}"
        if m.group(2):
            rx, strftime = _datetime_pattern(m.group(2))
            parts.append(f"(?P<{group}>{rx})")
        else:
            parts.append(f"(?P<{group}>[^/]+)")
            strftime = None
        fields.append((m.group(1).strip(), strftime))
        pos = m.end()
    parts.append(re.escape(body[pos:]))
    core = "".join(parts)
    return (re.compile(core), re.compile(f"(?:^|/){core}$"),
            re.compile(f"(?:^|/){core}(?=/|$)"), tuple(fields))


def _datetime_pattern(spec: str) -> tuple[str, str]:
    rx, strftime, i = [], [], 0
    while i < len(spec):
        for token, token_rx, token_strftime in _DATETIME_TOKENS:
            if spec.startswith(token, i):
                rx.append(token_rx)
                strftime.append(token_strftime)
                i += len(token)
                break
        else:
            rx.append(re.escape(spec[i]))
            strftime.append(spec[i].replace("%", "%%"))
            i += 1
    return "".join(rx), "".join(strftime)


def partition_fields(fmt: str) -> list[tuple[str, str | None]]:
    """The ``{fields}`` of a partition format, each with its strftime format if a datetime."""
    seen: dict[str, str | None] = {}
    for name, strftime in _compile_format(fmt)[3]:
        seen.setdefault(name, strftime)
    return list(seen.items())


def parse_partition_path(fmt: str, path: str, root: str | None = None) -> dict[str, str] | None:
    """The field values of ``path`` under a format such as ``{Store}/{Brand}/{name}.csv``.

    The format is matched against the path relative to ``root`` first, then against the end of
    the path, then against any run of whole folders (``/year={y}/month={m}`` style). Values are
    the folder text as is (datetime fields too). None when the path does not match.
    """
    full, tail, folders, fields = _compile_format(fmt)
    p = path.replace("\\", "/")
    m = None
    if root:
        r = root.replace("\\", "/").rstrip("/") + "/"
        if p.startswith(r):
            m = full.fullmatch(p[len(r):])
    m = m or tail.search(p) or folders.search(p)
    if m is None:
        return None
    values: dict[str, str] = {}
    for i, (name, _) in enumerate(fields):
        values.setdefault(name, m.group(f"f{i}"))
    return values


# ---------------------------------------------------------------------------------- filter

_FILTER_NODES = (
    "Expression", "BoolOp", "And", "Or", "UnaryOp", "Not", "USub", "UAdd", "Compare", "Eq",
    "NotEq", "Lt", "LtE", "Gt", "GtE", "BinOp", "Add", "Sub", "Mult", "Div", "Mod", "Constant",
    "Call", "Name", "Load",
)


@functools.lru_cache(maxsize=32)
def compile_filter(expr: str) -> Callable[[Any], Any]:
    """An MLTable ``filter`` expression (``col("a") > 1 and col("b") == "x"``) as a function
    from a DataFrame to a row mask. Parsed with ``ast`` into a small whitelist; never eval'ed.
    """
    import ast

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"filter {expr!r} is not a valid expression: {e.msg}") from None
    for node in ast.walk(tree):
        if type(node).__name__ not in _FILTER_NODES:
            raise ValueError(f"filter {expr!r}: {type(node).__name__} is not supported; use "
                             "col(\"name\"), constants, datetime(...), comparisons, + - * / %, "
                             "and, or, not.")
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in ("col", "datetime")
            and not node.keywords and all(isinstance(a, ast.Constant) for a in node.args)
        ):
            raise ValueError(f"filter {expr!r}: only col(\"name\") and datetime(y, m, d, ...) "
                             "calls with constant arguments are supported.")
        if isinstance(node, ast.Name) and node.id not in ("col", "datetime"):
            raise ValueError(f"filter {expr!r}: unknown name {node.id!r}; refer to columns as "
                             f"col({node.id!r}).")
    return functools.partial(_eval_filter, tree.body, expr)


def _eval_filter(node: Any, expr: str, df: Any) -> Any:
    import ast
    import operator

    import pandas as pd

    def ev(n: Any) -> Any:
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Call):
            args = [a.value for a in n.args]
            if n.func.id == "datetime":
                return pd.Timestamp(*args)
            if len(args) != 1 or args[0] not in df.columns:
                raise ValueError(f"filter {expr!r}: no column {args!r} (columns: "
                                 f"{list(df.columns)}).")
            return df[args[0]]
        if isinstance(n, ast.BoolOp):
            values = [_mask(ev(v)) for v in n.values]
            op = operator.and_ if isinstance(n.op, ast.And) else operator.or_
            return functools.reduce(op, values)
        if isinstance(n, ast.UnaryOp):
            value = ev(n.operand)
            if isinstance(n.op, ast.Not):
                return ~_mask(value) if hasattr(value, "fillna") else not value
            return -value if isinstance(n.op, ast.USub) else value
        if isinstance(n, ast.BinOp):
            return _BINOPS[type(n.op).__name__](ev(n.left), ev(n.right))
        if isinstance(n, ast.Compare):
            left, result = ev(n.left), None
            for op, right_node in zip(n.ops, n.comparators, strict=True):
                right = ev(right_node)
                part = _mask(_COMPARE[type(op).__name__](left, right))
                result = part if result is None else result & part
                left = right
            return result
        raise ValueError(f"filter {expr!r}: cannot evaluate {type(n).__name__}.")

    return ev(node)


def _mask(value: Any) -> Any:
    return value.fillna(False).astype(bool) if hasattr(value, "fillna") else bool(value)


def _binops() -> dict[str, Callable[[Any, Any], Any]]:
    import operator

    return {"Add": operator.add, "Sub": operator.sub, "Mult": operator.mul,
            "Div": operator.truediv, "Mod": operator.mod}


def _compares() -> dict[str, Callable[[Any, Any], Any]]:
    import operator

    return {"Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt, "LtE": operator.le,
            "Gt": operator.gt, "GtE": operator.ge}


_BINOPS = _binops()
_COMPARE = _compares()


# ---------------------------------------------------------------------------------- files


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _compression(path: str) -> str | None:
    return _COMPRESSED.get(os.path.splitext(path.lower())[1])


def _decompressing(raw: Any, path: str) -> Any:
    kind = _compression(path)
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw)
    if kind == "bz2":
        import bz2

        return bz2.BZ2File(raw)
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(raw)
    if kind == "zip":
        import zipfile

        archive = zipfile.ZipFile(raw)
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise ValueError(f"{path}: a zip input must hold exactly one file, not {len(names)}.")
        return archive.open(names[0])
    try:
        import zstandard
    except ImportError:
        raise ValueError(f"{path}: reading .zst files needs the zstandard package "
                         "(pip install zstandard).") from None
    return zstandard.ZstdDecompressor().stream_reader(raw)


def _local(path: str) -> str:
    if path.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(path).path)
    return path


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _open(path: str) -> Any:
    if _is_remote(path):
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(_local(path), "rb")  # noqa: SIM115 - returned to a with statement


def _size(path: str, what: str) -> int:
    try:
        if _is_remote(path):
            import fsspec

            fs, _, (p,) = fsspec.get_fs_token_paths(path)
            return int(fs.size(p))
        return os.path.getsize(_local(path))
    except (OSError, ValueError) as e:
        raise InputError(f"{what}: cannot read {path}: {e}") from None
