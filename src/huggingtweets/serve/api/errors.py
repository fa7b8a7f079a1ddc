"""Every error as one JSON shape, the one FastAPI uses for validation errors:
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``, whose ``loc`` names the field
(or the path parameter, or the header) that is wrong: 401 token, 404 unknown run / job /
model, 409 busy, 413 too large, 422 invalid, 503 queue full (with Retry-After). Never a
traceback: a bug answers 500 with a generic message and is logged (redacted)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.core.secrets import redact
from huggingtweets.serve.api.bodies import ErrorBody
from huggingtweets.serve.batching import ModelBroken
from huggingtweets.serve.errors import (
    Busy,
    QueueFull,
    UnknownJob,
    UnknownModel,
    UnknownRun,
    UploadTooLarge,
)
from huggingtweets.serve.messages import one_line, server_words

log = logging.getLogger(__name__)


def error_responses(*responses: int) -> dict[int | str, dict[str, Any]]:
    words = {
        401: "No or a wrong bearer token (servers on a non-loopback address).",
        404: "No such run, job or model.",
        409: "The run already has a job queued or running.",
        413: "The body is larger than the server accepts.",
        422: "An invalid field, named in loc.",
        500: "The server's model cannot be loaded or run (type model_broken).",
        503: "Too many requests waiting, or the job queue unreachable: try again after "
        "Retry-After seconds.",
    }
    return {code: {"model": ErrorBody, "description": words[code]} for code in responses}


def error_response(
    status: int, loc: list, msg: str, kind: str, headers: dict | None = None
) -> JSONResponse:
    body = {"detail": [{"loc": loc, "msg": redact(msg), "type": kind}]}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_loc(request: Request, name: str) -> list[str]:
    """Where the field is: the route's path (/runs/{run_id}/train), else the body (a
    run_id given in POST /runs' body is the body's)."""
    return ["path" if name in request.path_params else "body", name]


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body reading lets it through as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit:,} bytes")


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body (or parameter) that is not what the route takes: only where and what, the
    input never echoed (it may be large, or a secret). The page's routes (Gradio's) use it
    too: install_validation_handler."""
    items = [
        {
            "loc": [str(part) if not isinstance(part, int) else part for part in e["loc"]],
            "msg": one_line(e.get("msg", "invalid"), 300),
            "type": str(e.get("type", "value_error")),
        }
        for e in exc.errors()
    ]
    return JSONResponse({"detail": items}, status_code=422)


def install_validation_handler(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]


def install_error_handlers(app: FastAPI) -> None:
    install_validation_handler(app)

    @app.exception_handler(HuggingtweetsError)
    async def refused(request: Request, exc: HuggingtweetsError):
        if isinstance(exc, UnknownRun):
            return error_response(404, ["path", "run_id"], str(exc), "not_found")
        if isinstance(exc, UnknownJob):
            return error_response(404, ["path", "job_id"], str(exc), "not_found")
        if isinstance(exc, UnknownModel):
            return error_response(404, ["body", "model"], str(exc), "not_found")
        if isinstance(exc, Busy):
            # POST /runs names its run in the body; /runs/{run_id}/train in the path.
            where = "path" if "run_id" in request.path_params else "body"
            return error_response(409, [where, "run_id"], str(exc), "busy")
        if isinstance(exc, QueueFull):
            retry = str(max(1, int(getattr(exc, "retry_after", 1))))
            kind = getattr(exc, "kind", "queue_full")  # queue_unavailable: Redis away
            return error_response(503, [], str(exc), kind, {"Retry-After": retry})
        if isinstance(exc, UploadTooLarge):
            return error_response(413, ["body", "file"], exc.problem, "too_large")
        if isinstance(exc, ModelBroken):  # the server's model, not the request, is at fault
            return error_response(500, ["body", "model"], server_words(str(exc)), "model_broken")
        if isinstance(exc, OptionError):
            problem = server_words(exc.problem)
            return error_response(422, _field_loc(request, exc.name), problem, "value_error")
        return error_response(422, ["body"], server_words(str(exc)), "value_error")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 400:  # FastAPI: a body it cannot decode (not UTF-8 ...)
            message = "the body is not valid JSON text"
            return error_response(422, ["body"], message, "json_invalid")
        loc = ["body"] if exc.status_code == 413 else []
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route of that path only; a path
            # served by two routes (GET and POST /runs) allows both.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        if request.url.path.startswith("/v1/"):  # no such OpenAI-style route: its shape
            from huggingtweets.serve.api.openai import openai_error

            return openai_error(
                exc.status_code, str(exc.detail), code="http_error", headers=headers
            )
        return error_response(exc.status_code, loc, str(exc.detail), "http_error", headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        # The last resort: the goal is that no request gets here (the schema test).
        log.error("%s %s failed: %s", request.method, request.url.path, redact(repr(exc)))
        message = "internal error: the server log has the details"
        return error_response(500, [], message, "server_error")


def _allowed_methods(request: Request) -> list[str]:
    from starlette.routing import Match, Route

    matching = []
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if match == Match.FULL:
                matching.append(route)
    # A fixed path (/runs/upload) is its own resource, not a run named so (reserved).
    fixed = [route for route in matching if "{" not in route.path]
    return sorted({method for route in fixed or matching for method in route.methods})
