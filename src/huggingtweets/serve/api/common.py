"""What the routers share: where the API lives, the path parameters, and the app's job
manager and model service (set on ``app.state`` by create_app)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from huggingtweets.serve.catalog import RUN_ID_RE
from huggingtweets.serve.jobs import JOB_ID_RE
from huggingtweets.serve.manager import JobManager
from huggingtweets.serve.models import ModelService

API = "/api/v1"
HEALTH = f"{API}/health"
# Paths the API owns; everything else belongs to the mounted UI (Gradio, with its login).
OPENAI = "/v1"  # the OpenAI-compatible routes (openai.py)
API_PATHS = (API + "/", OPENAI + "/", "/docs", "/redoc", "/openapi.json")

RunId = Annotated[
    str,
    Path(
        pattern=f"^{RUN_ID_RE.pattern}$",
        max_length=100,
        description="A run: a folder name under the server's runs directory.",
    ),
]
JobId = Annotated[str, Path(pattern=f"^{JOB_ID_RE.pattern}$", description="A job id.")]


def _manager(request: Request) -> JobManager:
    return request.app.state.manager


def _models(request: Request) -> ModelService:
    return request.app.state.models


Manager = Annotated[JobManager, Depends(_manager)]
Models = Annotated[ModelService, Depends(_models)]
