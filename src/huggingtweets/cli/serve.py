"""``huggingtweets serve``: the web app and the JSON API in one process (uvicorn).

The app is serve.api.create_app; ServeConfig holds what this command's options set.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable
from pathlib import Path

import click

from huggingtweets.cli.console import console
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.serve.config import ServeConfig, is_loopback

TOKEN_ENV = "HUGGINGTWEETS_API_TOKEN"
QUEUE_ENV = "HUGGINGTWEETS_QUEUE"
PAGE_FILES_ENV = "GRADIO_TEMP_DIR"  # where Gradio keeps the page's files (uploads first)
MIN_TOKEN_LENGTH = 16  # a bearer token on a network: long enough not to be guessed


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one line (uvicorn would
    log a traceback-like error and exit 1), and the URL can name the port 0 chose."""
    try:  # "[::1]": an IPv6 address as a URL writes it
        family, kind, proto, _, address = socket.getaddrinfo(
            host.removeprefix("[").removesuffix("]"),
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )[0]
    except socket.gaierror as exc:
        raise HuggingtweetsError(f"--host {host}: not an address here ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise HuggingtweetsError(
                f"port {port} is in use on {host}: stop what listens there or choose another --port"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise HuggingtweetsError(
                f"not allowed to listen on {host}:{port}: choose a --port above 1023"
            ) from None
        raise HuggingtweetsError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app, on_stop: Callable[[], None]):
    """uvicorn's server, telling ``on_stop`` first when it stops (Ctrl-C): the generate
    requests waiting are answered 503 "shutting down" at once, not cut off. An open event
    stream would hold a graceful shutdown: 5 s, then the lifespan closes the jobs (a
    training stops after its step)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            on_stop()
            await super().shutdown(sockets)

    return Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))


def _page_files_in_runs_dir(manager, stack: contextlib.ExitStack) -> None:
    """Point Gradio's files (an upload until it is collected, the pictures shown) at a
    folder of this server's under --runs-dir/.uploads, locked and cleaned as its uploads
    are (serve.manager.Uploads): removed at shutdown, and after a kill -9 by the next
    start of any server over these runs, never while its server lives. Gradio reads
    GRADIO_TEMP_DIR when it is imported and when the page is built, both after this.
    A GRADIO_TEMP_DIR set by the user is theirs and used as is: Gradio's own cleaning
    applies there (files over an hour old, at shutdown), and what a killed server left
    there stays."""
    import importlib.util

    if os.environ.get(PAGE_FILES_ENV) or importlib.util.find_spec("gradio") is None:
        return
    os.environ[PAGE_FILES_ENV] = str(manager.uploads.new_page_folder().resolve())
    stack.callback(os.environ.pop, PAGE_FILES_ENV, None)  # as it was, once served


def _check_queue(url: str | None) -> None:
    """A wrong URL or password, a read-only Redis: one line, before serving."""
    if url:
        from huggingtweets.serve.rq_worker import open_queue

        open_queue(url).close()


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = host.removeprefix("[").removesuffix("]")
    shown = "127.0.0.1" if shown in ("0.0.0.0", "::") else shown  # all: shown as here
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/"


def _limit_option(flag: str, low: int, high: int, default: int, help: str) -> Callable:
    """A whole-number option within [low, high]; its default (ServeConfig's) shown."""
    return click.option(
        flag, type=click.IntRange(low, high), default=default, show_default=True, help=help
    )


@click.command("serve")
@click.argument("models", nargs=-1, metavar="[RUN_DIR | MODEL]...")
@click.option(
    "--host",
    default=ServeConfig.host,
    show_default=True,
    help=f"The address to listen on. Any but a loopback one needs {TOKEN_ENV} in the "
    "environment; clients then send it as 'Authorization: Bearer ...' (the UI asks for it).",
)
@_limit_option("--port", 0, 65535, ServeConfig.port, "The port (0: any free one, printed).")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=ServeConfig.runs_dir,
    show_default=True,
    help="Where the app keeps the runs it creates, and finds the runs it lists.",
)
@_limit_option(
    "--max-batch",
    1,
    1000,
    ServeConfig.max_batch,
    "Posts generated in one forward pass across requests (1: no batching).",
)
@_limit_option(
    "--max-queue",
    1,
    100_000,
    ServeConfig.max_queue,
    "Generate requests waiting before the server answers 503 (Retry-After).",
)
@_limit_option(
    "--max-models",
    1,
    100,
    ServeConfig.max_models,
    "Models kept loaded (the least recently used leaves first).",
)
@click.option(
    "--queue",
    envvar=QUEUE_ENV,
    default=None,
    metavar="redis://HOST:PORT/DB",
    help=f"Keep the jobs in Redis and run them in `huggingtweets worker` processes (also "
    f"{QUEUE_ENV}). Without it, jobs run in this server (one training at a time).",
)
def serve_command(
    models: tuple[str, ...],
    host: str,
    port: int,
    runs_dir: Path,
    max_batch: int,
    max_queue: int,
    max_models: int,
    queue: str | None,
) -> None:
    """Serve the web app (three steps: accounts, train, generate) and the JSON API.

    Without arguments it opens on step 1 and lists the runs in --runs-dir; given trained
    RUN_DIRs, model folders or Hub ids, it serves them too and opens on step 3. Training
    runs in a worker process, one job at a time. The API is under /api/v1, documented at
    /docs (OpenAPI: /openapi.json). Ctrl-C stops the server; a training stops after its
    current step, with a checkpoint that `huggingtweets train RUN_DIR --resume` continues.

    \b
    Examples:
      huggingtweets serve                                # http://127.0.0.1:7860/
      huggingtweets serve runs/demo                      # opens on step 3
      huggingtweets serve runs/me OWNER/NAME --max-models 2
      huggingtweets serve --runs-dir ~/bots --port 8000
      huggingtweets serve runs/demo --max-batch 1        # no batching
      HUGGINGTWEETS_API_TOKEN=$(openssl rand -hex 24) huggingtweets serve --host 0.0.0.0
      huggingtweets serve --queue redis://127.0.0.1:6379/0   # jobs run by `huggingtweets worker`
    """

    from huggingtweets.core.runs import check_writable_dir
    from huggingtweets.core.secrets import register_secret

    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is not None:
        register_secret(token)  # blanked from every message the server shows or logs
    if not is_loopback(host):
        if token is None:
            raise HuggingtweetsError(
                f"--host {host} is reachable from other machines: set {TOKEN_ENV} (e.g. "
                f"`export {TOKEN_ENV}=$(openssl rand -hex 24)`), or serve on 127.0.0.1"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise HuggingtweetsError(
                f"{TOKEN_ENV} is too short to guard a server: give {MIN_TOKEN_LENGTH} "
                "characters or more"
            )
    try:
        check_writable_dir(runs_dir)
    except HuggingtweetsError as exc:  # its words are the run commands' (--out)
        raise HuggingtweetsError(str(exc).replace("--out", "--runs-dir")) from None
    config = ServeConfig(
        runs_dir=runs_dir,
        models=list(models),
        host=host,
        port=port,
        token=token,
        max_batch=max_batch,
        max_queue=max_queue,
        max_models=max_models,
        queue=queue or None,
    )
    _check_queue(config.queue)
    _serve(config, _bind(host, port))


def _serve(config: ServeConfig, sock: socket.socket) -> None:
    """Serve on ``sock`` until Ctrl-C: the jobs' manager first (the stale uploads removed,
    the page's folder made), then the app over it."""
    from huggingtweets.serve.api import create_app
    from huggingtweets.serve.manager import JobManager

    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        manager = JobManager(config)
        try:
            _page_files_in_runs_dir(manager, stack)
            # A model that is not one: one line, before serving.
            app = create_app(config, manager=manager)
        except BaseException:
            manager.close()
            raise
        config.port = sock.getsockname()[1]
        console.print(f"Serving huggingtweets on {_url(sock, config.host)}  (API docs: /docs)")
        console.print("Press Ctrl-C to stop.", style="dim")
        server = _uvicorn_server(app, on_stop=app.state.models.stop)
        # uvicorn stops gracefully on Ctrl-C, then raises it again: the server stopped as
        # asked, which is this command's normal end (not "interrupted").
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        console.print("Stopped.", style="dim")
