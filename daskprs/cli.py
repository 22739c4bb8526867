"""``daskprs`` command line: parse, call the Python API, print, exit with the contract's code.

Exit codes: 0 succeeded; 1 the job ran and failed; 2 bad usage or input; 130 interrupted
(Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import gc
import logging
import shlex
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from ._signals import signals_as_interrupt
from .errors import DaskPRSError

set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a spec key (dotted v2 path), e.g. mini_batch_size=10.")
job_option = click.option("--job", default=None, help="Pipeline: the parallel job to run.")


def _setup_logging(quiet: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("daskprs: %(message)s"))
    logger = logging.getLogger("daskprs")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _guard(fn: Callable[[], Any], debug: bool) -> Any:
    """Run ``fn``; DaskPRSError -> one paragraph and its exit code, never a bare traceback.

    SIGTERM and SIGHUP stop it as Ctrl-C does (a scheduler's time limit, a closed terminal).
    """
    try:
        with signals_as_interrupt():
            return fn()
    except DaskPRSError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a bug of ours: say so, point to --debug
        if debug:
            traceback.print_exc()
        click.echo(f"internal error: {type(e).__name__}: {e}\n(run again with --debug for the "
                   "traceback, and please report it)", err=True)
        sys.exit(1)


def _exit(code: int) -> None:
    """Exit after a job, leaving the heap to the OS.

    A run leaves distributed, numpy and the plan in memory, and the interpreter's final
    garbage collections walked all of it: 0.1-0.2 s of every ``daskprs run``. Frozen objects
    are skipped by those collections; atexit handlers and logging shutdown still run, and
    everything daskprs writes is closed by then.
    """
    gc.freeze()
    sys.exit(code)


WORKERS_HELP = "Dask workers of the local cluster (each runs user code in its own processes)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="daskprs")
def main() -> None:
    """Run Azure-ML-style parallel jobs (ParallelRunStep, type: parallel) on Dask.

    \b
    Exit codes: 0 succeeded; 1 the job ran and failed; 2 bad usage or input;
    130 interrupted by Ctrl-C, SIGTERM or SIGHUP (resume with: daskprs resume RUN_DIR).
    """


def _report(result: Any, quiet: bool) -> None:
    verdict = result.status.upper()
    c = result.counts
    click.echo(f"{verdict}: {c['succeeded']}/{c['mini_batches']} mini-batches succeeded, "
               f"{c['failed']} failed, {c['items_succeeded']} items ok, "
               f"{c['items_failed']} items failed ({result.elapsed:.1f} s).")
    if result.reason:
        click.echo(f"reason: {result.reason}")
    if result.append_row_file and (c["succeeded"] or c["reused"]):  # not an empty file
        click.echo(f"output: {result.append_row_file}")
    for name, path in result.outputs.items():
        if path != result.append_row_file and not quiet:
            click.echo(f"output {name}: {path}")
    click.echo(f"run dir: {result.run_dir}  (logs/job_result.txt)")
    if result.status != "succeeded" or c["failed"]:  # failures within the thresholds too
        click.echo(f"resume: daskprs resume {shlex.quote(str(result.run_dir))}")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@set_option
@click.option("--run-dir", default=None, help="Run directory (default ./daskprs-runs/NAME-TIME).")
@job_option
@click.option("--workers", type=int, default=None, help=WORKERS_HELP)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, only the verdict.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def run(spec: str, overrides: tuple[str, ...], run_dir: str | None, job: str | None,
        workers: int | None, quiet: bool, debug: bool) -> None:
    """Run the parallel job in SPEC."""
    from . import api

    _setup_logging(quiet, debug)
    result = _guard(lambda: api.run(spec, list(overrides), run_dir=run_dir, job=job,
                                    workers=workers, quiet=quiet), debug)
    _report(result, quiet)
    _exit(result.exit_code)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Resume even though the inputs changed.")
@click.option("--workers", type=int, default=None, help=WORKERS_HELP)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, only the verdict.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def resume(run_dir: str, force: bool, workers: int | None, quiet: bool, debug: bool) -> None:
    """Rerun the failed and unprocessed mini-batches of RUN_DIR, reusing the rest."""
    from . import api

    _setup_logging(quiet, debug)
    result = _guard(lambda: api.resume(run_dir, force=force, workers=workers, quiet=quiet),
                    debug)
    _report(result, quiet)
    _exit(result.exit_code)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@set_option
@job_option
@click.option("--first", default=5, show_default=True, help="Mini-batches to show.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def plan(spec: str, overrides: tuple[str, ...], job: str | None, first: int, debug: bool) -> None:
    """Print the mini-batch plan of SPEC; runs no user code."""
    from . import api

    _setup_logging(False, debug)
    p = _guard(lambda: api.make_plan(spec, list(overrides), job=job), debug)
    click.echo(p.summary(first=first))


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@set_option
@job_option
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def validate(spec: str, overrides: tuple[str, ...], job: str | None, debug: bool) -> None:
    """Load and validate SPEC, its entry script and its input path; runs no user code.

    Exit 0, or 2 with the problem. Top-level imports of the entry script that this Python
    cannot find are an error for the local cluster, a warning for other clusters.
    """
    from . import api

    _setup_logging(False, debug)
    s, warnings = _guard(lambda: api.validate(spec, list(overrides), job=job), debug)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"ok: {s.name}: input {s.input_data} ({s.data_input.type}), "
               f"entry script {s.task.entry_path}, output_action {s.output_action}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def status(run_dir: str, debug: bool) -> None:
    """Summarise RUN_DIR: counts, failures by error type, where the outputs are."""
    from .status import summarize

    _setup_logging(False, debug)
    click.echo(_guard(lambda: summarize(run_dir), debug))


if __name__ == "__main__":
    main()
