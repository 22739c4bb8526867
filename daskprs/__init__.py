"""daskprs: run Azure-ML-style parallel jobs (ParallelRunStep, ``type: parallel``) on Dask.

>>> import daskprs
>>> result = daskprs.run("job.yml", overrides={"mini_batch_size": "10"})  # doctest: +SKIP

Names are imported lazily, so the worker-side child process starts without importing Dask.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DaskPRSError": "daskprs.errors",
    "EntryScript": "daskprs.entry_script",
    "EntryScriptError": "daskprs.errors",
    "InputError": "daskprs.errors",
    "JobFailed": "daskprs.errors",
    "JobSpec": "daskprs.spec",
    "Plan": "daskprs.plan",
    "ResumeError": "daskprs.errors",
    "RunResult": "daskprs.api",
    "SpecError": "daskprs.errors",
    "load_spec": "daskprs.dialects",
    "make_plan": "daskprs.api",
    "resume": "daskprs.api",
    "run": "daskprs.api",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'daskprs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
