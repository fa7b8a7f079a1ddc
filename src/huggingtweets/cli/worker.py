"""``huggingtweets worker``: runs the jobs of servers started with ``--queue`` (RQ on Redis)."""

from __future__ import annotations

from pathlib import Path

import click

from huggingtweets.cli.console import console

QUEUE_ENV = "HUGGINGTWEETS_QUEUE"


@click.command("worker")
@click.option(
    "--queue",
    envvar=QUEUE_ENV,
    required=True,
    metavar="redis://HOST:PORT/DB",
    help=f"The Redis the servers were given with --queue (also {QUEUE_ENV}).",
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="The servers' runs directory: the same path on every server and worker.",
)
@click.option("--burst", is_flag=True, help="Stop once the queue is empty (tests, batch runs).")
@click.option("--name", default=None, help="The worker's name in Redis (default: a unique one).")
def worker_command(queue: str, runs_dir: Path, burst: bool, name: str | None) -> None:
    """Run the web app's prepare and train jobs, one at a time, from a Redis queue.

    Start as many as you like, on this machine or others, each with its own GPU; every
    server and worker must see the runs directory at the same path. Ctrl-C stops the worker
    once its current job has ended (twice: at once; a training keeps its checkpoint). A Redis
    that is down or restarts is waited for: the worker goes on once it answers.

    \b
    Examples:
      huggingtweets worker --queue redis://127.0.0.1:6379/0 --runs-dir runs
      CUDA_VISIBLE_DEVICES=1 huggingtweets worker --queue redis://gpu-host:6379/0 \\
          --runs-dir /shared/runs
    """
    from huggingtweets.serve.rq_worker import run_worker, wait_for_queue

    # A wrong URL or password, a read-only Redis: one line now; a Redis that is down (or
    # still loading its data): waited for, with one line.
    wait_for_queue(queue, lambda line: console.print(line, style="yellow", soft_wrap=True)).close()
    console.print(f"Worker for {runs_dir}: waiting for jobs (Ctrl-C stops).", style="dim")
    run_worker(queue, runs_dir, burst=burst, name=name)
