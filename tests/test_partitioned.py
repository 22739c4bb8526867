"""partition_keys: one mini-batch per key combination, from folders or a staged flat table."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from daskprs.errors import SpecError
from daskprs.inputs import load_payload, partitioned, tabular
from daskprs.inputs.mltable import read_mltable
from daskprs.inputs.partitioned import UNSTAGED, plan_partitions
from daskprs.plan import MiniBatch, Reader

CSV = Reader(format="delimited", options={})
# Values that are unsafe as folder names, or that a type guess would change.
STORES = ["007", "a/b", "x=y", "NA", "", "sp ace", "ünï"]
BRANDS = ["dominicks", "tropicana", "minute maid"]


def sales(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame({
        "store": rng.choice(STORES, n), "brand": rng.choice(BRANDS, n),
        "week": np.arange(n), "price": rng.random(n).round(4),
    })


def expected_groups(path: str) -> dict[tuple[str, str], pd.DataFrame]:
    """Each key group as run() gets it: rows of pd.read_csv (the dtypes without partition
    keys) grouped by the keys' text as written ("NA" and "" are NaN in the column)."""
    df = pd.read_csv(path)
    text = pd.read_csv(path, usecols=["store", "brand"], dtype=str, keep_default_na=False)
    return {k: df.loc[rows].reset_index(drop=True)
            for k, rows in text.groupby(["store", "brand"]).groups.items()}


def check_groups(groups, reader, expected) -> None:
    assert sorted(tuple(key.values()) for key, _, _ in groups) == sorted(expected)
    for key, payload, est in groups:
        df = load_payload(payload, reader, key)
        want = expected[(key["store"], key["brand"])]
        assert est > 0
        pd.testing.assert_frame_equal(df, want)


def test_flat_csv_keys_stage_one_group_per_combination(tmp_path, monkeypatch):
    path = str(tmp_path / "sales.csv")
    sales().to_csv(path, index=False)
    # several source chunks, so groups are put back together in row order
    monkeypatch.setattr(partitioned, "STAGE_CHUNK_BYTES", 16 * 1024)
    before = tabular.bytes_read

    groups = plan_partitions([path], CSV, ["store", "brand"], what="inputs.data",
                             staging_dir=str(tmp_path / "staging"))

    assert tabular.bytes_read - before == os.path.getsize(path)  # the table is read once
    assert len(groups) == len(STORES) * len(BRANDS)
    assert max(len(p[1]) for _, p, _ in groups) > 1
    check_groups(groups, CSV, expected_groups(path))


def test_plan_without_staging_lists_keys_only(tmp_path):
    path = str(tmp_path / "sales.csv")
    sales(500).to_csv(path, index=False)
    groups = plan_partitions([path], CSV, ["store", "brand"], what="in")
    assert sorted(tuple(k.values()) for k, _, _ in groups) == sorted(expected_groups(path))
    assert {p for _, p, _ in groups} == {UNSTAGED}
    assert sum(est for *_, est in groups) == pytest.approx(os.path.getsize(path), abs=50)
    with pytest.raises(ValueError, match="planned without staging"):
        load_payload(UNSTAGED, CSV, groups[0][0])


def test_flat_parquet_on_a_distributed_client(tmp_path):
    distributed = pytest.importorskip("distributed")
    df = sales(400)
    path = str(tmp_path / "sales.parquet")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=100)
    reader = Reader(format="parquet", options={})
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=":0") as client:
        groups = plan_partitions([path], reader, ["brand"], what="in",
                                 staging_dir=str(tmp_path / "st"), client=client)
    assert [k["brand"] for k, _, _ in groups] == list(dict.fromkeys(df["brand"]))
    for key, payload, _ in groups:
        got = load_payload(payload, reader, key)
        want = df[df["brand"] == key["brand"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[list(want.columns)], want)


def rows_by_key(groups, reader) -> dict[tuple, pd.DataFrame]:
    return {tuple(k.values()): load_payload(p, reader, k) for k, p, _ in groups}


def test_groups_come_in_input_order(tmp_path, monkeypatch):
    """By first row: file order, then row order, across staging chunks; not as text."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"store": [999, 5] * 400 + [1001], "v": range(801)}).to_csv(a, index=False)
    b.write_text("store,v\n7,0\n5,0\n,0\n20,0\n")
    monkeypatch.setattr(partitioned, "STAGE_CHUNK_BYTES", 1024)  # several chunks of a.csv
    paths = [str(a), str(b)]
    want = ["999", "5", "1001", "7", "", "20"]  # the empty field is "" in a CSV
    staged = plan_partitions(paths, CSV, ["store"], what="in", staging_dir=str(tmp_path / "s"))
    assert len(tabular.plan_tabular(paths, CSV, 1024, what="in")) > 3
    assert [k["store"] for k, _, _ in staged] == want
    assert [k["store"] for k, _, _ in plan_partitions(paths, CSV, ["store"], what="in")] == want
    assert load_payload(staged[0][1], CSV, staged[0][0]).v.tolist() == list(range(0, 800, 2))


def test_key_columns_keep_their_dtype_and_key_values_are_text(tmp_path):
    """run() gets the key columns as without partition_keys (user code compares Store with
    1001); partition_key_value holds their text: the CSV field as written, else str()."""
    csv = tmp_path / "t.csv"
    csv.write_text("store,flag,v\n007,True,0\n7,False,1\n7,True,2\nNA,True,3\n,True,4\n")
    groups = plan_partitions([str(csv)], CSV, ["store", "flag"], what="in",
                             staging_dir=str(tmp_path / "st"))
    got = rows_by_key(groups, CSV)
    assert set(got) == {("007", "True"), ("7", "False"), ("7", "True"), ("NA", "True"),
                        ("", "True")}
    plain = pd.read_csv(csv)
    for df in got.values():
        pd.testing.assert_frame_equal(df, plain[plain.v.isin(df.v)].reset_index(drop=True))
    assert got[("007", "True")].store.tolist() == [7] and got[("7", "True")].v.tolist() == [2]
    assert got[("NA", "True")].store.isna().all() and got[("", "True")].v.tolist() == [4]
    unstaged = plan_partitions([str(csv)], CSV, ["store", "flag"], what="in")
    assert [k for k, _, _ in unstaged] == [k for k, _, _ in groups]
    # MLTable transforms see the typed columns and keep the key text along
    filtered = Reader(format="delimited", options={}, transforms=(
        ("filter", 'col("store") == 7'), ("keep_columns", ("store", "flag"))))
    got = rows_by_key(plan_partitions([str(csv)], filtered, ["store", "flag"], what="in",
                                      staging_dir=str(tmp_path / "st1")), filtered)
    assert {k: len(df) for k, df in got.items()} == {
        ("007", "True"): 1, ("7", "False"): 1, ("7", "True"): 1}
    assert list(got[("007", "True")].columns) == ["store", "flag"]

    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({
        "store": pa.array([1001, 5, 1001, 5, 999, 5], pa.int64()),
        "brand": pa.array(["a", "", None, None, "a", "a"]),
        "region": pa.array([1, None, 2, 1, None, 2], pa.int64()),
        "v": range(6)}), parquet)
    pqr = Reader(format="parquet", options={})
    got = rows_by_key(plan_partitions([str(parquet)], pqr, ["store", "brand"], what="in",
                                      staging_dir=str(tmp_path / "st2")), pqr)
    # a null key is None, a group apart from "" (Azure gives a missing value too)
    assert {k: df.v.tolist() for k, df in got.items()} == {
        ("1001", "a"): [0], ("5", ""): [1], ("1001", None): [2], ("5", None): [3],
        ("999", "a"): [4], ("5", "a"): [5]}
    assert got[("1001", "a")].store.dtype == "int64"
    assert (got[("1001", "a")].store == 1001).all()
    assert got[("5", None)].brand.isna().all() and got[("5", "")].brand.tolist() == [""]
    plain = pd.read_parquet(parquet)
    pd.testing.assert_frame_equal(got[("5", "a")], plain.iloc[[5]].reset_index(drop=True))
    # integers with nulls are floats in pandas (as without keys), but their key is "2"
    got = rows_by_key(plan_partitions([str(parquet)], pqr, ["region"], what="in",
                                      staging_dir=str(tmp_path / "st3")), pqr)
    assert {k: df.v.tolist() for k, df in got.items()} == {
        ("1",): [0, 3], (None,): [1, 4], ("2",): [2, 5]}
    assert got[("2",)].region.dtype == "float64" and got[("2",)].region.tolist() == [2.0, 2.0]
    # JSON lines: null (or absent) is None too, apart from ""
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"b": "x", "v": 0}\n{"b": null, "v": 1}\n{"b": "", "v": 2}\n{"v": 3}\n')
    jr = Reader(format="json_lines", options={})
    got = rows_by_key(plan_partitions([str(jsonl)], jr, ["b"], what="in",
                                      staging_dir=str(tmp_path / "st4")), jr)
    assert {k: df.v.tolist() for k, df in got.items()} == {("x",): [0], (None,): [1, 3],
                                                            ("",): [2]}
    summary = MiniBatch(index=0, id="x", payload=("group", ()), items=0,
                        partition_key_value={"region": None}).describe()
    assert summary == "key group region=(missing) (0 parts)"


def test_a_key_column_of_mixed_types_is_staged_as_text(tmp_path):
    """pandas parses a large CSV column that turns from numbers to text as Python ints and
    strs mixed, which Parquet cannot hold: staging writes that column as text."""
    path = tmp_path / "t.csv"
    path.write_text("store,v\n" + "".join(f"{i % 2},{i}\n" for i in range(300_000)) + "x,0\n")
    with pytest.warns(pd.errors.DtypeWarning):
        assert pd.read_csv(path).store.map(type).nunique() == 2  # the premise
    got = rows_by_key(plan_partitions([str(path)], CSV, ["store"], what="in",
                                      staging_dir=str(tmp_path / "st")), CSV)
    assert {k: len(df) for k, df in got.items()} == {("0",): 150_000, ("1",): 150_000,
                                                      ("x",): 1}
    assert set(got[("1",)].store) == {"1"} and got[("1",)].v.is_monotonic_increasing


def test_a_key_that_is_no_column_is_refused_before_staging(tmp_path):
    path = str(tmp_path / "s.csv")
    sales(10).to_csv(path, index=False)
    before = tabular.bytes_read
    with pytest.raises(SpecError, match=r"in: partition key\(s\) Store are not columns of "
                       r".*s\.csv \(store, brand, week, price\)\. .*case-sensitive"):
        plan_partitions([path], CSV, ["Store"], what="in", staging_dir=str(tmp_path / "st"))
    assert tabular.bytes_read == before and not (tmp_path / "st").exists()
    # the columns as run() would see them: path column and column transforms applied
    reader = Reader(format="delimited", options={"include_path_column": True}, transforms=(
        ("drop_columns", ("week",)), ("extract_columns_from_partition_format", "{f}.csv")))
    with pytest.raises(SpecError, match=r"\(Path, store, brand, price, f\)"):
        plan_partitions([path], reader, ["week"], what="in")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"a": 1, "b": 2}\n')
    with pytest.raises(SpecError, match=r"\(a, b\)"):
        plan_partitions([str(jsonl)], Reader(format="json_lines"), ["c"], what="in")


def test_a_key_that_is_no_folder_lists_the_folder_keys(tmp_path):
    folder = tmp_path / "Store=1" / "Brand=a"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"v": [1]}), folder / "part-0.parquet")
    paths = [str(folder / "part-0.parquet")]
    reader = Reader(format="parquet", options={})
    with pytest.raises(SpecError, match=r"Nope are neither key=value folders \(found: Store, "
                       r"Brand\) nor columns of .*part-0\.parquet \(v\)"):
        plan_partitions(paths, reader, ["Nope"], what="in")
    with pytest.raises(SpecError, match=r"mix folder keys \(Store\) and other names \(v\)"):
        plan_partitions(paths, reader, ["Store", "v"], what="in")


def write_oj_tree(root) -> None:
    """The layout of azureml-examples' parallel 1a partition step (Store/Brand folders)."""
    for store, brand in [("1000", "dominicks"), ("1000", "tropicana"), ("2", "dominicks")]:
        folder = root / store / brand
        folder.mkdir(parents=True)
        (folder / "partitioned_data.csv").write_text(
            "week,price\n" + "".join(f"{w},{int(store) + w}\n" for w in range(3)))
    (root / "MLTable").write_text(textwrap.dedent("""
        type: mltable
        paths:
        - pattern: ./**/*.csv
        transformations:
        - read_delimited:
            delimiter: ','
            empty_as_string: false
            encoding: ascii
            header: all_files_same_headers
            include_path_column: true
        - extract_columns_from_partition_format:
            partition_format: '{Store}/{Brand}/{file_name}.{extension}'
        - drop_columns:
          - Path
          - file_name
          - extension
    """))


def test_key_folders_from_an_mltable_partition_format(tmp_path):
    write_oj_tree(tmp_path)
    table = read_mltable(str(tmp_path / "MLTable"), what="inputs.data")
    groups = plan_partitions(table.paths, table.reader, ["Store", "Brand"], what="inputs.data")
    assert [k for k, _, _ in groups] == [
        {"Store": "1000", "Brand": "dominicks"}, {"Store": "1000", "Brand": "tropicana"},
        {"Store": "2", "Brand": "dominicks"}]
    key, payload, _ = groups[0]
    assert payload == ("group", (("file", str(tmp_path / "1000/dominicks/partitioned_data.csv")),))
    df = load_payload(payload, table.reader, key)
    assert list(df.columns) == ["week", "price", "Store", "Brand"]
    assert df["price"].tolist() == [1000, 1001, 1002] and set(df["Store"]) == {"1000"}


def test_hive_folders(tmp_path):
    for store, brand, rows in [("1", "a/b", [1, 2]), ("1", "c", [3]), ("2", "c", [4])]:
        folder = tmp_path / f"store={store}" / f"brand={brand.replace('/', '%2F')}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"v": rows}), folder / "part-0.parquet")
    paths = sorted(str(p) for p in tmp_path.rglob("*.parquet"))
    reader = Reader(format="parquet", options={})
    groups = plan_partitions(paths, reader, ["store", "brand"], what="in")
    assert [tuple(k.values()) for k, _, _ in groups] == [("1", "a/b"), ("1", "c"), ("2", "c")]
    df = load_payload(groups[0][1], reader, groups[0][0])
    assert df.to_dict("list") == {"v": [1, 2], "store": ["1", "1"], "brand": ["a/b", "a/b"]}


def test_key_folders_come_in_path_order(tmp_path):
    for store, brand in [("1", "c"), ("2", "a")]:
        (tmp_path / f"store={store}" / f"brand={brand}").mkdir(parents=True)
        (tmp_path / f"store={store}" / f"brand={brand}" / "f.txt").write_text("x")
    paths = sorted(str(p) for p in tmp_path.rglob("*.txt"))
    groups = plan_partitions(paths, Reader(format="files"), ["brand", "store"], what="in")
    assert [tuple(k.values()) for k, _, _ in groups] == [("c", "1"), ("a", "2")]


def test_file_list_grouped_by_some_format_fields(tmp_path):
    """MachineLearningNotebooks' file-dataset-partition-per-folder: keys user and genres."""
    names = ["u1/s1/rock.wav", "u1/s2/rock.wav", "u1/s1/jazz.wav", "u2/s1/rock.wav"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"RIFF")
    reader = Reader(format="files", partition_format="{user}/{season}/{genres}.wav",
                    root=str(tmp_path))
    paths = sorted(str(tmp_path / n) for n in names)
    groups = plan_partitions(paths, reader, ["user", "genres"], what="in")
    assert [(tuple(k.values()), n) for k, _, n in groups] == [
        (("u1", "jazz"), 1), (("u1", "rock"), 2), (("u2", "rock"), 1)]
    assert load_payload(groups[1][1], reader, groups[1][0]) == [
        str(tmp_path / "u1/s1/rock.wav"), str(tmp_path / "u1/s2/rock.wav")]

    with pytest.raises(SpecError, match=r"key\(s\) artist .*available: user, season, genres"):
        plan_partitions(paths, reader, ["artist"], what="in")
    with pytest.raises(SpecError, match=r"artist.*not folder names.*available: none"):
        plan_partitions(paths, Reader(format="files"), ["artist"], what="in")


def test_build_plan_with_partition_keys(tmp_path):
    from daskprs.inputs import build_plan
    from daskprs.spec import InputSpec, JobSpec, TaskSpec

    write_oj_tree(tmp_path / "oj")
    (tmp_path / "flat").mkdir()
    sales(200).to_csv(tmp_path / "flat" / "sales.csv", index=False)

    def spec(path: str, keys: tuple[str, ...]) -> JobSpec:
        return JobSpec(name="t", task=TaskSpec(code=str(tmp_path), entry_script="s.py"),
                       input_data="d", partition_keys=keys,
                       inputs={"d": InputSpec(name="d", type="mltable", path=path)})

    plan = build_plan(spec(str(tmp_path / "oj"), ("Store", "Brand")))
    assert len(plan) == 3 and plan[0].partition_key_value == {"Store": "1000", "Brand": "dominicks"}
    assert "key group Store=1000, Brand=dominicks (1 parts)" in plan.summary()

    plan = build_plan(spec(str(tmp_path / "flat"), ("brand",)))  # keys are columns
    assert "key group brand=dominicks (1 parts)" in plan.summary()  # daskprs plan: no staging
    plan = build_plan(spec(str(tmp_path / "flat"), ("brand",)), staging_dir=str(tmp_path / "st"))
    df = load_payload(plan[1].payload, plan.reader, plan[1].partition_key_value)
    assert set(df["brand"]) == {"minute maid"} and df["week"].is_monotonic_increasing
