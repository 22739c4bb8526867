"""One behavioural suite over every dialect (issue 4): the same job written as a v2 job, a v2
component, a pipeline (inline and with a component file), an sdk-1-5 ParallelComponent, a legacy
module spec, a v1 parallel_run_config YAML, and through the SDK v2 and v1 Python APIs.

Each must give the same JobSpec (but for its name and source file) and the same run: the same
rows in the same order, the same failed mini-batch after the same number of tries.
"""

import json
import os

import pytest
from conftest import read_lines
from distributed import Client, LocalCluster

import daskprs
from daskprs.api import load
from daskprs.azureml import (
    Dataset,
    Environment,
    Input,
    Output,
    ParallelRunConfig,
    ParallelRunStep,
    PipelineData,
    RunFunction,
    parallel_run_function,
)

SCRIPT = '''
import argparse, json, os

factor = None


def init():
    global factor
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    args, _ = parser.parse_known_args()
    with open(os.path.join(args.model, "factor.json")) as f:
        factor = json.load(f)["factor"]


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path) as f:
            value = int(f.read())  # "boom" in one file: that mini-batch fails on every try
        with open(path + ".tries", "a") as f:
            f.write("x")
        rows.append(f"{os.path.basename(path)} {value * factor} {os.environ['CONF_FLAG']}")
    return rows
'''

# The settings every spec below expresses in its own dialect.
V2_SETTINGS = """
input_data: ${{inputs.data}}
mini_batch_size: "2"
resources:
  instance_count: 1
max_concurrency_per_instance: 2
error_threshold: 3
mini_batch_error_threshold: 2
retry_settings:
  max_retries: 1
  timeout: 30
logging_level: DEBUG
environment_variables:
  CONF_FLAG: "enabled"
"""
V2_TASK = """
task:
  type: run_function
  code: ./src
  entry_script: score.py
  program_arguments: --model ${{inputs.model}}
  append_row_to: ${{outputs.output}}
"""
# --set run settings for the dialects that carry none (v1 names, as aliases).
RUN_SETTINGS = ["mini_batch_size=2", "node_count=1", "process_count_per_node=2",
                "error_threshold=3", "allowed_failed_count=2", "run_max_try=2",
                "run_invocation_timeout=30", "logging_level=DEBUG",
                "environment_variables.CONF_FLAG=enabled", "output_action=append_row"]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.lstrip())
    return str(path)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    for i in range(8):
        _write(root / "data" / f"f{i}.txt", "boom" if i == 5 else str(i))
    _write(root / "model" / "factor.json", json.dumps({"factor": 10}))
    _write(root / "src" / "score.py", SCRIPT)
    ports = """
inputs:
  data: {type: uri_folder, path: ./data}
  model: {type: uri_folder, path: ./model}
outputs:
  output: {type: uri_folder}
"""
    _write(root / "job.yml", "type: parallel\nname: conf-v2\n" + ports + V2_SETTINGS + V2_TASK)
    _write(root / "component.yml", """
$schema: https://azuremlschemas.azureedge.net/latest/parallelComponent.schema.json
type: parallel
name: conf_component
version: 1
inputs:
  data: {type: uri_folder}
  model: {type: uri_folder}
outputs:
  output: {type: uri_folder}
""" + V2_SETTINGS + V2_TASK)
    _write(root / "pipeline.yml", """
type: pipeline
inputs:
  pipeline_data: {type: uri_folder, path: ./data}
  pipeline_model: {type: uri_folder, path: ./model}
outputs:
  scores: {type: uri_folder}
jobs:
  score:
    type: parallel
    inputs:
      data: ${{parent.inputs.pipeline_data}}
      model: ${{parent.inputs.pipeline_model}}
    outputs:
      output: ${{parent.outputs.scores}}
""" + "".join(f"    {line}\n" for line in (V2_SETTINGS + V2_TASK).splitlines() if line))
    _write(root / "pipeline_component.yml", """
type: pipeline
inputs:
  data_path: {type: uri_folder, path: ./data}
jobs:
  score:
    type: parallel
    component: ./component.yml
    inputs:
      data:
        path: ${{parent.inputs.data_path}}
      model:
        path: ./model
    retry_settings:
      max_retries: 1
""")
    _write(root / "src" / "parallel_score.yml", """
$schema: http://azureml/sdk-1-5/ParallelComponent.json
name: conformance.parallel_score
version: 0.0.1
type: ParallelComponent
inputs:
  data: {type: path, optional: false}
  model: {type: AnyDirectory}
outputs:
  output: {type: path}
environment: {docker: {image: mcr.microsoft.com/azureml/base}}
parallel:
  input_data: inputs.data
  output_data: outputs.output
  entry: score.py
  args: --model {inputs.model}
""")
    _write(root / "src" / "module_spec.yaml", """
amlModuleIdentifier: {namespace: tests, moduleName: Conformance, moduleVersion: 0.0.1}
jobType: parallel
inputs:
  - {name: data, type: AnyDirectory}
  - {name: model, type: ModelDirectory}
outputs:
  - {name: output, type: AnyDirectory}
implementation:
  parallel:
    amlEnvironment: {python: {condaDependencies: {}}}
    inputData: data
    outputData: output
    entry: score.py
    args: [--model, {inputPath: model}]
""")
    _write(root / "parallel_run_config.yml", """
parallel_run_config:
  mini_batch_size: "2"
  error_threshold: 3
  allowed_failed_count: 2
  output_action: append_row
  logging_level: DEBUG
  compute_target_name: cpu-cluster
  node_count: 1
  process_count_per_node: 2
  entry_script: score.py
  source_directory: ./src
  run_invocation_timeout: 30
  run_max_try: 2
  environment_variables: {CONF_FLAG: "enabled"}
  environment: {name: prs-env}
""")
    return root


def _python_v2(root):
    here = os.getcwd()
    os.chdir(root)  # relative paths are relative to the current folder, as in the SDK
    try:
        fn = parallel_run_function(
            name="conf_python_v2",
            inputs=dict(data=Input(type="uri_folder"), model=Input(type="uri_folder")),
            outputs=dict(output=Output(type="uri_folder")),
            input_data="${{inputs.data}}", instance_count=1, max_concurrency_per_instance=2,
            mini_batch_size="2", error_threshold=3, mini_batch_error_threshold=2,
            retry_settings=dict(max_retries=1, timeout=30), logging_level="DEBUG",
            environment_variables={"CONF_FLAG": "enabled"},
            task=RunFunction(code="./src", entry_script="score.py",
                             program_arguments="--model ${{inputs.model}}",
                             append_row_to="${{outputs.output}}",
                             environment=Environment(image="mcr.microsoft.com/x")),
        )
        return fn(data=Input(type="uri_folder", path="./data"),
                  model=Input(type="uri_folder", path="./model"))
    finally:
        os.chdir(here)


def _python_v1(root):
    config = ParallelRunConfig(
        environment=Environment("prs-env"), entry_script="score.py",
        source_directory=str(root / "src"), mini_batch_size="2", error_threshold=3,
        allowed_failed_count=2, output_action="append_row", compute_target="cpu-cluster",
        node_count=1, process_count_per_node=2, run_invocation_timeout=30, run_max_try=2,
        logging_level="DEBUG", environment_variables={"CONF_FLAG": "enabled"})
    model = Dataset.File.from_files(path=str(root / "model")).as_named_input("model")
    return ParallelRunStep(
        name="conf-python-v1", parallel_run_config=config,
        inputs=[Dataset.File.from_files(path=str(root / "data")).as_named_input("data")],
        side_inputs=[model], arguments=["--model", model], output=PipelineData("output"))


def _sources(root):
    """(dialect, source, overrides) for every way of writing the job."""
    data, model = str(root / "data"), str(root / "model")
    return {
        "v2": (str(root / "job.yml"), []),
        "v2-component": (str(root / "component.yml"),
                         [f"inputs.data.path={data}", f"inputs.model.path={model}"]),
        "pipeline-inline": (str(root / "pipeline.yml"), []),
        "pipeline-component": (str(root / "pipeline_component.yml"), []),
        "sdk15": (str(root / "src" / "parallel_score.yml"),
                  [f"inputs.data={data}", f"inputs.model={model}", *RUN_SETTINGS]),
        "module_spec": (str(root / "src" / "module_spec.yaml"),
                        [f"inputs.data={data}", f"inputs.model={model}", *RUN_SETTINGS]),
        "v1": (str(root / "parallel_run_config.yml"),
               [f"inputs.data={data}", f"side_inputs.model={model}",
                "arguments=--model ${{inputs.model}}"]),
        "python-v2": (_python_v2(root), None),
        "python-v1": (_python_v1(root), None),
    }


DIALECTS = ["v2", "v2-component", "pipeline-inline", "pipeline-component", "sdk15",
            "module_spec", "v1", "python-v2", "python-v1"]


def _comparable(spec):
    d = spec.to_dict()
    for key in ("name", "source"):
        d.pop(key)
    return d


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_gives_the_same_jobspec(job, dialect):
    source, overrides = _sources(job)[dialect]
    spec = load(source, overrides)
    reference = load(str(job / "job.yml"))
    assert _comparable(spec) == _comparable(reference)
    assert spec.task.entry_path == str(job / "src" / "score.py")
    assert spec.max_tries == 2 and spec.retry_settings.timeout == 30
    assert spec.environment_variables == {"CONF_FLAG": "enabled"}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_runs_the_same(job, dialect, client, tmp_path):
    for tries in (job / "data").glob("*.tries"):
        tries.unlink()
    source, overrides = _sources(job)[dialect]
    result = daskprs.run(source, overrides, client=client, run_dir=tmp_path / "run",
                         quiet=True)
    assert result.status == "succeeded", result.reason
    c = result.counts
    assert (c["mini_batches"], c["succeeded"], c["failed"]) == (4, 3, 1)
    assert (c["items_succeeded"], c["items_failed"], c["attempts"]) == (6, 2, 5)
    assert read_lines(result.append_row_file) == [
        f"f{i}.txt {i * 10} enabled" for i in (0, 1, 2, 3, 6, 7)]
    assert result.append_row_file == str(tmp_path / "run/outputs/output/parallel_run_step.txt")
    # The failing mini-batch (f4, f5) was tried max_retries + 1 = 2 times; f4 passed each time.
    assert (job / "data" / "f4.txt.tries").read_text() == "xx"
    assert [f["error_type"] for f in result.failures] == ["ValueError"]
