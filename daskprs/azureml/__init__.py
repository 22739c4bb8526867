"""Azure ML SDK shapes, so that a notebook ports to daskprs by changing only its imports.

SDK v2 (``azure.ai.ml``)::

    from daskprs.azureml import (Input, Output, AssetTypes, InputOutputModes, MLClient,
                                 load_component, pipeline, parallel_run_function, RunFunction,
                                 JobException)

SDK v1 (``azureml.core``, ``azureml.pipeline``)::

    from daskprs.azureml import (Workspace, Experiment, Environment, Dataset, Datastore,
                                 PipelineParameter, PipelineData, OutputFileDatasetConfig,
                                 DatasetConsumptionConfig, Pipeline, ParallelRunConfig,
                                 ParallelRunStep)

The objects only build a JobSpec (``obj.to_jobspec(overrides=None)``; ``daskprs.run(obj)``
runs one parallel job) or, for a whole pipeline, the v2 pipeline mapping that
``ml_client.jobs.create_or_update`` / ``Experiment.submit`` run here. Workspaces, compute targets
and environments are accepted and ignored: the job runs on Dask, in this Python environment.
"""

from __future__ import annotations

from ._env import CondaDependencies, Environment
from ._run import PipelineResult, run_pipeline
from ._v1 import (
    Dataset,
    DatasetConsumptionConfig,
    Datastore,
    Experiment,
    FileDataset,
    OutputFileDatasetConfig,
    ParallelRunConfig,
    ParallelRunStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PortDataReference,
    PromoteHeadersBehavior,
    StepRun,
    TabularDataset,
    Workspace,
)
from ._v2 import (
    AssetTypes,
    Command,
    Input,
    InputOutputModes,
    JobException,
    MLClient,
    Output,
    Parallel,
    PipelineJob,
    RunFunction,
    command,
    load_component,
    parallel_run_function,
    pipeline,
)

__all__ = [
    "AssetTypes",
    "Command",
    "CondaDependencies",
    "Dataset",
    "DatasetConsumptionConfig",
    "Datastore",
    "Environment",
    "Experiment",
    "FileDataset",
    "Input",
    "InputOutputModes",
    "JobException",
    "MLClient",
    "Output",
    "OutputFileDatasetConfig",
    "Parallel",
    "ParallelRunConfig",
    "ParallelRunStep",
    "Pipeline",
    "PipelineData",
    "PipelineJob",
    "PipelineParameter",
    "PipelineResult",
    "PipelineRun",
    "PortDataReference",
    "PromoteHeadersBehavior",
    "RunFunction",
    "StepRun",
    "TabularDataset",
    "Workspace",
    "command",
    "load_component",
    "parallel_run_function",
    "pipeline",
    "run_pipeline",
]
