"""The app: the routers behind the guard, the errors in one shape, the UI at "/".

Security: on a loopback address the API is open to the local user, and only requests
addressed to a loopback name are served (a web page cannot reach it through DNS
rebinding); on any other address every route but health needs ``Authorization: Bearer
$HUGGINGTWEETS_API_TOKEN`` (the UI asks for it as its password).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import secrets
from collections.abc import AsyncIterator

from fastapi import FastAPI

from huggingtweets import __version__
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.serve.api import generate, health, jobs, openai, runs
from huggingtweets.serve.api.errors import (
    error_responses,
    install_error_handlers,
    install_validation_handler,
)
from huggingtweets.serve.api.guard import Guard
from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.manager import JobManager
from huggingtweets.serve.models import ModelService

log = logging.getLogger(__name__)


def create_app(
    config: ServeConfig,
    *,
    manager: JobManager | None = None,
    models: ModelService | None = None,
    ui: bool = True,
) -> FastAPI:
    """The API (and the UI at "/" when serve.ui and Gradio are there). ``manager`` and
    ``models`` default to new ones over ``config``; both are closed when the app stops."""
    if not config.loopback and not config.token:
        raise HuggingtweetsError(
            f"serving on {config.host} needs a token: set HUGGINGTWEETS_API_TOKEN (every "
            "client then sends it as Authorization: Bearer ...)"
        )
    manager = manager or JobManager(config)
    if models is None:
        models = ModelService(
            manager.model_path,
            max_models=config.max_models,
            max_batch=config.max_batch,
            max_queue=config.max_queue,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            models.close()
            manager.close()

    app = FastAPI(
        title="huggingtweets",
        version=__version__,
        description="Make a bot from 1 to 3 accounts' posts: collect, train, generate.",
        lifespan=lifespan,
    )
    app.state.config, app.state.manager, app.state.models = config, manager, models
    install_error_handlers(app)
    app.include_router(health.router)
    auth = error_responses(401) if not config.loopback else {}
    for router in (runs.router, jobs.router, generate.router, openai.router):
        app.include_router(router, responses=auth)
    ui_mounted = False
    if ui and importlib.util.find_spec("huggingtweets.serve.ui") is not None:
        app, ui_mounted = _mount_ui(app, manager, models, config)
    app.add_middleware(Guard, config=config, ui_mounted=ui_mounted)
    return app


def _mount_ui(
    app: FastAPI, manager: JobManager, models: ModelService, config: ServeConfig
) -> tuple[FastAPI, bool]:
    """B's Gradio Blocks at "/", behind Gradio's login (the token as password) when the
    server is not on a loopback address. Without Gradio the API is served alone."""
    try:
        import gradio as gr

        from huggingtweets.serve.ui import build_ui
    except ImportError as exc:
        log.warning("the web UI is not available (%s): serving the API only", exc)
        return app, False
    blocks = build_ui(manager, models, config)
    token = config.token
    auth = None
    if not config.loopback and token:

        def auth(username: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), token.encode())

    app = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        auth=auth,
        auth_message="Password: the server's HUGGINGTWEETS_API_TOKEN (any user name)."
        if auth
        else None,
        max_file_size=config.max_upload_bytes,
        ssr_mode=False,
    )
    from starlette.routing import Mount

    for route in app.routes:  # the page's own app: its errors never echo a body either
        if isinstance(route, Mount) and isinstance(route.app, gr.routes.App):
            install_validation_handler(route.app)
    return app, True
