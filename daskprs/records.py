"""The text of the report and journal rows of mini-batches that succeeded.

A job of many tiny mini-batches commits tens of thousands of rows a second, and the driver
process, which commits them all, was the bottleneck. So the user-code process that ran the
mini-batches (mostly idle while run() is cheap) formats their rows, and the driver checks the
chunk and writes the text as it is. Rows of failures are rare and written by the driver
(``execute``). No heavy imports: this module is loaded by every user-code process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from .plan import minibatch_id

# processed_mini-batches.csv, one row per mini-batch attempt
CSV_FIELDS = ["mini_batch_id", "index", "attempt", "status", "items", "succeeded", "failed",
              "worker", "process", "start", "duration_s", "bytes_read", "error"]


def csv_field(text: str) -> str:
    """One field as the csv module would write it (quoted only if it must be)."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def timestamp(t: float) -> str:
    """UTC with milliseconds, as the report's ``start`` column shows it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def ok_rows(rows: Sequence[tuple], items: Sequence[tuple], worker: str, process: str,
            offset: int) -> tuple[str, str] | None:
    """(report lines, journal rows as JSON without the brackets) for ``rows`` (child result
    rows, see ``_child.RESULT_FIELDS``) of ``items`` (the work items they ran, in order), whose
    output starts at byte ``offset`` of the chunk's part file; None unless every row is ``ok``
    and returned a result per input (anything else is committed by the driver, row by row).

    Rows are formatted with ``%`` rather than ``csv``/``json`` (a few microseconds a row, the
    largest per-mini-batch cost of a tiny job): ids (``minibatch_id``) are digits, a dash and
    hex digits, so they need no quoting in either format; the names that might are quoted once.
    """
    worker, process_csv, process_json = (
        t.replace("%", "%%") for t in (csv_field(worker), csv_field(process), json.dumps(process)))
    line = f"%s,%d,%d,succeeded,%d,%d,0,{worker},{process_csv},%s.%03dZ,%.4f,%d,\r\n"
    entry = f'[%d,%d,"ok",%d,%d,%d,%d,{process_json},"%s"]'
    report: list[str] = []
    journal: list[str] = []
    second, prefix = -1, ""
    for row, item in zip(rows, items, strict=True):
        index, status, n_items, succeeded, data, _, _, _, _, start, dur, nbytes = row
        if status != "ok" or n_items != succeeded:
            return None
        whole = int(start)
        if whole != second:  # one strftime per second, not per row
            second, prefix = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        mb_id, attempt, size = item[1] or minibatch_id(index, item[3], item[4]), item[2], len(data)
        report.append(line % (mb_id, index, attempt, n_items, succeeded, prefix,
                              int((start - whole) * 1000), dur, nbytes))
        journal.append(entry % (index, attempt, n_items, succeeded, offset, size, mb_id))
        offset += size
    return "".join(report), ",".join(journal)
