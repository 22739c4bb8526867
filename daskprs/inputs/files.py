"""File-list inputs: folders (recursive, sorted), single files, glob patterns, fsspec URLs."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import _filehash
from .._filehash import fingerprint_files
from ..errors import InputError

if TYPE_CHECKING:  # user-code processes import this module: keep it light
    from concurrent.futures import Future

_GLOB_CHARS = set("*?[")
BACKGROUND_MIN_FILES = 5_000  # below this a helper process costs more than it saves
LISTING_SLICE = 10_000  # paths encoded at a time for the helper


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
    check_exists(path, what)
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


def check_exists(path: str, what: str = "input") -> None:
    """Refuse a local path that does not exist (URLs and glob patterns are listed instead)."""
    if not is_url(path) and not _GLOB_CHARS & set(path) and not os.path.exists(path):
        raise InputError(f"{what}: {path} does not exist. Check the path, or set it with --set.")


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


def fingerprint_files_later(paths: list[str],
                            then: Callable[[str], str] = str) -> Future[str]:
    """``then(fingerprint_files(paths))``, hashed by a helper process while the caller goes on.

    A ``stat`` per file (4 us each on a local disk here, far more on a network file system)
    is most of the time it takes to plan a large folder. The run does not wait for it: the
    driver records the fingerprint in the journal once it is ready (``execute``). Falls back to
    hashing in this process (in the waiting thread) if the helper fails.
    """
    from concurrent.futures import Future

    future: Future[str] = Future()
    if len(paths) < BACKGROUND_MIN_FILES or is_url(paths[0]):
        future.set_result(then(fingerprint_files(paths)))
        return future
    helper = _Helper(paths)

    def wait() -> None:
        try:
            future.set_result(then(helper()))
        except BaseException as e:  # noqa: BLE001 - handed to whoever reads the result
            future.set_exception(e)

    threading.Thread(target=wait, name="daskprs-fingerprint", daemon=True).start()
    return future


class _Helper:
    """One helper process hashing a file list written to a temporary file."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.value: str | None = None
        self.proc: subprocess.Popen | None = None
        fd, self.listing = tempfile.mkstemp(prefix="daskprs-paths-")
        with os.fdopen(fd, "wb") as f:
            # NUL-separated, a slice at a time: joining a million paths at once would hold
            # two more copies of them (text and bytes) at the driver's peak.
            for i in range(0, len(paths), LISTING_SLICE):
                f.write(os.fsencode(("\0" if i else "") + "\0".join(paths[i:i + LISTING_SLICE])))
        try:  # a standard-library-only script (-S: no site-packages to set up)
            self.proc = subprocess.Popen(
                [sys.executable, "-S", _filehash.__file__, self.listing],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            pass
        weakref.finalize(self, _discard, self.proc, self.listing)

    def __call__(self) -> str:
        if self.value is None:
            out = b""
            if self.proc is not None:
                out, _ = self.proc.communicate()
            _discard(None, self.listing)
            text = out.decode("ascii", "replace").strip()
            ok = self.proc is not None and self.proc.returncode == 0 and len(text) == 40
            self.value = text if ok else fingerprint_files(self.paths)
        return self.value


def _discard(proc: subprocess.Popen | None, listing: str) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    try:
        os.unlink(listing)
    except OSError:
        pass
