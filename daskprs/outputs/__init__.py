"""Outputs: merge committed per-chunk parts into the final append_row file, in input order.

Rows are formatted on the workers (``entry_script.format_rows``) and written once per chunk;
here the driver only copies byte ranges, in plan order, each committed mini-batch exactly once.
The target is replaced atomically, so a reader never sees a half-merged file.
"""

from __future__ import annotations

import os

from ..rundir import State

_COPY = 1 << 20


def merge_append_row(state: State, parts_dir: str, target: str, header: bool) -> int:
    """Write the final output file; returns the number of bytes of rows written."""
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = f"{target}.daskprs-tmp"
    written = 0
    with open(tmp, "wb") as out:
        if header and state.header:
            out.write(state.header)
        handle = None
        current = None
        for part, offset, length in state.ranges():
            if part != current:
                if handle:
                    handle.close()
                handle = open(os.path.join(parts_dir, part), "rb")  # noqa: SIM115
                current = part
            handle.seek(offset)
            remaining = length
            while remaining:
                block = handle.read(min(remaining, _COPY))
                if not block:
                    raise OSError(f"part file {part} is shorter than its journal entry")
                out.write(block)
                remaining -= len(block)
            written += length
        if handle:
            handle.close()
    os.replace(tmp, target)
    return written
