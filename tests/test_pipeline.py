"""v2 ``type: pipeline`` specs (issue 4): parallel jobs inline or from component files, parent
bindings, --job / --set routing, and command steps that run before the parallel job that reads
their outputs; the oj-sales-shaped example and seed 002 run from the CLI."""

import json
import os
import textwrap

import pytest
from conftest import SCRIPTS, cli, make_files, read_lines

from daskprs.api import load
from daskprs.commands import RUN_DIR_TOKEN
from daskprs.errors import SpecError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "fixtures", "seeds")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def test_oj_sales_pipeline_partitions_then_trains_one_model_per_key(tmp_path):
    spec = os.path.join(ROOT, "examples", "oj_sales", "pipeline.yml")
    run_dir = tmp_path / "run"
    proc = cli("run", spec, "--run-dir", str(run_dir), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SUCCEEDED: 9/9 mini-batches" in proc.stdout
    # The command step ran first, in its code folder, logging to logs/commands/.
    log_text = (run_dir / "logs/commands/partition_job.txt").read_text()
    assert "partitioned 270 rows by Store, Brand" in log_text
    table = run_dir / "steps/partition_job/tabular_output_data"
    assert (table / "MLTable").is_file() and (table / "1000" / "dominicks" / "part.csv").is_file()
    # One model per (Store, Brand), each trained on that key's 30 weeks only.
    models = sorted((run_dir / "outputs/model_folder").glob("model_*.json"))
    assert len(models) == 9
    model = json.loads((run_dir / "outputs/model_folder/model_1001_tropicana.json").read_text())
    assert model["key"] == {"Store": "1001", "Brand": "tropicana"} and model["rows"] == 30
    assert model["features"][-1] == "Price" and model["coefficients"][-1] < -1000
    logs = "".join(p.read_text() for p in
                   (run_dir / "logs/user/entry_script_log").glob("*/*.log.txt"))
    assert logs.count("trained {") == 9
    # Resuming does not run the finished command step again.
    before = (run_dir / "logs/commands/partition_job.done").stat().st_mtime_ns
    proc = cli("resume", str(run_dir), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "logs/commands/partition_job.done").stat().st_mtime_ns == before


def test_seed_002_pipeline_runs_with_paths_from_set(tmp_path):
    table = tmp_path / "iris"
    table.mkdir()
    rows = ["id,sepal_length,sepal_width,petal_length,petal_width"]
    rows += [f"{i},{4 + i % 40 / 10},{2 + i % 25 / 10},{1 + i % 60 / 10},{i % 25 / 10}"
             for i in range(600)]
    (table / "iris.csv").write_text("\n".join(rows) + "\n")
    (table / "MLTable").write_text("paths:\n  - file: ./iris.csv\ntransformations:\n"
                                   "  - read_delimited:\n      delimiter: ','\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text(json.dumps(
        {"weights": {"petal_length": 1.0, "petal_width": 2.0}, "threshold": 6.0}))
    proc = cli("run", os.path.join(SEEDS, "002_pipeline.yaml"),
               "--set", f"inputs.input_data={table}", "--set", f"inputs.score_model={model}",
               "--run-dir", str(tmp_path / "run"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run/outputs/job_output_file/job_output_file.txt"  # a uri_file output
    lines = read_lines(out)
    assert len(lines) == 600 and lines[0] == "0 small" and lines[599].startswith("599 ")
    result = (tmp_path / "run/logs/job_result.txt").read_text()
    assert "mini_batch_error_threshold=5, error_threshold=5, allowed_failed_percent=30" in result
    job = load(os.path.join(SEEDS, "002_pipeline.yaml"),
               [f"inputs.input_data={table}", f"inputs.score_model={model}"])
    assert (job.name, job.instance_count, job.max_concurrency_per_instance) == (
        "batch_prediction", 2, 2)
    assert (job.logging_level, job.task_overhead_timeout, job.stall_timeout) == (
        "DEBUG", 1200, 600)
    assert (job.data_input.type, job.data_input.mode) == ("mltable", "direct")


TWO_JOBS = """
    type: pipeline
    inputs:
      files: {type: uri_folder, path: ./data}
      nodes: 3
    outputs:
      kept: {type: uri_folder, path: ./kept}
    settings: {default_compute: azureml:cpu-cluster, continue_on_step_failure: true}
    jobs:
      make:
        type: command
        code: ./steps
        command: python make.py --out ${{outputs.made}} --n ${{inputs.n}}
        inputs: {n: 4}
        outputs: {made: {type: uri_folder}}
      unrelated:
        type: command
        command: echo hello
      first:
        type: parallel
        inputs:
          data: ${{parent.inputs.files}}
        outputs:
          scores: ${{parent.outputs.kept}}
        input_data: ${{inputs.data}}
        resources: {instance_count: "${{parent.inputs.nodes}}"}
        task: {code: ./src, entry_script: echo.py, append_row_to: "${{outputs.scores}}"}
      second:
        type: parallel
        inputs:
          data: {path: "${{parent.jobs.make.outputs.made}}", mode: ro_mount}
          previous: ${{parent.jobs.first.outputs.scores}}
        outputs:
          result: {type: uri_folder}
        input_data: ${{inputs.data}}
        task:
          code: ./src
          entry_script: echo.py
          program_arguments: --previous ${{inputs.previous}}
    """


@pytest.fixture
def two_jobs(tmp_path):
    path = _write(tmp_path / "pipeline.yml", TWO_JOBS)
    _write(tmp_path / "src" / "echo.py", "def run(mini_batch):\n    return mini_batch\n")
    make_files(tmp_path / "data", 3)
    return path


def test_several_parallel_jobs_need_job_and_the_error_lists_them(two_jobs):
    with pytest.raises(SpecError, match=r"2 parallel jobs: first, second.*--job NAME"):
        load(two_jobs)
    with pytest.raises(SpecError, match=r"no job 'frist'. Did you mean 'first'"):
        load(two_jobs, job="frist")
    with pytest.raises(SpecError, match=r"jobs.make is a command step"):
        load(two_jobs, job="make")
    proc = cli("validate", two_jobs)
    assert proc.returncode == 2 and "first, second" in proc.stderr


def test_parent_bindings_and_set_routing(two_jobs, tmp_path):
    spec = load(two_jobs, ["mini_batch_size=2", "jobs.second.mini_batch_size=5"], job="first")
    assert spec.name == "first" and spec.mini_batch_size == "2"
    assert spec.instance_count == 3  # ${{parent.inputs.nodes}}, a typed literal
    assert spec.inputs["data"].path == str(tmp_path / "data")
    assert spec.outputs["scores"].path == str(tmp_path / "kept")  # the pipeline output's path
    assert spec.pre_steps == ()  # no command step feeds this job
    spec = load(two_jobs, ["inputs.nodes=5", "node_count=2"], job="first")
    assert spec.instance_count == 2  # the job's own --set (a v1 alias) wins over the binding
    spec = load(two_jobs, ["inputs.nodes=5"], job="first")
    assert spec.instance_count == 5  # a pipeline input set with --set flows into the job


def test_command_steps_that_feed_the_job_become_its_pre_steps(two_jobs, tmp_path):
    spec = load(two_jobs, job="second")
    assert [step["name"] for step in spec.pre_steps] == ["make"]  # not `unrelated`
    made = f"{RUN_DIR_TOKEN}/steps/make/made"
    assert spec.inputs["data"].path == made and spec.inputs["data"].mode == "ro_mount"
    assert spec.pre_steps[0]["outputs"]["made"]["path"] == made
    assert spec.pre_steps[0]["cwd"] == str(tmp_path / "steps")
    # The output of parallel job `first` has a path (the pipeline output): bound to it.
    assert spec.inputs["previous"].path == str(tmp_path / "kept")
    # Giving the data another path drops the step that would have produced it.
    spec = load(two_jobs, [f"inputs.data={tmp_path / 'data'}"], job="second")
    assert spec.pre_steps == () and spec.inputs["data"].path == str(tmp_path / "data")


def test_an_output_of_another_parallel_job_without_path_says_what_to_do(two_jobs, tmp_path):
    text = (tmp_path / "pipeline.yml").read_text()
    (tmp_path / "pipeline.yml").write_text(
        text.replace("scores: ${{parent.outputs.kept}}", "scores: {}"))
    with pytest.raises(SpecError, match=r"jobs.second.inputs.previous: binds output 'scores' "
                       r"of jobs.first, a parallel job.*--job first"):
        load(two_jobs, job="second")


def test_command_step_runs_before_the_job_failure_is_exit_1_and_resume_skips_it(
        two_jobs, tmp_path):
    counter = tmp_path / "make_ran.txt"
    _write(tmp_path / "steps" / "make.py", f"""
        import argparse, os
        p = argparse.ArgumentParser()
        p.add_argument("--out")
        p.add_argument("--n", type=int)
        a = p.parse_args()
        if os.environ.get("MAKE_FAIL"):
            raise SystemExit("cannot make the data")
        for i in range(a.n):
            open(os.path.join(a.out, f"m{{i}}.txt"), "w").write(str(i))
        open({str(counter)!r}, "a").write("ran\\n")
        """)
    marks = tmp_path / "once"
    marks.mkdir()
    args = [f"jobs.second.task.code={SCRIPTS}", "jobs.second.task.entry_script=behave.py",
            "jobs.second.task.program_arguments=--mode raise --trigger m2.txt "
            f"--once {marks}", "jobs.second.retry_settings.max_retries=0",
            "jobs.second.mini_batch_error_threshold=0", "jobs.second.mini_batch_size=1"]
    sets = [x for a in args for x in ("--set", a)]
    run_dir = tmp_path / "run"
    env = {**os.environ, "MAKE_FAIL": "1"}
    proc = cli("run", two_jobs, "--job", "second", *sets, "--run-dir", str(run_dir),
               "--quiet", env=env)
    assert proc.returncode == 1, proc.stderr
    log_path = run_dir / "logs/commands/make.txt"
    assert "pipeline step 'make' (type: command) exited with code 1" in proc.stderr
    assert str(log_path) in proc.stderr and "cannot make the data" in proc.stderr
    assert "cannot make the data" in log_path.read_text()

    run_dir = tmp_path / "run2"
    proc = cli("run", two_jobs, "--job", "second", *sets, "--run-dir", str(run_dir), "--quiet")
    assert proc.returncode == 1, proc.stderr  # m2.txt raised once: the threshold is 0
    assert read_lines(counter) == ["ran"]
    assert sorted(os.listdir(run_dir / "steps/make/made")) == [f"m{i}.txt" for i in range(4)]
    proc = cli("resume", str(run_dir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert read_lines(counter) == ["ran"]  # the finished command step did not run again
    assert "SUCCEEDED: 4/4" in proc.stdout


COMPONENT = """
    $schema: https://azuremlschemas.azureedge.net/latest/parallelComponent.schema.json
    type: parallel
    name: scorer
    version: 2
    inputs:
      data: {type: uri_folder}
      threshold: {type: number, default: 0.5}
    outputs:
      out: {type: uri_folder}
    input_data: ${{inputs.data}}
    mini_batch_size: "4"
    max_concurrency_per_instance: 4
    retry_settings: {max_retries: 5, timeout: 20}
    task:
      code: ./code
      entry_script: echo.py
      program_arguments: --threshold ${{inputs.threshold}}
      append_row_to: ${{outputs.out}}
    """


def test_component_reference_with_node_overrides(tmp_path):
    _write(tmp_path / "components" / "scorer.yml", COMPONENT)
    _write(tmp_path / "components" / "code" / "echo.py", "def run(b):\n    return b\n")
    path = _write(tmp_path / "pipeline.yml", """
        type: pipeline
        jobs:
          score:
            type: parallel
            component: ./components/scorer.yml
            inputs:
              data: {path: ./data, mode: download}
              threshold: 0.9
            max_concurrency_per_instance: 2
            retry_settings: {max_retries: 1}
        """)
    spec = load(path)
    assert spec.task.code == str(tmp_path / "components" / "code")  # relative to the component
    assert spec.inputs["data"].path == str(tmp_path / "data")  # relative to the pipeline
    assert spec.inputs["threshold"].value == 0.9
    assert (spec.mini_batch_size, spec.max_concurrency_per_instance) == ("4", 2)
    assert (spec.retry_settings.max_retries, spec.retry_settings.timeout) == (1, 20)
    assert spec.name == "score"
    # The component file on its own is the v2 dialect: paths come from --set.
    alone = load(str(tmp_path / "components" / "scorer.yml"), [f"inputs.data={tmp_path}"])
    assert alone.name == "scorer" and alone.max_tries == 6


@pytest.mark.parametrize(("node", "message"), [
    ("component: azureml:scorer:2", r"registered component.*local YAML file"),
    ("component: ./scorer.yml\n    inputs: {dta: {path: ./data}}",
     r"jobs.score.inputs.dta: the component declares no such port. Did you mean 'data'"),
    ("component: ./scorer.yml\n    inputs: {data: {path: 'azureml:iris:1'}}",
     r"data asset or datastore path.*--set"),
    ("component: ./scorer.yml\n    inputs: {data: '${{parent.inputs.nothing}}'}",
     r"names no pipeline input"),
])
def test_pipeline_errors_name_the_key_and_what_to_do(tmp_path, node, message):
    _write(tmp_path / "scorer.yml", COMPONENT)
    path = _write(tmp_path / "pipeline.yml",
                  f"type: pipeline\njobs:\n  score:\n    type: parallel\n    {node}\n")
    with pytest.raises(SpecError, match=message):
        load(path)


def test_plan_of_a_job_whose_data_a_command_step_writes_says_why_it_cannot(tmp_path):
    spec = os.path.join(ROOT, "examples", "oj_sales", "pipeline.yml")
    refused = cli("plan", spec)
    assert refused.returncode == 2
    assert "written by the pipeline step partition_job" in refused.stderr
    assert "--set inputs.data_source=PATH" in refused.stderr
