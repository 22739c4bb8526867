"""The Azure ML dialects other than the native v2 job (issue 4): sdk-1-5 ParallelComponent, the
legacy module spec, the v1 parallel_run_config YAML, and the seeds 000 and 001 run from their
YAML text with only paths (and the one parameter value) given by --set."""

import json
import os
import textwrap

import pytest
from conftest import cli, make_files, read_lines

import daskprs
from daskprs.api import load
from daskprs.errors import SpecError

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "fixtures", "seeds")


def _spec(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


ECHO = "def run(mini_batch):\n    return [os.path.basename(p) for p in mini_batch]\nimport os\n"


@pytest.fixture
def code(tmp_path):
    (tmp_path / "echo.py").write_text(ECHO)
    make_files(tmp_path / "a", 3)
    make_files(tmp_path / "b", 2)
    (tmp_path / "b" / "f00000.txt").rename(tmp_path / "b" / "g0.txt")
    (tmp_path / "b" / "f00001.txt").rename(tmp_path / "b" / "g1.txt")
    return tmp_path


# --- sdk-1-5 ParallelComponent -----------------------------------------------------------

SDK15 = """
    $schema: http://azureml/sdk-1-5/ParallelComponent.json
    name: sample.parallel
    version: 0.0.1
    type: ParallelComponent
    inputs:
      images: {type: path}
      extra: {type: AnyFile, optional: true}
      batch: {type: Integer, default: 4}
    outputs:
      scored: {type: path}
      summary: {type: AnyDirectory}
    parallel:
      input_data: inputs.images
      output_data: outputs.summary
      entry: echo.py
      args: --batch {inputs.batch} [--extra {inputs.extra}] --out {outputs.scored}
"""


def test_sdk15_single_brace_args_optional_groups_and_azure_defaults(code):
    spec = load(_spec(code, "c.yml", SDK15), [f"inputs.images={code / 'a'}"])
    assert spec.task.program_arguments == (
        "--batch ${{inputs.batch}} $[[--extra ${{inputs.extra}}]] --out ${{outputs.scored}}")
    assert spec.task.code == str(code) and spec.task.entry_script == "echo.py"
    assert spec.inputs["extra"].type == "uri_file" and spec.inputs["extra"].optional
    assert spec.inputs["batch"].type == "integer" and spec.inputs["batch"].value == 4
    assert spec.inputs["images"].type == "uri_folder"  # `path`: inferred from the folder
    assert list(spec.outputs) == ["summary", "scored"]  # output_data first: the PRS output
    assert spec.output_action == "summary_only"
    # Run settings the component does not carry take Azure's defaults.
    assert (spec.mini_batch_size, spec.instance_count, spec.max_tries) == (None, 1, 3)
    assert spec.retry_settings.timeout == 60
    assert (spec.error_threshold, spec.mini_batch_error_threshold) == (-1, -1)


def test_sdk15_run_settings_from_set_accept_v1_names(code):
    spec = load(_spec(code, "c.yml", SDK15), [
        f"inputs.images={code / 'a'}", "node_count=3", "process_count_per_node=2",
        "run_invocation_timeout=15", "run_max_try=5", "allowed_failed_count=4",
        "allowed_failed_percent=25", "mini_batch_size=7", "output_action=append_row",
        "append_row_file_name=Results.TXT", "runsettings.parallel.error_threshold=9"])
    assert (spec.instance_count, spec.max_concurrency_per_instance) == (3, 2)
    assert (spec.retry_settings.timeout, spec.max_tries) == (15, 5)
    assert (spec.mini_batch_error_threshold, spec.allowed_failed_percent) == (4, 25)
    assert (spec.mini_batch_size, spec.error_threshold) == ("7", 9)
    assert spec.task.append_row_to == "summary"  # append_row goes to output_data
    assert spec.append_row.file_name == "results.txt"  # PRS lowercases it


def test_sdk15_unknown_placeholder_names_the_closest_port(code):
    text = SDK15.replace("{outputs.scored}", "{outputs.scores}")
    with pytest.raises(SpecError, match=r"outputs\.scores.*Did you mean 'scored'"):
        load(_spec(code, "c.yml", text), [f"inputs.images={code / 'a'}"])


def test_sdk15_missing_data_path_says_how_to_give_it(code):
    with pytest.raises(SpecError, match=r"--set inputs\.images\.path=PATH"):
        load(_spec(code, "c.yml", SDK15))


def test_seed_000_parallel_component_runs_with_paths_from_set(tmp_path):
    images = make_files(tmp_path / "images", 7)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text(json.dumps({"scale": 3}))
    proc = cli("run", os.path.join(SEEDS, "000_parallel_score.yaml"),
               "--set", f"inputs.trained_model={tmp_path / 'model'}",
               "--set", f"inputs.images_to_score={images}",
               "--set", "mini_batch_size=3", "--set", "process_count_per_node=2",
               "--run-dir", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run" / "outputs" / "scored_dataset"
    assert sorted(p.name for p in out.glob("scored_*.csv")) == [
        "scored_f00000.csv", "scored_f00003.csv", "scored_f00006.csv"]
    assert read_lines(out / "scored_f00003.csv") == ["f00003.txt,9", "f00004.txt,12",
                                                     "f00005.txt,15"]
    # output_data is the PRS output: AZUREML_BI_OUTPUT_PATH on every worker.
    assert {p.read_text() for p in out.glob("env_*.txt")} == {str(out)}
    logs = list((tmp_path / "run/logs/user/entry_script_log").glob("*/process*.log.txt"))
    assert logs and "init: scale 3" in logs[0].read_text()


# --- legacy module spec --------------------------------------------------------------------

def test_seed_001_as_published_is_rejected_naming_each_mismatch():
    proc = cli("validate", os.path.join(SEEDS, "001_module_spec_original.yaml"))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert "'Data Input 2' is not a declared input port. Did you mean 'Data Input 1'?" in err
    assert "'Data Output' is not a declared output port. Did you mean 'Data Ouptut'?" in err
    assert "'My Customized Output'" in err and "'My Customized Ouptut'" in err
    assert "Traceback" not in err


def test_seed_001_with_consistent_ports_runs_both_inputs_as_one_list(tmp_path):
    a, b = make_files(tmp_path / "a", 3), tmp_path / "b"
    make_files(b, 2, width=3)
    (tmp_path / "model").mkdir()
    proc = cli("run", os.path.join(SEEDS, "001_module_spec.yaml"),
               "--set", f"inputs.Data Input 1={a}", "--set", f"inputs.Data_Input_2={b}",
               "--set", f"inputs.Model={tmp_path / 'model'}",
               "--set", "inputs.Some Parameter=hello", "--set", "mini_batch_size=2",
               "--set", "process_count_per_node=2",
               "--run-dir", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    outputs = tmp_path / "run" / "outputs"
    rows = sorted(line for f in (outputs / "My_Customized_Output").glob("*.txt")
                  for line in read_lines(f))
    assert rows == sorted(f"{n} hello" for n in [*os.listdir(a), *os.listdir(b)])
    # outputData is the PRS output (AZUREML_BI_OUTPUT_PATH).
    bi = outputs / "Data_Output" / "bi_output.txt"
    assert bi.read_text() == str(outputs / "Data_Output")


def test_module_spec_nested_list_is_an_optional_group(code):
    text = """
        jobType: parallel
        inputs:
          - {name: Files, type: AnyDirectory}
          - {name: Extra File, type: AnyFile, optional: true}
        outputs:
          - {name: Out, type: AnyDirectory}
        implementation:
          parallel:
            inputData: Files
            entry: echo.py
            args: [--a, 1, [--extra, {inputPath: Extra File}], --out, {outputPath: Out}]
    """
    spec = load(_spec(code, "m.yaml", text), [f"inputs.Files={code / 'a'}"])
    assert spec.task.program_arguments == (
        "--a 1 $[[--extra ${{inputs.Extra_File}}]] --out ${{outputs.Out}}")
    result = daskprs.run(spec, run_dir=code / "run", quiet=True, workers=1)
    assert result.ok and result.counts["items_succeeded"] == 3


# --- v1 parallel_run_config YAML -----------------------------------------------------------

V1 = """
    parallel_run_config:
      mini_batch_size: 1048576
      error_threshold: 10
      output_action: append_row
      logging_level: WARNING
      compute_target_name: cpu-cluster
      node_count: 2
      process_count_per_node: 3
      entry_script: echo.py
      source_directory: .
      description: from save_to_yaml
      run_invocation_timeout: 45
      run_max_try: 4
      append_row_file_name: Mnist_Outputs.txt
      allowed_failed_count: 6
      allowed_failed_percent: 12.5
      environment:
        name: batch_env
        python: {user_managed_dependencies: false}
"""


def test_v1_yaml_maps_every_setting(code):
    spec = load(_spec(code, "prc.yml", V1), [f"inputs.images={code / 'a'}",
                                             f"side_inputs.model={code / 'b'}",
                                             "arguments=--model ${{inputs.model}}",
                                             f"output={code / 'out'}"])
    assert spec.input_data == "images" and spec.inputs["model"].path == str(code / "b")
    assert spec.task.program_arguments == "--model ${{inputs.model}}"
    assert spec.outputs["output"].path == str(code / "out")
    assert spec.task.append_row_to == "output"
    assert spec.append_row.file_name == "mnist_outputs.txt"
    assert (spec.mini_batch_size, spec.error_threshold, spec.logging_level) == (
        "1048576", 10, "WARNING")
    assert (spec.instance_count, spec.max_concurrency_per_instance) == (2, 3)
    assert (spec.retry_settings.timeout, spec.max_tries) == (45, 4)
    assert (spec.mini_batch_error_threshold, spec.allowed_failed_percent) == (6, 12.5)


def test_v1_yaml_without_data_says_how_to_give_it(code):
    with pytest.raises(SpecError, match=r"--set inputs\.NAME=PATH"):
        load(_spec(code, "prc.yml", V1))


def test_v1_yaml_several_inputs_run_as_one_sorted_list(code):
    path = _spec(code, "prc.yml", V1)
    result = daskprs.run(path, [f"inputs.first={code / 'b'}", f"inputs.second={code / 'a'}",
                                "node_count=1", "process_count_per_node=2", "mini_batch_size=2"],
                         run_dir=code / "run", quiet=True)
    assert result.ok, result.reason
    assert result.append_row_file.endswith("outputs/output/mnist_outputs.txt")
    assert read_lines(result.append_row_file) == [
        "f00000.txt", "f00001.txt", "f00002.txt", "g0.txt", "g1.txt"]


def test_parallel_run_config_save_to_yaml_loads_as_the_v1_dialect(code):
    from daskprs.azureml import Environment, ParallelRunConfig, PipelineParameter

    config = ParallelRunConfig(
        environment=Environment("env"), entry_script="echo.py", source_directory=str(code),
        error_threshold=5, output_action="summary_only", compute_target="cpu",
        node_count=PipelineParameter("nodes", 2), mini_batch_size="1KB", run_max_try=2)
    config.save_to_yaml(str(code / "saved.yml"))
    overrides = [f"inputs.images={code / 'a'}"]
    from_yaml = load(str(code / "saved.yml"), overrides)
    assert from_yaml.to_dict() | {"source": None} == \
        config.to_jobspec(overrides).to_dict() | {"source": None}
    assert (from_yaml.instance_count, from_yaml.mini_batch_size, from_yaml.max_tries) == (
        2, "1KB", 2)
    assert from_yaml.output_action == "summary_only"


def test_unknown_keys_name_the_closest_known_one(code):
    text = V1.replace("run_max_try: 4", "run_max_tries: 4")
    with pytest.raises(SpecError, match=r"unknown key 'run_max_tries'.*'run_max_try'"):
        load(_spec(code, "prc.yml", text), [f"inputs.images={code / 'a'}"])
    text = SDK15.replace("output_data:", "output_date:")
    with pytest.raises(SpecError, match=r"'output_date'.*'output_data'"):
        load(_spec(code, "c.yml", text), [f"inputs.images={code / 'a'}"])


# --- append_row options, end to end ----------------------------------------------------------

FRAME = """
import pandas as pd


def run(mini_batch):
    return pd.DataFrame({"name": [p.rsplit("/", 1)[-1] for p in mini_batch],
                         "size": [len(p) for p in mini_batch]})
"""


def _frame_job(tmp_path, settings, header_switch=True):
    data = make_files(tmp_path / "data", 4)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "frame.py").write_text(FRAME)
    if settings:
        to_csv = {"sep": ","} if settings is True else settings
        (tmp_path / "src" / "parallel_run_step.settings.json").write_text(json.dumps(
            {"append_row": {"pandas.DataFrame.to_csv": to_csv}}))
    job = {
        "type": "parallel", "name": "frames",
        "inputs": {"data": {"type": "uri_folder", "path": str(data)}},
        "outputs": {"out": {"type": "uri_folder"}}, "input_data": "${{inputs.data}}",
        "mini_batch_size": "2", "max_concurrency_per_instance": 2,
        "task": {"code": str(tmp_path / "src"), "entry_script": "frame.py",
                 "append_row_to": "${{outputs.out}}",
                 "program_arguments": ("--append_row_dataframe_header True "
                                       if header_switch else "")
                 + "--append_row_file_name Frames.CSV"},
    }
    result = daskprs.run(job, run_dir=tmp_path / "run", quiet=True)
    assert result.ok, result.reason
    return result, len(str(data / "f00000.txt"))


@pytest.mark.parametrize("settings", [False, True])
def test_append_row_header_file_name_and_settings_json(tmp_path, settings):
    result, size = _frame_job(tmp_path, settings)
    assert result.append_row_file == str(tmp_path / "run/outputs/out/frames.csv")
    sep = "," if settings else " "
    assert read_lines(result.append_row_file) == [f"name{sep}size"] + [
        f"f0000{i}.txt{sep}{size}" for i in range(4)]


def test_a_header_in_the_settings_json_is_one_line_atop_the_file(tmp_path):
    # "header": true among the to_csv settings: one header line, as the switch gives, not a
    # header per mini-batch (nor none, as before)
    result, size = _frame_job(tmp_path, {"sep": ",", "header": True}, header_switch=False)
    assert read_lines(result.append_row_file) == ["name,size"] + [
        f"f0000{i}.txt,{size}" for i in range(4)]


def test_to_pandas_reads_the_header_that_append_row_dataframe_header_wrote(tmp_path):
    result, _ = _frame_job(tmp_path, settings=False)
    frame = result.to_pandas()
    assert list(frame.columns) == ["name", "size"] and len(frame) == 4


def test_set_environment_variables_keeps_their_text(code):
    job = {"type": "parallel", "inputs": {"data": {"type": "uri_folder", "path": str(code / "a")}},
           "input_data": "${{inputs.data}}",
           "task": {"code": str(code), "entry_script": "echo.py"}}
    spec = load(job, ["environment_variables.DEBUG=on", "environment_variables.N=007",
                      "mini_batch_size=3"])
    assert dict(spec.environment_variables) == {"DEBUG": "on", "N": "007"}


def test_default_concurrency_is_the_cpus_this_process_was_given(code, monkeypatch):
    job = {"type": "parallel", "inputs": {"data": {"type": "uri_folder", "path": str(code / "a")}},
           "input_data": "${{inputs.data}}", "task": {"code": str(code), "entry_script": "echo.py"}}
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert load(job).concurrency == len(os.sched_getaffinity(0))  # taskset, cpusets
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")  # inside an sbatch job: its allocation
    assert load(job).concurrency == 3
    job["max_concurrency_per_instance"] = 5
    assert load(job).concurrency == 5
