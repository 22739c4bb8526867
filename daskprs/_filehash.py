"""A hash of a file list: its paths, sizes and modification times (local files only stat'ed).

Standard library only: ``inputs.files`` also runs this file as a helper script
(``python -S _filehash.py LISTING``) to hash a large folder while the driver starts.
"""

from __future__ import annotations

import hashlib
import os
import sys


def fingerprint_files(paths: list[str]) -> str:
    """SHA-1 hex digest over each path with its size and mtime (URLs: the path only)."""
    h = hashlib.sha1()
    for p in paths:
        h.update(p.encode())
        if "://" not in p:
            try:
                st = os.stat(p)
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                pass
        h.update(b"\0")
    return h.hexdigest()


def main(listing: str) -> None:
    """Hash the NUL-separated paths in the file ``listing``; print the hex digest."""
    with open(listing, "rb") as f:
        paths = [os.fsdecode(p) for p in f.read().split(b"\0")]
    print(fingerprint_files(paths))


if __name__ == "__main__":
    main(sys.argv[1])
