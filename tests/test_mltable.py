"""MLTable files: paths expansion, read transforms, frozen transforms, errors that name the file."""

from __future__ import annotations

import os
import pickle
import textwrap

import pandas as pd
import pytest

from daskprs.errors import InputError
from daskprs.inputs import build_plan, load_payload
from daskprs.inputs.mltable import read_mltable
from daskprs.spec import InputSpec, JobSpec, TaskSpec


def mltable(folder, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "MLTable"
    path.write_text(textwrap.dedent(text))
    return str(path)


def touch(path, text: str = "x") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def job(path: str, mini_batch_size: str | None = None, **kw) -> JobSpec:
    return JobSpec(
        name="t", task=TaskSpec(code=os.getcwd(), entry_script="score.py"), input_data="data",
        inputs={"data": InputSpec(name="data", type="mltable", path=path)},
        mini_batch_size=mini_batch_size, **kw)


def test_file_mltable_is_a_sorted_file_list(tmp_path):
    images = [touch(tmp_path / "t" / "mnist" / f"{i}.png") for i in (3, 1, 2, 0, 4)]
    touch(tmp_path / "t" / "mnist" / ".hidden")
    file = mltable(tmp_path / "t", """
        paths:
          - folder: ./mnist
    """)
    table = read_mltable(file, what="inputs.data")
    assert table.reader.format == "files" and not table.reader.tabular
    assert table.paths == sorted(images)

    plan = build_plan(job(str(tmp_path / "t"), "2"))
    assert len(plan) == 3 and plan.unit == "files"
    assert load_payload(plan[0].payload, plan.reader) == sorted(images)[:2]


def test_a_spark_output_folder_is_read_without_its_underscore_files(tmp_path):
    # what Spark, Databricks and pyarrow write: data files plus _SUCCESS, _metadata,
    # _common_metadata and a _temporary/ folder of unfinished files, all skipped as pyarrow does
    out = tmp_path / "spark"
    for i in range(2):
        out.mkdir(exist_ok=True)
        pd.DataFrame({"a": [i, i + 10]}).to_parquet(out / f"part-0000{i}-x.snappy.parquet")
    pd.DataFrame({"a": [99]}).to_parquet(touch(out / "_temporary" / "0" / "part-9.parquet"))
    for name in ("_SUCCESS", "_metadata", "_common_metadata"):
        touch(out / name, "not data")
    plan = build_plan(job(str(out), "1MB"))
    assert [os.path.basename(p.payload[1]) for p in plan] == [
        "part-00000-x.snappy.parquet", "part-00001-x.snappy.parquet"]
    frames = [load_payload(p.payload, plan.reader) for p in plan]
    assert pd.concat(frames)["a"].tolist() == [0, 10, 1, 11]
    only = tmp_path / "only"
    touch(only / "_SUCCESS", "")
    with pytest.raises(InputError, match="only files whose names start with '_'"):
        build_plan(job(str(only), "1MB"))


def test_a_table_file_changed_after_the_plan_fails_its_mini_batches(tmp_path):
    # A CSV appended to (or rewritten) while the job runs: the planned byte ranges would cut
    # its records into wrong rows, which passed as results.
    table = tmp_path / "t"
    csv = touch(table / "a.csv", "id,v\n" + "".join(f"{i},{i * 2}\n" for i in range(2000)))
    other = touch(table / "b.csv", "id,v\n1,2\n")
    plan = build_plan(job(str(table), "4KB"))
    assert plan.reader.unchanged_since >= os.stat(csv).st_mtime
    assert len(load_payload(plan[0].payload, plan.reader)) > 0  # unchanged: loads
    with open(csv, "a") as f:
        f.write("2000,4000\n")
    later = plan.reader.unchanged_since + 5  # past any timestamp granularity
    os.utime(csv, (later, later))
    for mb in plan:
        if mb.payload[1] == csv:
            with pytest.raises(ValueError, match=r"a.csv \(bytes \d+-\d+\): the file changed "
                                                 "after the plan was made"):
                load_payload(mb.payload, plan.reader)
    assert load_payload(plan[len(plan) - 1].payload, plan.reader)["v"].tolist() == [2]
    assert plan[len(plan) - 1].payload[1] == other
    pq_file = table.parent / "p" / "x.parquet"
    pq_file.parent.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_parquet(pq_file)
    plan = build_plan(job(str(pq_file.parent), "1MB"))
    os.utime(pq_file, (later + 10, later + 10))
    with pytest.raises(ValueError, match="x.parquet: the file changed after the plan was made"):
        load_payload(plan[0].payload, plan.reader)


def test_paths_entries_patterns_and_file_uris(tmp_path):
    a = touch(tmp_path / "m" / "data" / "2023" / "a.csv", "k\n1\n")
    b = touch(tmp_path / "m" / "data" / "2024" / "b.csv", "k\n2\n")
    c = touch(tmp_path / "outside" / "c.csv", "k\n3\n")
    touch(tmp_path / "m" / "data" / "notes.txt")
    file = mltable(tmp_path / "m", f"""
        $schema: https://azuremlschemas.azureedge.net/latest/MLTable.schema.json
        type: mltable
        paths:
          - pattern: ./data/**/*.csv
          - file: file://{c}
        transformations:
          - read_delimited:
              delimiter: ","
              encoding: utf8
              header: all_files_same_headers
              empty_as_string: false
              include_path_column: false
              infer_column_types: true
              partition_size: 20971520
              path_column: Path
              support_multi_line: false
    """)
    table = read_mltable(file, what="inputs.data")
    assert table.paths == sorted([a, b, c])
    assert table.reader.format == "delimited" and table.reader.options["delimiter"] == ","
    assert pickle.loads(pickle.dumps(table.reader)) == table.reader

    plan = build_plan(job(file, "10kb"))
    df = pd.concat([load_payload(mb.payload, plan.reader) for mb in plan], ignore_index=True)
    assert sorted(df["k"]) == [1, 2, 3]


def test_transforms_are_frozen_in_order(tmp_path):
    touch(tmp_path / "1000" / "dominicks" / "part.csv", "week,price\n1,2\n")
    file = mltable(tmp_path, """
        type: mltable
        paths:
          - pattern: ./**/*.csv
        transforms:
          - read_delimited: {include_path_column: true}
          - extract_columns_from_partition_format:
              partition_format: "{Store}/{Brand}/{file_name}.{extension}"
          - drop_columns: ["Path", "file_name", "extension"]
          - convert_column_types:
              - columns: week
                column_type: int
              - columns: [price]
                column_type:
                  datetime:
                    formats: ["%Y"]
          - filter: 'col("week") > 0'
          - take_random_sample: {probability: 0.5, seed: 3}
    """)
    reader = read_mltable(file, what="inputs.data").reader
    assert [name for name, _ in reader.transforms] == [
        "extract_columns_from_partition_format", "drop_columns", "convert_column_types",
        "filter", "take_random_sample"]
    assert reader.partition_format == "{Store}/{Brand}/{file_name}.{extension}"
    assert reader.root == str(tmp_path)
    assert dict(reader.transforms)["convert_column_types"] == (
        (("week",), ("int",)), (("price",), ("datetime", ("%Y",))))
    hash(reader.transforms)  # hashable: fine in a fingerprint or a dask token
    assert pickle.loads(pickle.dumps(reader)) == reader


def test_unquoted_partition_format_from_the_docs(tmp_path):
    touch(tmp_path / "2024" / "01" / "31" / "a.parquet")
    file = mltable(tmp_path, """
        paths:
          - folder: .
        transformations:
          - read_parquet
          - extract_columns_from_partition_format: {timestamp:yyyy/MM/dd}
    """)
    table = read_mltable(file, what="in")
    assert table.reader.partition_format == "{timestamp:yyyy/MM/dd}"
    assert table.paths == [str(tmp_path / "2024" / "01" / "31" / "a.parquet")]  # not MLTable


def test_file_list_take_and_skip_select_paths(tmp_path):
    files = [touch(tmp_path / f"{i}.txt") for i in range(6)]
    file = mltable(tmp_path, """
        paths: [{pattern: ./*.txt}]
        transformations: [{skip: 1}, {take: 3}]
    """)
    table = read_mltable(file, what="in")
    assert table.paths == files[1:4] and table.reader.transforms == ()


@pytest.mark.parametrize(("body", "message"), [
    ("paths: [{file: ./nope.csv}]", r"MLTable .*, file: ./nope.csv: .*/nope.csv does not exist"),
    ("paths: [{folder: ./missing}]", r"folder: ./missing.*does not exist"),
    ("paths: [{pattern: ./*.parquet}]", r"pattern: ./\*.parquet.*matches no files"),
    ("paths: [{file: ./a.csv}]\ntransformations: [{read_delimited: {}}, {pivot: x}]",
     r"unknown transform 'pivot'"),
    ("paths: [{file: ./a.csv}]\ntransformations: [{read_delimited: {delimeter: ';'}}]",
     r"no option 'delimeter'.*Did you mean 'delimiter'"),
    ("paths: [{file: ./a.csv}]\ntransformations: [{read_delimited: {header: first}}]",
     r"header 'first' is not one of"),
    ("paths: [{file: ./a.csv}]\ntransformations: [{read_delta_lake: {version_as_of: 1}}]",
     r"read_delta_lake is not supported"),
    ("paths: [{file: ./a.csv}]\ntransformations: [{read_parquet: {}}, {filter: 'os.system(1)'}]",
     r"filter 'os.system\(1\)': only col\(\"name\"\)"),
    ("paths: [{file: ./a.csv}]\ntransformations: [{keep_columns: [a]}]",
     r"keep_columns needs a read_delimited"),
    ("paths: [{file: ./a.csv}]\npath: x", r"unknown key 'path'.*Did you mean 'paths'"),
    ("paths: [{file: ./a.csv}\n", r"not valid YAML"),
    ("paths: []", r"paths: must be a non-empty list"),
])
def test_errors_name_the_mltable_and_the_problem(tmp_path, body, message):
    touch(tmp_path / "a.csv", "a\n1\n")
    file = mltable(tmp_path, body)
    with pytest.raises(InputError, match=message) as info:
        read_mltable(file, what="inputs.data")
    assert str(info.value).startswith(f"inputs.data: MLTable {file}")
