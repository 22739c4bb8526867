"""MLTable files: a file list plus how to read it (Azure's ``reference-yaml-mltable``).

``paths:`` (``file:``, ``folder:``, ``pattern:``, relative to the MLTable's folder, or URIs)
expand to a sorted file list. A ``read_delimited`` / ``read_parquet`` / ``read_json_lines``
transform makes it a table; without one it is a list of files. The other transforms are kept,
frozen and in order, for the loader (``tabular.apply_transforms``). Files written by Azure's
``mltable`` package (``type: mltable``, ``$schema``, ``file://`` URIs, extra reader options such
as ``partition_size``) load as they are.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..plan import Reader
from ..spec import closest
from .files import is_url, list_files
from .tabular import (
    ENCODINGS,
    HEADER_MODES,
    SUPPORTED_TRANSFORMS,
    column_type_spec,
    compile_filter,
    partition_fields,
)

_READERS = {"read_delimited": "delimited", "read_parquet": "parquet",
            "read_json_lines": "json_lines"}
_READER_OPTIONS = {
    "delimited": ("delimiter", "encoding", "header", "infer_column_types", "empty_as_string",
                  "include_path_column", "path_column", "support_multi_line", "partition_size"),
    "parquet": ("include_path_column", "path_column"),
    "json_lines": ("invalid_lines", "encoding", "include_path_column", "path_column",
                   "partition_size"),
}
_TOP_LEVEL = ("$schema", "type", "paths", "transformations", "transforms", "traits", "metadata",
              "description", "tags", "version")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class MLTable:
    """A parsed MLTable: how to read (``reader``) and what (``paths``, expanded and sorted)."""

    file: str
    reader: Reader
    paths: list[str]


def read_mltable(mltable_file: str, *, what: str) -> MLTable:
    """Parse an MLTable file and expand its paths (a listing; no data file is opened).

    Raises ``InputError`` naming the MLTable for bad YAML, unknown transforms or options, and
    paths that do not exist.
    """
    import yaml

    where = f"{what}: MLTable {mltable_file}"
    try:
        with open(mltable_file, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise InputError(f"{where}: cannot read it: {e.strerror}.") from None
    except yaml.YAMLError as e:
        raise InputError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{where}: expected a mapping with paths: and transformations:.")
    for key in doc:
        if key not in _TOP_LEVEL:
            raise InputError(f"{where}: unknown key {key!r}.{closest(str(key), _TOP_LEVEL)}")
    if doc.get("type", "mltable") != "mltable":
        raise InputError(f"{where}: type is {doc['type']!r}; an MLTable has type: mltable.")
    if "transformations" in doc and "transforms" in doc:
        raise InputError(f"{where}: give transformations: or transforms:, not both.")

    base = os.path.dirname(os.path.abspath(mltable_file))
    entries = doc.get("paths")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{where}: paths: must be a non-empty list of file:, folder: or "
                         "pattern: entries.")
    paths: set[str] = set()
    roots: list[str] = []
    for entry in entries:
        found, root = _expand(entry, base, where)
        paths.update(found)
        roots.append(root)
    own = os.path.abspath(mltable_file)
    files = sorted(p for p in paths if is_url(p) or os.path.abspath(p) != own)
    if not files:
        raise InputError(f"{where}: paths: match no data files.")

    steps = doc.get("transformations", doc.get("transforms")) or []
    if not isinstance(steps, list):
        raise InputError(f"{where}: transformations: must be a list.")
    fmt, options, transforms = "files", {}, []
    partition_format = None
    for step in steps:
        name, arg = _step(step, where)
        if name in _READERS:
            if fmt != "files":
                raise InputError(f"{where}: more than one read transform ({name}); keep one.")
            fmt, options = _READERS[name], _reader_options(name, _READERS[name], arg, where)
        elif name == "read_delta_lake":
            raise InputError(f"{where}: read_delta_lake is not supported by daskprs; export the "
                             "table to Parquet and use read_parquet.")
        elif name in SUPPORTED_TRANSFORMS:
            frozen = _freeze(name, arg, where)
            if name == "extract_columns_from_partition_format":
                partition_format = frozen
            transforms.append((name, frozen))
        else:
            raise InputError(f"{where}: unknown transform {name!r}."
                             f"{closest(name, [*_READERS, *SUPPORTED_TRANSFORMS])} Supported: "
                             f"{', '.join([*_READERS, *SUPPORTED_TRANSFORMS])}.")
    if fmt == "files":
        files, transforms = _file_list_transforms(files, transforms, where)
    reader = Reader(format=fmt, options=options, transforms=tuple(transforms),
                    partition_format=partition_format,
                    root=_common_root(roots) if partition_format else None)
    return MLTable(file=mltable_file, reader=reader, paths=files)


def _expand(entry: Any, base: str, where: str) -> tuple[list[str], str]:
    """The files of one ``paths:`` entry, and the folder a partition format is relative to."""
    if not isinstance(entry, dict) or len(entry) != 1:
        raise InputError(f"{where}: each paths: entry must be one of file:, folder: or "
                         f"pattern:, got {entry!r}.")
    (kind, raw), = entry.items()
    if kind not in ("file", "folder", "pattern") or not isinstance(raw, str) or not raw:
        raise InputError(f"{where}: paths: entry {entry!r} must be file:, folder: or pattern: "
                         "with a path.")
    context = f"{where}, {kind}: {raw}"
    path = _resolve(raw, base)
    if is_url(path):
        root = {"folder": path.rstrip("/"), "pattern": _glob_base(path)}.get(kind, base)
        return list_files(path, what=context), root
    if kind == "pattern":
        pattern = os.path.normpath(path)
        found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not found:
            raise InputError(f"{context}: the pattern matches no files. Fix the pattern in the "
                             "MLTable file.")
        return found, _glob_base(pattern)
    path = os.path.normpath(path)
    if not os.path.exists(path):
        raise InputError(f"{context}: {path} does not exist. Fix the path in the MLTable file, "
                         "or create it.")
    if kind == "file":
        if os.path.isdir(path):
            raise InputError(f"{context}: {path} is a folder; use folder: for it.")
        return [path], base
    if not os.path.isdir(path):
        raise InputError(f"{context}: {path} is a file; use file: for it.")
    return list_files(path, what=context), path


def _resolve(raw: str, base: str) -> str:
    if raw.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(raw).path)
    if is_url(raw) or os.path.isabs(raw):
        return raw
    return os.path.join(base, raw)


def _glob_base(pattern: str) -> str:
    """The folders of a pattern before its first wildcard (``data/**/*.csv`` -> ``data``)."""
    parts = pattern.replace("\\", "/").split("/")
    for i, part in enumerate(parts):
        if _GLOB_CHARS & set(part):
            return "/".join(parts[:i]) or "/"
    return "/".join(parts[:-1]) or "/"


def _common_root(roots: list[str]) -> str:
    if len(set(roots)) == 1:
        return roots[0]
    if any(is_url(r) for r in roots):
        prefix = os.path.commonprefix([r.rstrip("/") + "/" for r in roots])
        return prefix[:prefix.rfind("/")]
    return os.path.commonpath(roots)


def _step(step: Any, where: str) -> tuple[str, Any]:
    if isinstance(step, str):
        return step, None
    if isinstance(step, dict) and len(step) == 1:
        (name, arg), = step.items()
        return str(name), arg
    raise InputError(f"{where}: each transformation must be one name with its arguments, e.g. "
                     f"'- keep_columns: [a, b]', got {step!r}.")


def _reader_options(name: str, fmt: str, arg: Any, where: str) -> dict[str, Any]:
    if arg is None:
        return {}
    if not isinstance(arg, dict):
        raise InputError(f"{where}: {name} takes a mapping of options, got {arg!r}.")
    known = _READER_OPTIONS[fmt]
    for key in arg:
        if key not in known:
            raise InputError(f"{where}: {name} has no option {key!r}.{closest(str(key), known)} "
                             f"Options: {', '.join(known)}.")
    options = {k: v for k, v in arg.items() if v is not None}
    if "encoding" in options:
        key = str(options["encoding"]).lower().replace("-", "").replace("_", "")
        if key not in ENCODINGS:
            raise InputError(f"{where}: {name} encoding {options['encoding']!r} is not one of "
                             f"{', '.join(ENCODINGS)}.")
    if options.get("header", HEADER_MODES[0]) not in HEADER_MODES:
        raise InputError(f"{where}: {name} header {options['header']!r} is not one of "
                         f"{', '.join(HEADER_MODES)}.")
    if options.get("invalid_lines", "error") not in ("error", "drop"):
        raise InputError(f"{where}: {name} invalid_lines {options['invalid_lines']!r} must be "
                         "error or drop.")
    return options


def _freeze(name: str, arg: Any, where: str) -> Any:
    """A transform's argument, validated and made hashable (tuples, strings, numbers)."""
    try:
        if name in ("keep_columns", "drop_columns"):
            columns = [arg] if isinstance(arg, str) else arg
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise ValueError(f"expected a column name or a list of names, got {arg!r}")
            return tuple(columns)
        if name == "convert_column_types":
            items = arg if isinstance(arg, list) else [arg]
            out = []
            for item in items:
                if not isinstance(item, dict) or set(item) != {"columns", "column_type"}:
                    raise ValueError(f"each entry needs columns: and column_type:, got {item!r}")
                columns = item["columns"]
                columns = (columns,) if isinstance(columns, str) else tuple(columns)
                out.append((columns, column_type_spec(item["column_type"])))
            return tuple(out)
        if name == "extract_columns_from_partition_format":
            fmt = _partition_format(arg)
            if not partition_fields(fmt):
                raise ValueError(f"the format {fmt!r} names no {{column}}")
            return fmt
        if name == "filter":
            if not isinstance(arg, str):
                raise ValueError(f"expected an expression string, got {arg!r}")
            compile_filter(arg)
            return arg
        if name in ("take", "skip"):
            if isinstance(arg, bool) or not isinstance(arg, int) or arg < 0:
                raise ValueError(f"expected a count >= 0, got {arg!r}")
            return arg
        if name == "take_random_sample":
            if not isinstance(arg, dict) or "probability" not in arg:
                raise ValueError(f"expected probability: (and optionally seed:), got {arg!r}")
            probability = float(arg["probability"])
            if not 0 <= probability <= 1:
                raise ValueError(f"probability {probability} is not between 0 and 1")
            return (probability, arg.get("seed"))
    except (ValueError, TypeError) as e:
        message = str(e).rstrip(".")
        if not message.startswith(name):
            message = f"{name}: {message}"
        raise InputError(f"{where}: {message}.") from None
    raise InputError(f"{where}: unsupported transform {name!r}.")


def _partition_format(arg: Any) -> str:
    if isinstance(arg, str):
        return arg
    if isinstance(arg, dict):
        if isinstance(arg.get("partition_format"), str):
            return arg["partition_format"]
        # YAML reads an unquoted {Store}/{Brand}... as a flow mapping: {"Store": None} and
        # the like. Rebuild the text when it is a single such key.
        if len(arg) == 1:
            (key, value), = arg.items()
            if value is None:
                return "{" + str(key) + "}"
    raise ValueError(f"expected a format string such as '{{Store}}/{{Brand}}/{{file}}.csv', got "
                     f"{arg!r} (quote the format in YAML)")


def _file_list_transforms(
    files: list[str], transforms: list[tuple[str, Any]], where: str
) -> tuple[list[str], list[tuple[str, Any]]]:
    """Without a read transform the table is its list of files: skip/take select paths."""
    kept = []
    for name, arg in transforms:
        if name == "skip":
            files = files[arg:]
        elif name == "take":
            files = files[:arg]
        elif name == "extract_columns_from_partition_format":
            kept.append((name, arg))
        else:
            raise InputError(f"{where}: {name} needs a read_delimited, read_parquet or "
                             "read_json_lines transform; without one the MLTable is a list of "
                             "files, and only skip, take and extract_columns_from_partition_"
                             "format apply.")
    if not files:
        raise InputError(f"{where}: skip/take leave no files.")
    return files, kept
