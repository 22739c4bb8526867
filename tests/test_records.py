"""Rows formatted by user-code processes (records.ok_rows) read back like the driver's own."""

import csv
import io
import json

from daskprs.records import CSV_FIELDS, ok_rows, timestamp
from daskprs.rundir import Journal


def _row(index, data=b"x\n", status="ok", items=1, succeeded=1, start=1_700_000_000.25):
    return (index, status, items, succeeded, data, b"", None, None, None, start, 0.00012, 7)


def test_ok_rows_read_back_with_the_csv_module_and_json():
    rows = [_row(3, b"a b\n"), _row(4, b"cc\n", items=2, succeeded=2, start=1_700_000_001.999)]
    items = [(3, "000003-aa", 1, ("files", ("x",)), None), (4, "000004-bb", 2, None, None)]
    report, journal = ok_rows(rows, items, 'tcp://[fe80::1%eth0]/1,"2"', "process%d", offset=10)
    parsed = list(csv.reader(io.StringIO(report, newline="")))
    assert [len(r) for r in parsed] == [len(CSV_FIELDS)] * 2
    first = dict(zip(CSV_FIELDS, parsed[0], strict=True))
    assert first["mini_batch_id"] == "000003-aa" and first["attempt"] == "1"
    assert first["worker"] == 'tcp://[fe80::1%eth0]/1,"2"'  # quoted as csv.writer would
    assert first["process"] == "process%d"  # a % in a name is text, not a format
    assert first["start"] == timestamp(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"
    assert parsed[1][9] == "2023-11-14T22:13:21.999Z" and parsed[1][10] == "0.0001"
    assert json.loads(f"[{journal}]") == [
        [3, 1, "ok", 1, 1, 10, 4, "process%d", "000003-aa"],
        [4, 2, "ok", 2, 2, 14, 3, "process%d", "000004-bb"],
    ]


def test_ok_rows_leaves_failures_and_short_returns_to_the_driver():
    items = [(0, "id", 1, None, None)]
    assert ok_rows([_row(0, status="failed")], items, "w", "p", 0) is None
    assert ok_rows([_row(0, items=3, succeeded=2)], items, "w", "p", 0) is None


def test_journal_append_rows_writes_one_replayable_line(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    j = Journal(path)
    j.append_rows({"t": "chunk", "part": "p.part", "h": ""}, '[1,1,"ok",1,1,0,2,"p","i"]')
    j.append_rows({"t": "chunk", "part": None, "h": ""}, "")
    j.close()
    records = list(Journal.replay(path))
    assert records[0]["rows"] == [[1, 1, "ok", 1, 1, 0, 2, "p", "i"]]
    assert records[1] == {"t": "chunk", "part": None, "h": "", "rows": []}


def test_minibatch_ids_do_not_change_between_versions():
    # Journals keep these ids and `resume --force` reuses a mini-batch only if its id is
    # unchanged, so a faster id must be the same id (values from the first released form).
    from daskprs.plan import minibatch_id

    assert minibatch_id(7, ("files", ("/d/a.txt",))) == "000007-cbbe7021"
    assert minibatch_id(1234567, ("files", ("/d/a.txt", "/d/b.txt"))) == "1234567-3d8a1ccc"
    assert minibatch_id(3, ("files", ())) == "000003-00000000"
    assert minibatch_id(12, ("range", "/d/t.csv", 0, 100)) == "000012-3e353661"
    assert minibatch_id(4, ("files", ("/d/a.txt",)), {"store": "1"}) == "000004-08c5fdfe"
