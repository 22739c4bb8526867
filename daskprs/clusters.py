"""Where a run executes: an embedded LocalCluster (default), an existing scheduler, or HPC.

``open_client`` yields a Client and closes only what it started: a caller's ``client=`` is
used as is and never closed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from .errors import SpecError
from .spec import JobSpec

log = logging.getLogger("daskprs")


def worker_count(spec: JobSpec, workers: int | None = None) -> int:
    """instance_count x max_concurrency_per_instance, unless overridden."""
    if workers:
        return workers
    if spec.cluster.n_workers:
        return spec.cluster.n_workers
    return spec.instance_count * spec.concurrency


@contextlib.contextmanager
def open_client(spec: JobSpec, client: Any = None, workers: int | None = None,
                quiet: bool = False) -> Iterator[Any]:
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    c = spec.cluster
    if c.type == "address":
        if not c.address:
            raise SpecError("cluster.address: give the scheduler address, e.g. tcp://host:8786.")
        with Client(c.address, timeout="30s") as owned:
            yield owned
        return
    if c.type != "local":
        from .hpc import open_jobqueue_client

        with open_jobqueue_client(spec, quiet=quiet) as owned:
            yield owned
        return
    n = worker_count(spec, workers)
    kwargs: dict[str, Any] = {}
    if c.memory_limit:
        kwargs["memory_limit"] = c.memory_limit
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=c.threads_per_worker, processes=True,
        dashboard_address=c.dashboard_address, silence_logs=logging.ERROR, **kwargs,
    )
    try:
        with Client(cluster) as owned:
            if not quiet and owned.dashboard_link:
                log.info("Dask dashboard: %s", owned.dashboard_link)
            yield owned
    finally:
        cluster.close()
