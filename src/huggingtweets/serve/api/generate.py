"""POST /generate: posts from a model the server serves (serve.models batches them);
GET /models: the models it serves, by the names generate takes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from huggingtweets.serve.api.bodies import GenerateBody, GenerationOut
from huggingtweets.serve.api.common import API, Manager, Models
from huggingtweets.serve.api.errors import error_responses
from huggingtweets.serve.requests import GenerateRequest

router = APIRouter(tags=["generate"])


@router.post(
    f"{API}/generate",
    response_model=GenerationOut,
    responses=error_responses(404, 413, 422, 500, 503),
)
async def generate(body: GenerateBody, models: Models) -> dict:  # type: ignore[valid-type]
    """Posts from a model the server serves, each with its memorization flag and
    share links."""
    answer = await models.generate(GenerateRequest(**body.model_dump()))
    # Generation.model is where the model lies on the server: the client's name.
    return {**answer, "model": body.model}


class ModelSummary(BaseModel):
    id: str = Field(description="The name POST /api/v1/generate (and /v1/completions) take.")
    kind: Literal["run", "folder", "hub"] = Field(
        description="run: a run's model; folder or hub: a model given when the server started."
    )
    created: str | None = Field(description="When the model was written (None: a Hub id).")


@router.get(f"{API}/models", response_model=list[ModelSummary])
def list_models(manager: Manager) -> list[dict]:
    """Every model served: those given at start, then each run with a model."""
    return manager.catalog.models()
