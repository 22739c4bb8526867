"""Tabular mini-batches: byte ranges cut at line starts, Parquet row groups, reader options and
MLTable transforms, all on real files."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daskprs.errors import InputError
from daskprs.inputs import tabular
from daskprs.inputs.tabular import load_tabular, parse_partition_path, plan_tabular
from daskprs.plan import Reader

MB = 1024 * 1024
CSV = Reader(format="delimited", options={})


def csv_reader(**options) -> Reader:
    return Reader(format="delimited", options=options)


def load_all(plan, reader) -> pd.DataFrame:
    return pd.concat([load_tabular(p, reader) for p, _ in plan], ignore_index=True)


def counted(fn):
    before = tabular.bytes_read
    result = fn()
    return result, tabular.bytes_read - before


def write(path, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n),
        "value": rng.random(n).round(6),
        "name": [f"item-{i % 977}" for i in range(n)],
        "count": rng.integers(0, 1000, n),
    })


def assert_ranges_cover(plan, sizes: dict[str, int]) -> None:
    """Ranges of each file are contiguous, disjoint, in order and cover the whole file."""
    by_file: dict[str, list[tuple[int, int]]] = {}
    for payload, est in plan:
        assert payload[0] == "range"
        assert est == payload[3] - payload[2] > 0
        by_file.setdefault(payload[1], []).append((payload[2], payload[3]))
    assert set(by_file) == set(sizes)
    for path, ranges in by_file.items():
        assert ranges[0][0] == 0 and ranges[-1][1] == sizes[path]
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_two_csvs_of_20mb_read_once_in_about_20_minibatches(tmp_path):
    files = []
    for i, n in enumerate((350_000, 360_000)):
        path = tmp_path / f"part{i}.csv"
        frame(n, seed=i).to_csv(path, index=False)
        files.append(str(path))
    sizes = {p: os.path.getsize(p) for p in files}
    total = sum(sizes.values())
    assert 16 * MB < total < 24 * MB

    plan = plan_tabular(files, CSV, MB, what="inputs.data")

    assert abs(len(plan) - total / MB) <= 2
    assert_ranges_cover(plan, sizes)
    for payload, _ in plan:  # every cut is a line start, and never inside another file
        path, start = payload[1], payload[2]
        if start:
            with open(path, "rb") as f:
                f.seek(start - 1)
                assert f.read(1) == b"\n"
        # later ranges carry the header; the first one reads it itself
        assert (payload[4] is None) == (start == 0)
    loaded, nbytes = counted(lambda: load_all(plan, CSV))
    expected = pd.concat([pd.read_csv(p) for p in files], ignore_index=True)
    assert len(loaded) == len(expected) == 710_000
    pd.testing.assert_frame_equal(loaded, expected)
    assert nbytes == total  # each byte read exactly once


def test_cuts_land_on_line_starts_for_odd_lines(tmp_path):
    long = "x" * 5000
    lines = [f"{i},{long if i % 7 == 0 else 'v' + str(i)}\r\n" for i in range(200)]
    text = "a,b\r\n" + "".join(lines) + "9,end"  # CRLF, long lines, no final newline
    path = write(tmp_path / "odd.csv", text)
    plan = plan_tabular([path], CSV, 3000, what="in")
    assert len(plan) > 10
    assert_ranges_cover(plan, {path: os.path.getsize(path)})
    loaded, nbytes = counted(lambda: load_all(plan, CSV))
    pd.testing.assert_frame_equal(loaded, pd.read_csv(path))
    assert nbytes == os.path.getsize(path)


def test_small_and_empty_files(tmp_path):
    small = write(tmp_path / "a.csv", "a,b\n1,2\n")
    empty = write(tmp_path / "b.csv", "")
    plan = plan_tabular([small, empty], CSV, MB, what="in")
    # a file smaller than the mini-batch size is one mini-batch; an empty file none
    assert plan == [(("range", small, 0, 8, None), 8)]


def test_header_modes(tmp_path):
    first = write(tmp_path / "1.csv", "a,b\n1,x\n2,y\n")
    second = write(tmp_path / "2.csv", "3,z\n4,w\n")
    reader = csv_reader(header="from_first_file")
    plan = plan_tabular([first, second], reader, 5, what="in")
    assert all(p[1] == first for p, _ in plan[:2])
    assert all(p[4] == b"a,b\n" for p, _ in plan if p[1] == second)
    df = load_all(plan, reader)
    assert list(df.columns) == ["a", "b"]
    assert df["a"].tolist() == [1, 2, 3, 4]

    reader = csv_reader(header="no_header")
    plan = plan_tabular([second], reader, 4, what="in")
    assert len(plan) == 2
    df = load_all(plan, reader)
    assert list(df.columns) == ["Column1", "Column2"]
    assert df["Column2"].tolist() == ["z", "w"]

    for mode in ("all_files_same_headers", "all_files_different_headers"):
        other = write(tmp_path / "3.csv", "c,d\n5,v\n")
        reader = csv_reader(header=mode)
        frames = [load_tabular(p, reader) for p, _ in
                  plan_tabular([first, other], reader, MB, what="in")]
        assert [list(f.columns) for f in frames] == [["a", "b"], ["c", "d"]]


def test_delimiter_encoding_and_bom(tmp_path):
    text = "name;city\nJosé;Zürich\nAnaïs;Besançon\n"
    latin = write(tmp_path / "l.csv", text.encode("latin-1"))
    df = load_all(plan_tabular([latin], csv_reader(delimiter=";", encoding="latin1"), 12,
                               what="in"), csv_reader(delimiter=";", encoding="latin1"))
    assert df["city"].tolist() == ["Zürich", "Besançon"]

    bom = write(tmp_path / "b.csv", b"\xef\xbb\xbf" + text.encode())
    reader = csv_reader(delimiter=";", encoding="utf8bom")
    plan = plan_tabular([bom], reader, 12, what="in")
    assert len(plan) > 1
    df = load_all(plan, reader)
    assert list(df.columns) == ["name", "city"] and df["name"].tolist() == ["José", "Anaïs"]

    tsv = write(tmp_path / "t.tsv", "a\tb\n1\t2\n")
    assert load_all(plan_tabular([tsv], CSV, MB, what="in"), CSV).to_dict("list") == {
        "a": [1], "b": [2]}


def test_unsplittable_files_are_whole_mini_batches(tmp_path):
    gz = tmp_path / "z.csv.gz"
    with gzip.open(gz, "wt") as f:
        f.write("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(2000)))
    multi = write(tmp_path / "m.csv", 'a,b\n1,"two\nlines"\n' + "2,x\n" * 500)
    wide = write(tmp_path / "w.csv", ("a,b\n" + "1,x\n" * 500).encode("utf-16"))

    plan = plan_tabular([str(gz)], CSV, 100, what="in")
    assert plan == [(("file", str(gz)), os.path.getsize(gz))]
    df, nbytes = counted(lambda: load_all(plan, CSV))
    assert len(df) == 2000 and nbytes == os.path.getsize(gz)

    reader = csv_reader(support_multi_line=True)
    plan = plan_tabular([multi], reader, 100, what="in")
    assert [p[0] for p, _ in plan] == ["file"]
    assert load_all(plan, reader)["b"].iloc[0] == "two\nlines"

    reader = csv_reader(encoding="utf16")
    plan = plan_tabular([wide], reader, 100, what="in")
    assert [p[0] for p, _ in plan] == ["file"] and len(load_all(plan, reader)) == 500


def multi_line_csv(n: int, every: int) -> str:
    """A CSV whose every ``every``-th record has a quoted value spanning three lines."""
    rows = [f'{i},"note {i}\nsecond line, with a comma\n"' if i % every == 0 else f"{i},plain {i}"
            for i in range(n)]
    return "id,text\n" + "\n".join(rows) + "\n"


def test_a_file_with_quoted_line_breaks_is_not_cut_without_support_multi_line(tmp_path, caplog):
    # Cut at line starts, such a file loses rows and gains garbage ones that pass as results.
    path = write(tmp_path / "notes.csv", multi_line_csv(20_000, every=50))
    with caplog.at_level("WARNING", logger="daskprs"):
        plan = plan_tabular([path], CSV, 20_000, what="in")
    assert plan == [(("range", path, 0, os.path.getsize(path), None), os.path.getsize(path))]
    assert "notes.csv: a quoted value spans lines" in caplog.text
    assert "support_multi_line: true" in caplog.text
    df = load_all(plan, CSV)
    pd.testing.assert_frame_equal(df, pd.read_csv(path))
    assert len(df) == 20_000 and df["text"].iloc[50] == "note 50\nsecond line, with a comma\n"

    # quotes that never span lines, and a later header file from_first_file, are still cut
    quoted = write(tmp_path / "quoted.csv", "id,text\n" + "".join(
        f'{i},"a, {i}"\n' for i in range(5_000)))
    plan = plan_tabular([quoted], CSV, 5_000, what="in")
    assert len(plan) > 10
    pd.testing.assert_frame_equal(load_all(plan, CSV), pd.read_csv(quoted))
    first = write(tmp_path / "1.csv", "id,text\n1,x\n")
    reader = csv_reader(header="from_first_file")
    later = write(tmp_path / "2.csv", multi_line_csv(2_000, every=10).split("\n", 1)[1])
    plan = plan_tabular([first, later], reader, 2_000, what="in")
    assert plan[-1] == (("range", later, 0, os.path.getsize(later), b"id,text\n"),
                        os.path.getsize(later))
    assert len(load_all(plan, reader)) == 2_001


def test_a_slice_that_may_have_cut_a_quoted_record_fails_with_the_fix(tmp_path):
    # Quoted line breaks the plan's sample did not see: the mini-batch fails, naming the
    # setting to change, rather than returning rows that may be halves of records.
    text = multi_line_csv(400, every=400)  # one multi-line record, the first
    path = write(tmp_path / "rare.csv", text)
    size = os.path.getsize(path)
    header = b"id,text\n"
    second = text.index("1,plain 1\n")
    inside = text.index("second line")
    whole = ("range", path, 0, size, None)
    assert load_tabular(whole, CSV)["text"].iloc[0].startswith("note 0\n")  # all of it: fine
    holds = ("range", path, 0, second, None)  # ends after the record: the record is whole
    with pytest.raises(ValueError, match=r"rare.csv \(bytes 0-\d+\): row 1 .* column 'text'"
                                         r".*support_multi_line: true"):
        load_tabular(holds, CSV)
    cut = ("range", path, 0, inside, None)  # ends inside the quoted value
    with pytest.raises(ValueError, match="not closed before the end of this mini-batch.*"
                                         "support_multi_line"):
        load_tabular(cut, CSV)
    rest = ("range", path, second, size, header)  # no quote: nothing to check, loads
    assert len(load_tabular(rest, CSV)) == 399
    broken = write(tmp_path / "open.csv", 'a,b\n1,"never closed\n2,x\n')
    with pytest.raises(ValueError, match="not closed before the end of this file.*Fix it"):
        load_tabular(("range", broken, 0, os.path.getsize(broken), None), CSV)


def test_types_empties_and_path_column(tmp_path):
    path = write(tmp_path / "t.csv", "code,n,note\n007,1,\n010,,hi\n")
    df = load_all(plan_tabular([path], CSV, MB, what="in"), CSV)
    assert df["code"].tolist() == [7, 10] and df["note"].isna().tolist() == [True, False]

    reader = csv_reader(infer_column_types=False)
    df = load_all(plan_tabular([path], reader, MB, what="in"), reader)
    assert df["code"].tolist() == ["007", "010"] and df["n"].iloc[0] == "1"
    assert pd.isna(df["n"].iloc[1])

    reader = csv_reader(empty_as_string=True)
    df = load_all(plan_tabular([path], reader, MB, what="in"), reader)
    assert df["note"].tolist() == ["", "hi"]
    assert df["n"].dtype.kind == "f" and pd.isna(df["n"].iloc[1])  # numbers stay numbers

    reader = csv_reader(include_path_column=True)
    df = load_all(plan_tabular([path], reader, 20, what="in"), reader)
    assert list(df.columns)[0] == "Path" and set(df["Path"]) == {path} and len(df) == 2


def test_transforms(tmp_path):
    (tmp_path / "2024" / "03").mkdir(parents=True)
    path = write(tmp_path / "2024" / "03" / "sales.csv",
                 "id,price,ok,day,extra\n1,2.5,yes,01/03/2024,a\n2,7,no,02/03/2024,b\n"
                 "3,11,yes,03/03/2024,c\n")
    transforms = (
        ("drop_columns", ("extra",)),
        ("convert_column_types", (
            (("price",), ("float",)), (("id",), ("string",)),
            (("ok",), ("boolean", ("yes",), ("no",), "error")),
            (("day",), ("datetime", ("%d/%m/%Y",))),
        )),
        ("extract_columns_from_partition_format", "{year}/{month}/{file_name}.csv"),
        ("filter", 'col("price") > 2 and not col("ok") == False'),
        ("keep_columns", ("id", "price", "ok", "day", "year", "file_name")),
    )
    reader = Reader(format="delimited", options={}, transforms=transforms, root=str(tmp_path))
    df = load_all(plan_tabular([path], reader, MB, what="in"), reader)
    assert df["id"].tolist() == ["1", "3"]
    assert df["price"].tolist() == [2.5, 11.0]
    assert df["ok"].tolist() == [True, True]
    assert df["day"].dt.day.tolist() == [1, 3]
    assert df["year"].tolist() == ["2024", "2024"] and df["file_name"].tolist() == ["sales"] * 2

    bad = Reader(format="delimited", transforms=(("convert_column_types", (
        (("ok",), ("boolean", ("yes",), ("nope",), "error")),)),), options={})
    with pytest.raises(ValueError, match=r"sales\.csv.*'ok'.*'no'"):
        load_all(plan_tabular([path], bad, MB, what="in"), bad)

    sample = Reader(format="delimited", options={},
                    transforms=(("take_random_sample", (0.5, 7)),))
    plan = plan_tabular([path], sample, MB, what="in")
    assert load_all(plan, sample).equals(load_all(plan, sample))  # a retry samples the same

    for name in ("take", "skip"):
        with pytest.raises(InputError, match=f"'{name}' applies to the whole table"):
            plan_tabular([path], Reader(format="delimited", transforms=((name, 1),)), MB,
                         what="inputs.data")


def test_partition_format_parsing():
    fmt = "{Store}/{Brand}/{file_name}.{extension}"
    assert parse_partition_path(fmt, "/r/1000/dom/part.data.csv", "/r") == {
        "Store": "1000", "Brand": "dom", "file_name": "part.data", "extension": "csv"}
    assert parse_partition_path(fmt, "/elsewhere/1000/dom/p.csv") == {
        "Store": "1000", "Brand": "dom", "file_name": "p", "extension": "csv"}
    assert parse_partition_path("/puYear={year}/puMonth={month}",
                                "/d/puYear=2019/puMonth=3/x.parquet") == {
        "year": "2019", "month": "3"}
    assert parse_partition_path("{day:yyyy/MM/dd}/{name}.json", "/d/2024/01/31/a.json", "/d") == {
        "day": "2024/01/31", "name": "a"}
    assert parse_partition_path("{a}/{b}.csv", "/x.csv") is None


def test_malformed_csv_names_the_file(tmp_path):
    path = write(tmp_path / "broken.csv", "a,b\n1,2\n3,4,5,6\n")
    plan = plan_tabular([path], CSV, MB, what="in")
    with pytest.raises(ValueError, match="broken.csv"):
        load_all(plan, CSV)


def test_parquet_row_groups(tmp_path):
    table = pa.table({"k": np.arange(10_000), "v": np.random.default_rng(1).random(10_000)})
    many = str(tmp_path / "many.parquet")
    pq.write_table(table, many, row_group_size=1000)
    one = str(tmp_path / "one.parquet")
    pq.write_table(table.slice(0, 500), one)
    pq.write_metadata(table.schema, tmp_path / "_common_metadata")
    write(tmp_path / "_SUCCESS", "")
    md = pq.ParquetFile(many).metadata
    rg_bytes = [sum(md.row_group(i).column(j).total_compressed_size for j in range(2))
                for i in range(md.num_row_groups)]
    batch = sum(rg_bytes[:3])  # three row groups reach it

    sidecars = [str(tmp_path / "_common_metadata"), str(tmp_path / "_SUCCESS")]
    plan = plan_tabular([*sidecars, many, one], Reader(format="parquet"), batch, what="in")

    assert [p[2] for p, _ in plan if p[1] == many] == [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9,)]
    assert [p for p, _ in plan if p[1] == one] == [("rowgroups", one, (0,))]
    assert sum(est for p, est in plan if p[1] == many) == sum(rg_bytes)
    reader = Reader(format="parquet", options={"include_path_column": True})
    df, nbytes = counted(lambda: load_all(plan, reader))
    assert df["k"].tolist() == list(range(10_000)) + list(range(500))
    assert df["Path"].iloc[0] == many and df["Path"].iloc[-1] == one
    assert nbytes == sum(est for _, est in plan)


def test_corrupt_parquet_fails_only_its_mini_batch(tmp_path):
    good = str(tmp_path / "a.parquet")
    pq.write_table(pa.table({"k": [1, 2]}), good)
    bad = write(tmp_path / "b.parquet", b"PAR1 this is not parquet at all PAR1")
    reader = Reader(format="parquet")
    plan = plan_tabular([good, bad], reader, MB, what="in")
    assert plan[1][0] == ("file", bad)
    assert load_tabular(plan[0][0], reader)["k"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="b.parquet.*Parquet"):
        load_tabular(plan[1][0], reader)


def test_json_lines(tmp_path):
    rows = [f'{{"id": {i}, "code": "{i:03d}", "tags": ["t{i}"]}}' for i in range(300)]
    path = write(tmp_path / "d.jsonl", "\n".join(rows) + "\n")
    reader = Reader(format="json_lines", options={"include_path_column": True})
    plan = plan_tabular([path], reader, 1000, what="in")
    assert len(plan) > 5
    assert_ranges_cover(plan, {path: os.path.getsize(path)})
    df, nbytes = counted(lambda: load_all(plan, reader))
    assert nbytes == os.path.getsize(path)
    assert df["id"].tolist() == list(range(300)) and df["code"].iloc[7] == "007"
    assert df["tags"].iloc[2] == ["t2"] and (df["Path"] == path).all()

    bad = write(tmp_path / "bad.jsonl", '{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl.*line 2.*invalid_lines: drop"):
        load_all(plan_tabular([bad], Reader(format="json_lines"), MB, what="in"),
                 Reader(format="json_lines"))
    drop = Reader(format="json_lines", options={"invalid_lines": "drop"})
    assert load_all(plan_tabular([bad], drop, MB, what="in"), drop)["a"].tolist() == [1, 2]


def test_group_payload_adds_key_columns(tmp_path):
    a = write(tmp_path / "a.csv", "x\n1\n2\n")
    b = write(tmp_path / "b.csv", "x\n3\n")
    df = load_tabular(("group", (("file", a), ("file", b))), CSV, {"Store": "007"})
    assert df["x"].tolist() == [1, 2, 3] and df["Store"].tolist() == ["007"] * 3


def test_module_import_is_cheap():
    code = ("import sys, daskprs.inputs.tabular; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "[]"
