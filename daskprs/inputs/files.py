"""File-list inputs: folders (recursive, sorted), single files, glob patterns, fsspec URLs."""

from __future__ import annotations

import glob
import hashlib
import os

from ..errors import InputError

_GLOB_CHARS = set("*?[")


def is_url(path: str) -> bool:
    return "://" in path


def list_files(path: str, *, what: str = "input") -> list[str]:
    """Every file under ``path``: a folder (recursive), a file, or a glob pattern; sorted.

    Hidden files and folders (``.name``) are skipped, as a mounted dataset would not list them.
    """
    if is_url(path):
        return _list_url(path, what)
    if _GLOB_CHARS & set(path):
        found = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        if not found:
            raise InputError(f"{what}: the pattern {path!r} matches no files.")
        return found
    if os.path.isfile(path):
        return [path]
    if not os.path.exists(path):
        raise InputError(f"{what}: {path} does not exist. Check the path, or set it with --set.")
    found = []
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:  # streamed: a million DirEntry objects add up
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=True):
                        stack.append(entry.path)
                    else:
                        found.append(entry.path)
        except OSError as e:
            raise InputError(f"{what}: cannot list {folder}: {e.strerror}.") from None
    found.sort()
    if not found:
        raise InputError(f"{what}: the folder {path} holds no files.")
    return found


def _list_url(url: str, what: str) -> list[str]:
    import fsspec

    try:
        fs, _, paths = fsspec.get_fs_token_paths(url)
        found = []
        for p in paths:
            if fs.isdir(p):
                found.extend(f for f in fs.find(p) if not os.path.basename(f).startswith("."))
            elif fs.exists(p):
                found.append(p)
    except Exception as e:  # noqa: BLE001 - any backend error is an input problem here
        raise InputError(f"{what}: cannot list {url}: {e}") from None
    if not found:
        raise InputError(f"{what}: {url} holds no files.")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return sorted(p if "://" in p else f"{protocol}://{p}" for p in found)


def fingerprint_files(paths: list[str]) -> str:
    """A hash of the paths, sizes and modification times (local files only stat'ed)."""
    h = hashlib.sha1()
    for p in paths:
        h.update(p.encode())
        if not is_url(p):
            try:
                st = os.stat(p)
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                pass
        h.update(b"\0")
    return h.hexdigest()
