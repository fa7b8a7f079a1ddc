"""GET /health: open to everyone, even where every other route needs the token."""

from __future__ import annotations

from fastapi import APIRouter

from huggingtweets import __version__
from huggingtweets.serve.api.bodies import Health
from huggingtweets.serve.api.common import HEALTH

router = APIRouter(tags=["server"])


@router.get(HEALTH, response_model=Health)
def health() -> dict:
    return {"status": "ok", "version": __version__}
