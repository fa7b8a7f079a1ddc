"""POST /generate: posts from a model the server serves (serve.models batches them)."""

from __future__ import annotations

from fastapi import APIRouter

from huggingtweets.serve.api.bodies import GenerateBody, GenerationOut
from huggingtweets.serve.api.common import API, Models
from huggingtweets.serve.api.errors import error_responses
from huggingtweets.serve.requests import GenerateRequest

router = APIRouter(tags=["generate"])


@router.post(
    f"{API}/generate",
    response_model=GenerationOut,
    responses=error_responses(404, 413, 422, 503),
)
async def generate(body: GenerateBody, models: Models) -> dict:  # type: ignore[valid-type]
    """Posts from a model the server serves, each with its memorization flag and
    share links."""
    answer = await models.generate(GenerateRequest(**body.model_dump()))
    # Generation.model is where the model lies on the server: the client's name.
    return {**answer, "model": body.model}
