"""GPU workers without dask-cuda: one worker process per GPU, pinned with CUDA_VISIBLE_DEVICES.

dask-cuda pins dask and distributed to RAPIDS releases (reference C7); its core is small: a
Nanny ``env`` per worker and a ``GPU=1`` worker resource that every task asks for. Two ways in:

* ``LocalGPUCluster``: this machine's GPUs (the ``local`` cluster with ``gpus_per_instance``).
* ``dask worker --preload-nanny daskprs.gpu`` (added for dask-jobqueue jobs): ``dask_setup``
  pins each nanny of the job's ``dask worker`` command to its own device of the job's
  ``CUDA_VISIBLE_DEVICES`` before the worker process starts.

The user code runs in child processes of the worker and inherits the pinned variable.
"""

from __future__ import annotations

import os
from typing import Any

from distributed import LocalCluster

from .errors import SpecError

GPU_RESOURCE = {"GPU": 1}


def visible_devices(count: int, environ: Any = None) -> list[str]:
    """The devices to pin: this process's ``CUDA_VISIBLE_DEVICES`` if set, else 0..count-1."""
    visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return [str(i) for i in range(count)]
    devices = [d.strip() for d in visible.split(",") if d.strip()]
    if len(devices) < count:
        raise SpecError(
            f"cluster.gpus_per_instance: {count} GPUs asked for, but CUDA_VISIBLE_DEVICES="
            f"{visible!r} makes only {len(devices)} visible. Lower gpus_per_instance or unset "
            "CUDA_VISIBLE_DEVICES.")
    return devices[:count]


class LocalGPUCluster(LocalCluster):
    """A LocalCluster with one single-GPU worker process per device (``GPU=1`` each).

    More workers than devices share them round-robin (small models: two per GPU).
    """

    def __init__(self, devices: list[str], n_workers: int | None = None,
                 threads_per_worker: int = 1, **kwargs: Any) -> None:
        if not devices:
            raise SpecError("cluster.gpus_per_instance: no GPU devices to start workers on.")
        self._devices = [str(d) for d in devices]
        super().__init__(n_workers=0, threads_per_worker=threads_per_worker, processes=True,
                         resources=dict(GPU_RESOURCE), **kwargs)
        self.scale(n_workers or len(self._devices))

    def new_worker_spec(self) -> dict[Any, dict]:
        ((name, spec),) = super().new_worker_spec().items()
        used = [s["options"].get("env", {}).get("CUDA_VISIBLE_DEVICES")
                for s in self.worker_spec.values()]
        device = min(self._devices, key=lambda d: (used.count(d), self._devices.index(d)))
        options = dict(spec["options"])  # new_spec is shared by all workers: copy
        options["env"] = {**options.get("env", {}), "CUDA_VISIBLE_DEVICES": device}
        return {name: {**spec, "options": options}}


_ASSIGNED: dict[str, int] = {}  # nanny name -> index, per `dask worker` process


def dask_setup(nanny: Any) -> None:
    """``--preload-nanny daskprs.gpu``: pin this nanny's worker process to one device.

    All nannies of one ``dask worker --nworkers N`` command share this process, so the
    order in which they start numbers them 0..N-1; a restarted worker keeps its device.
    """
    index = _ASSIGNED.setdefault(str(nanny.name), len(_ASSIGNED))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    devices = [d.strip() for d in visible.split(",") if d.strip()]
    device = devices[index % len(devices)] if devices else str(index)
    nanny.env["CUDA_VISIBLE_DEVICES"] = device
