"""Bad input: exit 2 and one paragraph naming the key or file, never a bare traceback."""

import os

import pytest
from conftest import SCRIPTS, cli, file_job, make_files, read_lines

import daskprs

GOOD = """type: parallel
inputs:
  data: {type: uri_folder, path: ./data}
outputs:
  out: {type: uri_folder}
input_data: ${{inputs.data}}
mini_batch_size: "2"
task:
  code: ./code
  entry_script: score.py
  append_row_to: ${{outputs.out}}
"""


@pytest.fixture
def project(tmp_path):
    make_files(tmp_path / "data", 4)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def run(mb):\n    return mb\n")
    return tmp_path


CASES = [
    # (spec text or replacement, extra CLI args, files to write, expected message parts)
    ("syntax", GOOD.replace("mini_batch_size: \"2\"", "mini_batch_size: [2"), [], {},
     ["line 8", "YAML syntax error"]),
    ("unknown key", GOOD + "mini_batch_sise: 3\n", [], {},
     ["unknown key 'mini_batch_sise'", "Did you mean 'mini_batch_size'"]),
    ("wrong type", GOOD + "error_threshold: many\n", [], {},
     ["error_threshold: expected a whole number, got 'many'"]),
    ("bad size", GOOD, ["--set", "mini_batch_size=seven"], {},
     ["mini_batch_size: 'seven' is not a size"]),
    ("unresolvable binding", GOOD.replace("  append_row_to", "  program_arguments: "
     "--x ${{inputs.nope}}\n  append_row_to"), [], {},
     ["'${{inputs.nope}}' names no declared input", "Declared inputs: data"]),
    ("missing entry script", GOOD.replace("score.py", "scor.py"), [], {},
     ["entry script", "scor.py does not exist", "score.py"]),
    ("no run()", GOOD, [], {"code/score.py": "def init():\n    pass\n"},
     ["defines no run() function"]),
    ("script syntax error", GOOD, [], {"code/score.py": "def run(mb)\n    return mb\n"},
     ["score.py, line 1: syntax error"]),
    ("missing input", GOOD.replace("./data", "./nodata"), [], {},
     ["inputs.data", "nodata does not exist"]),
    ("partition keys on files", GOOD + "partition_keys: [store]\n", [], {},
     ["partition key(s) store", "key=value folders"]),
    ("negative timeout", GOOD + "retry_settings: {timeout: -5}\n", [], {},
     ["retry_settings.timeout: -5.0 is out of range"]),
    ("threshold below -1", GOOD + "error_threshold: -3\n", [], {},
     ["error_threshold: -3 is below -1"]),
    ("escaping output name", GOOD.replace("  append_row_to", "  program_arguments: "
     "--append_row_file_name ../x\n  append_row_to"), [], {},
     ["append_row_file_name: '../x' must be a plain file name"]),
    ("not a mapping", "- type: parallel\n", [], {}, ["must be a YAML mapping", "got list"]),
    ("not parallel", GOOD.replace("type: parallel", "type: command"), [], {},
     ["type: 'command' is not a parallel job"]),
    ("no workers", GOOD, ["--workers", "0"], {}, ["workers=0: give at least 1"]),
    ("an azureml asset given with --set", GOOD, ["--set", "inputs.data=azureml:reviews:1"], {},
     ["inputs.data.path: 'azureml:reviews:1' is an Azure ML data asset", "cannot read offline"]),
    ("uri_file output that is a folder", GOOD.replace("{type: uri_folder}",
     "{type: uri_file, path: ./code}"), [], {},
     ["outputs.out: type uri_file, but", "code is a folder", "type: uri_folder"]),
    ("output inside the input", GOOD.replace("{type: uri_folder}",
     "{type: uri_folder, path: ./data/scored}"), [], {},
     ["outputs.out (", "data/scored) lies inside the input folder", "outside the input folder"]),
    ("a bound path with a space", GOOD.replace("{type: uri_folder}",
     "{type: uri_folder, path: './my out'}").replace("  append_row_to", "  program_arguments: "
     "--out ${{outputs.out}}\n  append_row_to"), [], {},
     ["'${{outputs.out}}' is", "my out', which holds a space", "a --run-dir without spaces"]),
    ("negative stall timeout", GOOD.replace("  append_row_to", "  program_arguments: "
     "--progress_update_timeout -1\n  append_row_to"), [], {},
     ["progress_update_timeout: must be a positive number"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exit_2_with_one_clear_paragraph(project, case):
    _, text, args, files, expected = case
    for rel, content in files.items():
        (project / rel).write_text(content)
    spec = project / "job.yml"
    spec.write_text(text)
    proc = cli("run", str(spec), *args, "--run-dir", str(project / "run"), "-q")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    for part in expected:
        assert part in proc.stderr, (part, proc.stderr)


@pytest.mark.parametrize(("setting", "expected"), [
    ("node_count=2", "unknown key 'node_count'; in a v2 spec, that is resources.instance_count."),
    ("output_action=append_row", "append_row is task.append_row_to: ${{outputs.NAME}}"),
    ("run_max_try=3", "retry_settings.max_retries, which counts retries, not tries"),
    ("allowed_failed_percent=10", "the PRS switch --allowed_failed_percent VALUE in "
     "task.program_arguments"),
    ("task.source_directory=.", "task: unknown key 'source_directory'; in a v2 spec, that is "
     "task.code."),
    ("outputs_mod=x", "unknown key 'outputs_mod'. Did you mean 'outputs'?"),
])
def test_unknown_keys_get_their_v2_name_never_an_ignored_key(project, setting, expected):
    # Azure-only keys (outputs_mode, code_configuration) are accepted and do nothing, so they
    # must never be the suggestion; v1 / PRS names get the v2 key that does what they meant.
    spec = project / "job.yml"
    spec.write_text(GOOD)
    proc = cli("validate", str(spec), "--set", setting)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and expected in proc.stderr, proc.stderr
    assert "outputs_mode" not in proc.stderr and "code_configuration" not in proc.stderr


def test_a_misspelled_partition_key_prints_only_the_error(tmp_path):
    """Checked against the table's header before staging: no Dask traceback first."""
    (tmp_path / "sales.csv").write_text("Store,Brand,qty\n1,a,2\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def run(mb):\n    return []\n")
    spec = tmp_path / "job.yml"
    spec.write_text(GOOD.replace("{type: uri_folder, path: ./data}",
                                 "{type: mltable, path: ./sales.csv}"))
    proc = cli("run", str(spec), "--set", "partition_keys=[Nope]", "--run-dir",
               str(tmp_path / "run"), "-q")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == ("error: inputs.data: partition key(s) Nope are not columns of "
                           f"{tmp_path / 'sales.csv'} (Store, Brand, qty). Name columns of the "
                           "table in partition_keys (names are case-sensitive).\n")
    assert proc.stdout == ""


def test_validate_finds_a_missing_input_path(project):
    spec = project / "job.yml"
    spec.write_text(GOOD)
    proc = cli("validate", str(spec), "--set", "inputs.data=./nodata")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: inputs.data: ") and "nodata does not exist" in proc.stderr
    assert cli("validate", str(spec)).returncode == 0


def test_a_key_column_missing_from_a_later_file_prints_only_the_error(tmp_path):
    """Found while staging, on a worker process: still no Dask traceback before the error."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.csv").write_text("Store,qty\n1,2\n2,3\n")
    (tmp_path / "t" / "b.csv").write_text("Shop,qty\n1,2\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def run(mb):\n    return []\n")
    spec = tmp_path / "job.yml"
    spec.write_text(GOOD.replace("{type: uri_folder, path: ./data}", "{type: mltable, path: ./t}")
                    + "partition_keys: [Store]\n")
    proc = cli("run", str(spec), "--run-dir", str(tmp_path / "run"), "-q")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: partition key(s) Store are neither folders nor "
                                  f"columns of {tmp_path / 't' / 'b.csv'} (columns: Shop, qty)")
    assert "Compute Failed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_an_entry_script_import_that_is_not_installed(project):
    (project / "code" / "helper.py").write_text("X = 1\n")
    (project / "code" / "score.py").write_text(
        "import os\nimport helper\nfrom not_installed_xyz.sub import thing\n"
        "try:\n    import optional_xyz\nexcept ImportError:\n    pass\n\n"
        "def init():\n    pass\n\ndef run(mb):\n    return mb\n")
    spec = project / "job.yml"
    spec.write_text(GOOD)
    # validate finds it without running the script: the local workers use this Python
    proc = cli("validate", str(spec))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: entry script ") and "Traceback" not in proc.stderr
    assert "imports 'not_installed_xyz' (line 3), which this Python" in proc.stderr
    assert "helper" not in proc.stderr and "optional_xyz" not in proc.stderr  # found / optional
    # on a cluster the workers may have it: a warning, exit 0
    remote = project / "remote.yml"
    remote.write_text(GOOD + "cluster: {address: 'tcp://127.0.0.1:1'}\n")
    proc = cli("validate", str(remote))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: entry script" in proc.stderr and "The cluster's workers need it" in proc.stderr
    # run: the failure is the import, not init()
    proc = cli("run", str(spec), "--run-dir", str(project / "run"), "-q")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "reason: the entry script failed to import on every worker (" in proc.stdout
    assert "): ModuleNotFoundError: No module named 'not_installed_xyz'" in proc.stdout
    assert "init() never ran" in proc.stdout
    errors = (project / "run" / "logs" / "job_error.txt").read_text()
    assert "== starting the entry script failed (its import or init())" in errors


def test_corrupt_rows_fail_only_their_minibatch_naming_the_file(tmp_path):
    data = tmp_path / "table"
    data.mkdir()
    (data / "good.csv").write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(50)))
    (data / "bad.csv").write_text("a,b\n1,2\n3,4,5,6,7\n")
    (data / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    code = tmp_path / "code"
    code.mkdir()
    (code / "s.py").write_text("def run(df):\n    return df\n")
    job = {"type": "parallel", "inputs": {"t": {"type": "mltable", "path": str(data)}},
           "input_data": "${{inputs.t}}", "max_concurrency_per_instance": 1,
           "task": {"code": str(code), "entry_script": "s.py"}}
    # Mixed formats are refused up front (exit 2) ...
    with pytest.raises(daskprs.InputError, match="mixes file formats"):
        daskprs.run(job, run_dir=tmp_path / "run0", quiet=True)
    os.remove(data / "broken.parquet")
    # ... while a malformed CSV row fails only its mini-batch, naming the file.
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=1)
    assert result.counts["failed"] == 1 and result.counts["succeeded"] == 1
    assert "bad.csv" in result.failures[0]["message"]
    assert result.status == "succeeded"


def test_corrupt_parquet_fails_only_its_minibatch(tmp_path):
    import pandas as pd

    data = tmp_path / "table"
    data.mkdir()
    pd.DataFrame({"a": range(10)}).to_parquet(data / "a.parquet")
    (data / "b.parquet").write_bytes(b"PAR1 this is not parquet at all PAR1")
    code = tmp_path / "code"
    code.mkdir()
    (code / "s.py").write_text("def run(df):\n    return df\n")
    job = {"type": "parallel", "inputs": {"t": {"type": "mltable", "path": str(data)}},
           "input_data": "${{inputs.t}}", "mini_batch_error_threshold": 1,
           "task": {"code": str(code), "entry_script": "s.py"}}
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=1)
    assert result.status == "succeeded"
    assert result.counts["failed"] == 1
    assert "b.parquet" in result.failures[0]["message"]


def test_prs_switch_overrides_yaml_key_with_a_warning(tmp_path, caplog):
    data = make_files(tmp_path / "data", 2)
    job = file_job(data, error_threshold=5, args="--error_threshold 7 --run_max_try 4")
    with caplog.at_level("WARNING", logger="daskprs"):
        spec = daskprs.load_spec(job)
    assert spec.error_threshold == 7 and spec.max_tries == 4
    assert "--error_threshold 7 in program_arguments overrides error_threshold" in caplog.text


def test_run_dir_with_a_run_is_not_overwritten(tmp_path):
    data = make_files(tmp_path / "data", 2)
    job = file_job(data, mini_batch_size="2")
    assert daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=1).ok
    with pytest.raises(daskprs.SpecError, match="daskprs resume"):
        daskprs.run(job, run_dir=tmp_path / "run", quiet=True, workers=1)
    assert read_lines(tmp_path / "run/outputs/out/parallel_run_step.txt") == ["f00000.txt",
                                                                            "f00001.txt"]
    assert SCRIPTS
