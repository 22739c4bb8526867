"""daskprs.azureml (issue 4): the seeds' SDK v1 and v2 notebook code runs with only its imports
changed; the SDK-shaped objects build JobSpecs that daskprs.run accepts; EntryScript works in
unchanged entry scripts on every worker."""

import os
import runpy
import shutil

import pytest
from conftest import make_files, read_lines

import daskprs
from daskprs.azureml import (
    Dataset,
    Datastore,
    Environment,
    Experiment,
    Input,
    JobException,
    MLClient,
    Output,
    OutputFileDatasetConfig,
    ParallelRunConfig,
    ParallelRunStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    RunFunction,
    Workspace,
    command,
    parallel_run_function,
    pipeline,
)
from daskprs.errors import JobFailed, SpecError

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
SEEDS = os.path.join(FIXTURES, "seeds")


def test_seed_sdk_v1_code_runs_with_only_imports_changed(tmp_path, monkeypatch):
    shutil.copytree(os.path.join(FIXTURES, "azureml_v1", "scripts"), tmp_path / "scripts")
    for i in range(12):
        (tmp_path / "mnist").mkdir(exist_ok=True)
        (tmp_path / "mnist" / f"img_{i:02d}.txt").write_text(str(i * 3))
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(os.path.join(SEEDS, "sdk_v1_notebook.py"))
    run = ns["pipeline_run"]
    assert run.get_status() == "Finished"
    result = run.results["predict-digits-mnist"]
    assert result.counts["mini_batches"] == 3  # mini_batch_size PipelineParameter default "5"
    assert result.append_row_file.endswith("outputs/inferences/mnist_outputs.txt")
    assert read_lines(result.append_row_file) == [
        f"img_{i:02d}.txt: {i * 3 % 10}" for i in range(12)]
    spec = ns["parallelrun_step"].to_jobspec()
    assert (spec.instance_count, spec.max_concurrency_per_instance) == (2, 2)
    assert (spec.error_threshold, spec.max_tries, spec.retry_settings.timeout) == (10, 3, 60)
    assert spec.input_data == "minist_param_config"


def test_seed_sdk_v2_code_runs_with_only_imports_changed(tmp_path, monkeypatch):
    shutil.copytree(os.path.join(FIXTURES, "azureml_v2", "src"), tmp_path / "src")
    (tmp_path / "dataset").mkdir()
    for i in range(3):
        rows = "".join(f"{i * 10 + j},{(i * 10 + j) % 7}\n" for j in range(10))
        (tmp_path / "dataset" / f"part{i}.csv").write_text("id,x\n" + rows)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text('{"threshold": 3}')
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(os.path.join(SEEDS, "sdk_v2_notebook.py"))
    job = ns["pipeline_job"]
    assert job.status == "Completed", job.results
    root = tmp_path / "daskprs-runs" / job.name
    assert job.run_dir == str(root)
    # The command step ran first, then both parallel jobs on its outputs.
    assert "prepare_data.py" in (root / "logs/commands/prepare_file_tabular_data.txt").read_text()
    files = root / "jobs/batch_inference_with_file_data/outputs/job_output_path"
    assert sorted(os.listdir(files)) == [f"part{i}.csv.count" for i in range(3)]
    assert job.results["batch_inference_with_file_data"].counts["mini_batches"] == 3
    tabular = job.results["batch_inference_with_tabular_data"]
    # pipeline_job_out_tabular was set to uri_file: append_row writes that file.
    assert tabular.append_row_file == str(
        root / "jobs/batch_inference_with_tabular_data/outputs/job_output_path/"
        "job_output_path.txt")
    rows = read_lines(tabular.append_row_file)
    assert len(rows) == 30 and rows[:4] == ["0 0", "1 0", "2 0", "3 0"] and rows[4] == "4 1"
    yaml_text = str(job)
    assert "${{parent.jobs.prepare_file_tabular_data.outputs.file_output_data}}" in yaml_text
    assert "mode: eval_mount" in yaml_text


ENTRY = """
import os

from azureml_user.parallel_run import EntryScript


def init():
    EntryScript().logger.info("init in %s", EntryScript().agent_name)


def run(mini_batch):
    es = EntryScript()
    es.logger.info("got %d files", len(mini_batch))
    return [" ".join([es.agent_name, es.log_dir, es.output_dir, es.working_dir,
                      os.environ["AZUREML_BI_OUTPUT_PATH"]])]
"""


def test_entry_script_logger_and_folders_on_every_worker(tmp_path):
    import daskprs.entry_script

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "entry.py").write_text(ENTRY)
    data = make_files(tmp_path / "data", 6)
    fn = parallel_run_function(
        name="entry", inputs={"data": Input(type="uri_folder", path=str(data))},
        outputs={"out": Output(type="uri_folder")}, input_data="${{inputs.data}}",
        mini_batch_size="1", max_concurrency_per_instance=2,
        task=RunFunction(code=str(tmp_path / "src"), entry_script="entry.py",
                         append_row_to="${{outputs.out}}"))
    run_dir = tmp_path / "run"
    result = daskprs.run(fn, run_dir=run_dir, quiet=True)
    assert result.ok, result.reason
    out = str(run_dir / "outputs" / "out")
    agents = set()
    for line in read_lines(result.append_row_file):
        agent, log_dir, output_dir, working_dir, bi = line.split(" ")
        agents.add((log_dir, agent))
        assert os.path.dirname(log_dir) == str(run_dir / "logs/user/entry_script_log")
        assert output_dir == bi == out and working_dir == str(run_dir)
    assert len(agents) == 2  # two worker processes, each with its own log file
    for log_dir, agent in agents:
        with open(os.path.join(log_dir, f"{agent}.log.txt")) as f:
            text = f.read()
        assert f"init in {agent}" in text and "got 1 files" in text
    import azureml_user.parallel_run

    assert azureml_user.parallel_run.EntryScript is daskprs.EntryScript
    assert daskprs.EntryScript is daskprs.entry_script.EntryScript


ECHO = "def run(mini_batch):\n    return [p.rsplit('/', 1)[-1] for p in mini_batch]\n"


@pytest.fixture
def echo(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "echo.py").write_text(ECHO)
    make_files(tmp_path / "data", 5)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _config(**kwargs):
    settings = dict(environment=Environment("env"), entry_script="echo.py",
                    source_directory="src", error_threshold=-1, output_action="append_row",
                    compute_target="cpu", node_count=1, process_count_per_node=2)
    return ParallelRunConfig(**{**settings, **kwargs})


def test_parallel_run_config_alone_takes_its_data_from_overrides(echo):
    result = daskprs.run(_config(mini_batch_size="2"), {"inputs.data": "data"},
                         run_dir=echo / "run", quiet=True)
    assert result.ok and result.counts["mini_batches"] == 3
    assert read_lines(result.append_row_file) == [f"f0000{i}.txt" for i in range(5)]
    with pytest.raises(SpecError, match="--set inputs.NAME=PATH"):
        daskprs.run(_config(), run_dir=echo / "run2")


def test_v1_steps_chained_by_pipeline_data_with_pipeline_parameters(echo):
    (echo / "src" / "copy.py").write_text(
        "import os, shutil\n"
        "def run(mini_batch):\n"
        "    for p in mini_batch:\n"
        "        shutil.copy(p, os.environ['AZUREML_BI_OUTPUT_PATH'])\n"
        "    return mini_batch\n")
    between = PipelineData("copied")
    first = ParallelRunStep(
        name="copy", parallel_run_config=_config(entry_script="copy.py",
                                                 output_action="summary_only"),
        inputs=[Dataset.File.from_files("data").as_named_input("raw")], output=between)
    second = ParallelRunStep(
        name="list",
        parallel_run_config=_config(mini_batch_size=PipelineParameter("size", "1")),
        inputs=[between.as_input("copied")], output=PipelineData("listing"))
    run = Experiment(Workspace.from_config(), "chain").submit(
        Pipeline(Workspace(), [first, second]), pipeline_parameters={"size": "2"}, quiet=True)
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert list(run.results) == ["copy", "list"]
    listing = run.results["list"]
    assert listing.counts["mini_batches"] == 3  # the parameter given at submit: 2 files each
    assert read_lines(listing.append_row_file) == [f"f0000{i}.txt" for i in range(5)]
    with pytest.raises(SpecError, match="Experiment"):
        daskprs.run(Pipeline(Workspace(), [first, second]))


def test_v1_partition_format_and_partition_keys_group_files(echo):
    # As Azure's file-dataset-partition-per-folder notebook: {user}/{season}/{genres}.wav, keys
    # user and genres: six files make five mini-batches (the seasons merge).
    layout = [("alice", "summer", "rock"), ("alice", "winter", "rock"), ("alice", "summer", "pop"),
              ("bob", "summer", "rock"), ("bob", "winter", "jazz"), ("carol", "autumn", "pop")]
    for user, season, genre in layout:
        (echo / "music" / user / season).mkdir(parents=True, exist_ok=True)
        (echo / "music" / user / season / f"{genre}.wav").write_text("x")
    (echo / "src" / "keys.py").write_text(
        "def run(mini_batch, ctx):\n"
        "    key = ctx.partition_key_value\n"
        "    return [f\"{key['user']} {key['genres']} {len(mini_batch)}\"]\n")
    files = Dataset.File.from_files("music", partition_format="{user}/{season}/{genres}.wav")
    step = ParallelRunStep(
        name="by-key", parallel_run_config=_config(entry_script="keys.py",
                                                   partition_keys=["user", "genres"]),
        inputs=[files.as_named_input("music")], output=PipelineData("sizes"))
    result = daskprs.run(step, run_dir=echo / "run", quiet=True)
    assert result.ok, result.reason
    # in path order: bob's summer rock comes before his winter jazz
    assert read_lines(result.append_row_file) == [
        "alice pop 1", "alice rock 2", "bob rock 1", "bob jazz 1", "carol pop 1"]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_v1_tabular_dataset_gives_dataframes(echo, kind):
    import pandas as pd

    frame = pd.DataFrame({"a": range(6), "b": [i * i for i in range(6)]})
    (echo / "src" / "rows.py").write_text(
        "def run(df):\n    return [f'{a}:{b}' for a, b in zip(df['a'], df['b'])]\n")
    if kind == "csv":
        frame.to_csv(echo / "table.csv", sep=";", index=False)
        table = Dataset.Tabular.from_delimited_files(
            path="table.csv", separator=";",
            header=daskprs.azureml.PromoteHeadersBehavior.ALL_FILES_HAVE_SAME_HEADERS)
    else:
        frame.to_parquet(echo / "table.parquet")
        table = Dataset.Tabular.from_parquet_files(path=[str(echo / "table.parquet")])
    step = ParallelRunStep(name="rows", parallel_run_config=_config(entry_script="rows.py"),
                           inputs=[table.as_named_input("table")], output=PipelineData("o"))
    result = daskprs.run(step, run_dir=echo / "run", quiet=True)
    assert result.ok, result.reason
    assert read_lines(result.append_row_file) == [f"{i}:{i * i}" for i in range(6)]


def test_v2_pipeline_with_one_parallel_job_runs_through_daskprs_run(echo):
    make = command(
        name="make", code="src", command="python make.py ${{outputs.made}} ${{inputs.n}}",
        inputs={"n": 3}, outputs={"made": Output(type="uri_folder")},
        environment="azureml:env:1")
    (echo / "src" / "make.py").write_text(
        "import sys\nfor i in range(int(sys.argv[2])):\n"
        "    open(f'{sys.argv[1]}/m{i}.txt', 'w').write('x')\n")
    listing = parallel_run_function(
        name="listing", inputs={"files": Input(type="uri_folder")},
        outputs={"names": Output(type="uri_file")}, input_data="${{inputs.files}}",
        mini_batch_size="2", max_concurrency_per_instance=2,
        task=RunFunction(code="src", entry_script="echo.py", append_row_to="${{outputs.names}}"))

    @pipeline(name="made_and_listed")
    def made_and_listed():
        produced = make()
        listed = listing(files=produced.outputs.made)
        return {"names": listed.outputs.names}

    job = made_and_listed()
    spec = job.to_jobspec()
    assert spec.name == "listed" and [s["name"] for s in spec.pre_steps] == ["produced"]
    result = daskprs.run(job, run_dir=echo / "run", quiet=True)
    assert result.ok, result.reason
    assert result.append_row_file == str(echo / "run/outputs/names/names.txt")
    assert read_lines(result.append_row_file) == ["m0.txt", "m1.txt", "m2.txt"]
    assert (echo / "run/logs/commands/produced.done").is_file()
    # The same job through MLClient runs every step of the pipeline.
    ran = MLClient().jobs.create_or_update(made_and_listed(), run_dir=str(echo / "all"),
                                           quiet=True)
    assert ran.status == "Completed" and list(ran.results) == ["listed"]


def test_sdk_shaped_objects_report_misuse_clearly(echo):
    with pytest.raises(SpecError, match="task=RunFunction"):
        parallel_run_function(name="x", inputs={})
    fn = parallel_run_function(
        name="fn", inputs={"data": Input(type="uri_folder")}, input_data="${{inputs.data}}",
        task=RunFunction(code="src", entry_script="echo.py"))
    with pytest.raises(AttributeError, match="no input 'dta'. Did you mean 'data'"):
        fn.inputs.dta  # noqa: B018
    with pytest.raises(SpecError, match=r"--set inputs\.data\.path=PATH"):
        daskprs.run(fn)
    result = daskprs.run(fn, {"inputs.data": "data"}, run_dir=echo / "run", quiet=True)
    assert result.ok and result.counts["items_succeeded"] == 5

    @pipeline()
    def bad():
        return {"x": "not an output"}

    with pytest.raises(SpecError, match="must be a job's output"):
        bad()


def test_v1_run_id_in_a_destination_is_each_step_runs_own(echo):
    store = Workspace.from_config().get_default_datastore()
    out = OutputFileDatasetConfig(name="names",
                                  destination=(store, "results/{run-id}/{output-name}"))
    step = ParallelRunStep(name="echo", parallel_run_config=_config(mini_batch_size="2"),
                           inputs=[Dataset.File.from_files("data").as_named_input("raw")],
                           output=out)
    experiment = Experiment(Workspace(), "ids")
    for run_dir in ("one", "two"):  # a second run must not overwrite the first one's output
        run = experiment.submit(Pipeline(Workspace(), [step]), run_dir=str(echo / run_dir),
                                quiet=True)
        assert run.wait_for_completion(show_output=False) == "Finished"
        assert run.results["echo"].outputs["names"] == str(echo / f"results/{run_dir}_echo/names")
    for run_dir in ("one", "two"):
        assert read_lines(echo / f"results/{run_dir}_echo/names/parallel_run_step.txt") == [
            f"f0000{i}.txt" for i in range(5)]
    # Run on its own, the step gets a new id each time; a step reading that output cannot know
    # it, and says so.
    result = daskprs.run(step, run_dir=echo / "alone", quiet=True)
    assert result.ok and "{" not in result.outputs["names"]
    assert result.outputs["names"].startswith(str(echo / "results/echo-"))
    reader = ParallelRunStep(name="reader", parallel_run_config=_config(),
                             inputs=[out.as_input("names")], output=PipelineData("o"))
    with pytest.raises(SpecError, match=r"holds \{run-id\}.*Experiment\(ws, NAME\)\.submit"):
        reader.to_jobspec()
    with pytest.raises(SpecError, match=r"\{run_id\} is not a placeholder.*\{run-id\} and "):
        OutputFileDatasetConfig(destination=(store, "results/{run_id}"))


TABLE_IN = """
import os

import pandas as pd


def run(mini_batch):
    rows = pd.DataFrame({"file": [os.path.basename(p) for p in mini_batch],
                         "n": [int(open(p).read()) for p in mini_batch]})
    if os.environ.get("AS_PARQUET"):
        out = os.environ["AZUREML_BI_OUTPUT_PATH"]
        rows.to_parquet(os.path.join(out, rows["file"][0] + ".parquet"))
        return list(mini_batch)
    return rows
"""
TABLE_OUT = """
def run(table):
    return [f"{type(table).__name__} {f}={n * 10}" for f, n in zip(table.iloc[:, 0],
                                                                   table.iloc[:, 1])]
"""


@pytest.mark.parametrize("kind", ["delimited", "parquet"])
def test_v1_step_output_read_as_a_table_gives_the_next_step_dataframes(echo, kind):
    import yaml

    (echo / "src" / "table_in.py").write_text(TABLE_IN)
    (echo / "src" / "table_out.py").write_text(TABLE_OUT)
    if kind == "delimited":  # DataFrame rows appended space-separated, without a header
        written = OutputFileDatasetConfig(
            name="scored", destination=(Workspace().get_default_datastore(), "out/{run-id}"))
        table = written.read_delimited_files(separator=" ", header=False)
        first = _config(entry_script="table_in.py", mini_batch_size="2")
    else:  # one Parquet file per mini-batch, written by run() itself
        written = PipelineData("scored")
        table = written.as_dataset().parse_parquet_files()
        first = _config(entry_script="table_in.py", mini_batch_size="2",
                        output_action="summary_only", environment_variables={"AS_PARQUET": "1"})
    make = ParallelRunStep(name="make", parallel_run_config=first,
                           inputs=[Dataset.File.from_files("data").as_named_input("raw")],
                           output=written)
    use = ParallelRunStep(name="use", inputs=[table.as_input(name="scored_tab")],
                          parallel_run_config=_config(entry_script="table_out.py",
                                                      mini_batch_size="1MB"),
                          output=PipelineData("final"))
    run = Experiment(Workspace(), "tables").submit(Pipeline(Workspace(), [use, make]),
                                                   run_dir=str(echo / "run"), quiet=True)
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert read_lines(run.results["use"].append_row_file) == [
        f"DataFrame f0000{i}.txt={i * 10}" for i in range(5)]
    with open(echo / "run/jobs/use/job.yaml") as f:
        assert yaml.safe_load(f)["spec"]["input_data"] == "scored_tab"
    if kind == "delimited":
        assert (echo / "out/run_make/parallel_run_step.txt").is_file()
        # A table read from another step's output is that step's only input.
        with pytest.raises(SpecError, match="must be the step's only input"):
            ParallelRunStep(name="two", parallel_run_config=_config(),
                            inputs=[Dataset.File.from_files("data").as_named_input("raw"),
                                    table.as_input("t")]).to_jobspec()
        # As a side input it is a table too (an MLTable), beside the data inputs.
        written = OutputFileDatasetConfig(name="fixed", destination="out/run_make")
        spec = ParallelRunStep(name="side", parallel_run_config=_config(),
                               inputs=[Dataset.File.from_files("data").as_named_input("raw"),
                                       Dataset.File.from_files("src").as_named_input("code")],
                               side_inputs=[written.read_delimited_files().as_input("t")],
                               ).to_jobspec()
        assert spec.inputs["t"].type == "mltable" and spec.input_data == "raw+code"


def test_v2_stream_raises_job_exception_with_the_reason_of_a_failed_job(echo, capsys):
    (echo / "src" / "broken.py").write_text(
        "def init():\n    open('./model/m.json')\n\n\ndef run(mini_batch):\n    return []\n")
    job = parallel_run_function(
        name="single", inputs={"data": Input(type="uri_folder", path="data")},
        outputs={"o": Output(type="uri_file")}, input_data="${{inputs.data}}",
        task=RunFunction(code="src", entry_script="broken.py", append_row_to="${{outputs.o}}"))
    ml_client = MLClient(None, "sub", "rg", "ws")
    submitted = ml_client.jobs.create_or_update(job, run_dir=str(echo / "run"), quiet=True)
    assert submitted.status == "Failed"  # submitting does not raise: the job ran and failed
    with pytest.raises(JobException, match=r"(?s)job run failed: init\(\) failed.*"
                                           r"FileNotFoundError.*m\.json.*run dir: .*/run\)"):
        ml_client.jobs.stream(submitted.name)
    assert "Status: Failed" in capsys.readouterr().out
    # In a pipeline, a command step that fails is reported the same way.
    fail = command(name="fail", code="src", command="python -c 'raise SystemExit(3)'",
                   outputs={"made": Output(type="uri_folder")})

    @pipeline()
    def failing():
        made = fail()
        job(data=made.outputs.made)

    submitted = ml_client.jobs.create_or_update(failing(), run_dir=str(echo / "p"), quiet=True)
    assert submitted.status == "Failed"
    with pytest.raises(JobException, match=r"jobs\.made failed: pipeline step 'made' \(type: "
                                           r"command\) exited with code 3"):
        ml_client.jobs.stream(submitted.name)
    # A job that succeeded streams without raising.
    ok = parallel_run_function(
        name="ok", inputs={"data": Input(type="uri_folder", path="data")},
        input_data="${{inputs.data}}", task=RunFunction(code="src", entry_script="echo.py"))
    done = ml_client.jobs.create_or_update(ok, run_dir=str(echo / "ok"), quiet=True)
    ml_client.jobs.stream(done.name)
    assert done.studio_url == (echo / "ok").as_uri()


def test_v1_results_read_as_azures_notebooks_read_them(echo):
    output_dir = PipelineData(name="inferences",
                              datastore=Workspace.from_config().get_default_datastore())
    config = _config(mini_batch_size="2", append_row_file_name="names.txt")
    step = ParallelRunStep(name="names", parallel_run_config=config, output=output_dir,
                           inputs=[Dataset.File.from_files("data").as_named_input("raw")])
    pipeline_run = Experiment(Workspace(), "results").submit(Pipeline(Workspace(), [step]),
                                                             quiet=True)
    pipeline_run.wait_for_completion(show_output=False)
    expected = [f"f0000{i}.txt" for i in range(5)]
    # MachineLearningNotebooks, file-dataset-image-inference-mnist:
    batch_run = pipeline_run.find_step_run(step.name)[0]
    batch_output = batch_run.get_output_data(output_dir.name)
    target_dir = str(echo / "target")
    batch_output.download(local_path=target_dir)
    result_file = os.path.join(target_dir, batch_output.path_on_datastore,
                               config.append_row_file_name)
    assert read_lines(result_file) == expected
    assert batch_output.path_on_datastore == os.path.join(
        "daskprs-runs", pipeline_run.id, "jobs", "names", "outputs", "inferences")
    # Azure's batch-inference docs: the first child run, its output, then search the folder.
    prediction_run = next(pipeline_run.get_children())
    assert prediction_run.id == f"{pipeline_run.id}_names" and prediction_run.name == "names"
    prediction_run.get_output_data("inferences").download(local_path="results")
    found = [os.path.join(root, f) for root, _, files in os.walk("results") for f in files
             if f.endswith("names.txt")]
    assert len(found) == 1 and read_lines(found[0]) == expected
    with pytest.raises(SpecError, match="no output 'inference'. Did you mean 'inferences'"):
        batch_run.get_output_data("inference")
    # An output outside the datastore's folder keeps Azure's place for it.
    elsewhere = ParallelRunStep(name="names", parallel_run_config=config,
                                inputs=[Dataset.File.from_files("data").as_named_input("raw")],
                                output=PipelineData("inferences", datastore=Datastore(
                                    root=str(echo / "store"))))
    run = Experiment(Workspace(), "results").submit(elsewhere, run_dir="other", quiet=True)
    output = run.find_step_run("names")[0].get_output_data("inferences")
    assert output.path_on_datastore == "azureml/other_names/inferences"
    assert read_lines(os.path.join(output.download("t2"), "names.txt")) == expected


def test_v1_a_step_that_cannot_start_fails_the_run_and_the_steps_before_stay_readable(echo):
    empty = OutputFileDatasetConfig(name="nothing", destination="out/{run-id}")
    make = ParallelRunStep(name="make", parallel_run_config=_config(output_action="summary_only"),
                           inputs=[Dataset.File.from_files("data").as_named_input("raw")],
                           output=empty)
    use = ParallelRunStep(name="use", parallel_run_config=_config(),
                          inputs=[empty.read_delimited_files().as_input("rows")])
    run = Experiment(Workspace(), "fails").submit(Pipeline(Workspace(), [make, use]),
                                                  run_dir="run", quiet=True)
    assert run.get_status() == "Failed"
    with pytest.raises(JobFailed, match=r"jobs\.use failed: inputs\.rows: .*out/run_make holds "
                                        "no files"):
        run.wait_for_completion(show_output=False)
    assert run.find_step_run("make")[0].get_status() == "Finished"
    assert run.find_step_run("use") == []


def test_v2_job_results_download_as_azure_lays_them_out(echo):
    make = command(name="make", code="src", command="python make.py ${{outputs.made}}",
                   outputs={"made": Output(type="uri_folder")})
    (echo / "src" / "make.py").write_text(
        "import sys\nfor i in range(3):\n    open(f'{sys.argv[1]}/m{i}.txt', 'w').write('x')\n")
    listing = parallel_run_function(
        name="listing", inputs={"files": Input(type="uri_folder")},
        outputs={"names": Output(type="uri_file")}, input_data="${{inputs.files}}",
        task=RunFunction(code="src", entry_script="echo.py", append_row_to="${{outputs.names}}"))

    @pipeline()
    def made_and_listed():
        produced = make()
        listed = listing(files=produced.outputs.made)
        return {"names": listed.outputs.names, "made": produced.outputs.made}

    ml_client = MLClient.from_config(credential=None)
    job = ml_client.jobs.create_or_update(made_and_listed(), run_dir="run", quiet=True)
    ml_client.jobs.stream(job.name)
    # As Azure's batch-inference docs read a job's output:
    ml_client.jobs.download(name=job.name, output_name="names", download_path="./dl")
    assert read_lines(echo / "dl/named-outputs/names/names.txt") == ["m0.txt", "m1.txt", "m2.txt"]
    ml_client.jobs.download(job.name, download_path="all", all=True)
    assert sorted(os.listdir(echo / "all/named-outputs/made")) == ["m0.txt", "m1.txt", "m2.txt"]
    assert (echo / "all/named-outputs/names/names.txt").is_file()
    assert (echo / "all/artifacts/logs/commands/produced.txt").is_file()
    assert (echo / "all/artifacts/jobs/listed/logs/job_result.txt").is_file()
    assert not (echo / "dl/artifacts").exists()
    with pytest.raises(SpecError, match="no output 'name'. Did you mean 'names'"):
        ml_client.jobs.download(job.name, output_name="name")
