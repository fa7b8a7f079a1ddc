"""The OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/completions``, so that
any OpenAI client (``base_url=http://HOST:PORT/v1``) or front-end talks to the bots.

Completions are drawn by the same model service, batching loop and memorization guard as
``POST /api/v1/generate``: each choice says in ``huggingtweets`` (a field OpenAI clients
ignore) whether it copies a training post, and ``no_copies`` draws such posts again. The
limits are :class:`~huggingtweets.serve.requests.GenerateRequest`'s option specs; the
token rule is the guard's (the ``Authorization: Bearer`` header the clients send).

What differs from OpenAI's own: a post is one line, so a completion ends at its first
line break (``finish_reason`` "stop"); ``max_tokens`` left out means the model's own
length; ``temperature`` 0 samples at the server's lowest temperature (greedy in all but
name); a stream sends each choice whole, once its request is drawn, then the end of each
choice and ``data: [DONE]``. A list of prompts, ``logprobs`` and OpenAI's other fields
(``best_of``, ``suffix``, penalties) are refused in OpenAI's error shape,
``{"error": {"message", "type", "param", "code"}}``, which every /v1 answer uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from starlette.exceptions import HTTPException

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError, option_specs
from huggingtweets.core.secrets import redact
from huggingtweets.serve.api.bodies import MAX_TEXT, CopyInfo, VisiblePrompt, spec_field
from huggingtweets.serve.api.common import OPENAI, Manager, Models
from huggingtweets.serve.batching import ModelBroken
from huggingtweets.serve.errors import QueueFull, UnknownModel, UploadTooLarge
from huggingtweets.serve.requests import GenerateRequest

log = logging.getLogger(__name__)

SPECS = {spec.name: spec for spec in option_specs(GenerateRequest)}
MAX_STOP = 4  # OpenAI's own limit on stop sequences
# Our names for OpenAI's, in the errors GenerateRequest raises.
OPENAI_NAMES = {"max_length": "max_tokens"}


# -- the error shape --------------------------------------------------------------------


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    """OpenAI's error body: ``type`` from the status, as OpenAI's API gives it."""
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    body = {"error": {"message": redact(message), "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    words = {
        400: "An invalid or unsupported field, named in param.",
        401: "No or a wrong bearer token (servers on a non-loopback address).",
        404: "No such model.",
        413: "The body is larger than the server accepts.",
        500: "The server's model cannot be loaded or run (code model_broken).",
        503: "Too many requests waiting: try again after Retry-After seconds.",
    }
    return {code: {"model": OpenAIError, "description": words[code]} for code in statuses}


def _invalid(exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [part for part in first.get("loc", ()) if part != "body"]
    param = str(loc[0]) if loc else None
    kind = str(first.get("type", "invalid_value"))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message, kind = "is not a field this server supports", "unsupported_parameter"
    elif kind == "json_invalid":
        message = "the body is not valid JSON"
    return openai_error(400, f"{param}: {message}" if param else message, param=param, code=kind)


def _refused(exc: HuggingtweetsError) -> JSONResponse:
    if isinstance(exc, UnknownModel):
        return openai_error(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, QueueFull):
        retry = str(max(1, int(getattr(exc, "retry_after", 1))))
        kind = getattr(exc, "kind", "queue_full")
        return openai_error(503, str(exc), code=kind, headers={"Retry-After": retry})
    if isinstance(exc, UploadTooLarge):
        return openai_error(413, exc.problem, code="too_large")
    if isinstance(exc, ModelBroken):  # the server's model is at fault: a server error
        return openai_error(500, str(exc), param="model", code="model_broken")
    if isinstance(exc, OptionError):
        name = OPENAI_NAMES.get(exc.name, exc.name)
        return openai_error(400, f"{name} {exc.problem}", param=name, code="invalid_value")
    return openai_error(400, str(exc), code="invalid_value")


class OpenAIRoute(APIRoute):
    """A route whose every error is in OpenAI's shape (the app's handlers give the
    project's own elsewhere): invalid bodies are 400, as OpenAI answers them."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _invalid(exc)
            except HuggingtweetsError as exc:
                return _refused(exc)
            except HTTPException as exc:  # a body too large, or not UTF-8
                status = 413 if exc.status_code == 413 else 400
                message = str(exc.detail) if status == 413 else "the body is not valid JSON"
                return openai_error(status, message, code="invalid_body")
            except Exception as exc:  # a bug: logged, never a traceback in the answer
                log.error("%s %s failed: %s", request.method, request.url.path, repr(exc))
                return openai_error(500, "internal error: the server log has the details")

        return handle


router = APIRouter(route_class=OpenAIRoute, tags=["openai"])


# -- GET /v1/models ---------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int = Field(description="Unix time the model was written (0: a Hub id).")
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


def _card(model: dict) -> dict:
    created = model["created"]
    stamp = int(dt.datetime.fromisoformat(created).timestamp()) if created else 0
    owner = model["id"].split("/")[0] if model["kind"] == "hub" else "huggingtweets"
    return {"id": model["id"], "object": "model", "created": stamp, "owned_by": owner}


@router.get(f"{OPENAI}/models", response_model=ModelList, responses=error_responses())
def list_models(manager: Manager) -> dict:
    """Every model served (those given at start, each run with a model)."""
    return {"object": "list", "data": [_card(m) for m in manager.catalog.models()]}


@router.get(
    f"{OPENAI}/models/{{model:path}}", response_model=ModelCard, responses=error_responses(404)
)
def get_model(model: str, manager: Manager) -> dict:
    for found in manager.catalog.models():
        if found["id"] == model:
            return _card(found)
    manager.model_path(model)  # UnknownModel, naming the known ones
    raise UnknownModel(f"unknown model {model!r}")


# -- POST /v1/completions -----------------------------------------------------------------


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = False


class _CompletionFields(VisiblePrompt):
    @field_validator("prompt", mode="before", check_fields=False)
    @classmethod
    def _one_prompt(cls, prompt: object) -> object:
        if isinstance(prompt, list):
            raise ValueError("a list of prompts is not supported: send one prompt per request")
        return prompt

    @field_validator("logprobs", mode="before", check_fields=False)
    @classmethod
    def _no_logprobs(cls, logprobs: object) -> object:
        if logprobs is not None:
            raise ValueError("is not supported by this server (send null or leave it out)")
        return logprobs


def _completion_body() -> type[BaseModel]:
    """OpenAI's completion fields, each bounded by GenerateRequest's spec of the same
    meaning: n, max_tokens (max_length's range, for the new tokens), temperature (0 too),
    top_p, seed, no_copies (this server's own)."""
    lowest = SPECS["temperature"]
    temperature = dataclasses.replace(lowest, min=0, min_open=False)
    max_tokens = dataclasses.replace(
        SPECS["max_length"], help="New tokens at most (default: the model's own length)."
    )
    prompt = SPECS["prompt"]
    stop_text = Annotated[str, Field(min_length=1, max_length=int(prompt.max))]
    fields: dict[str, Any] = {
        "model": spec_field(SPECS["model"], required=True, min_length=1),
        "prompt": spec_field(prompt, required=True, min_length=1, pattern=r"\S"),
        "n": spec_field(dataclasses.replace(SPECS["n"], default=1)),
        "max_tokens": spec_field(max_tokens),
        "temperature": spec_field(temperature),
        "top_p": spec_field(SPECS["top_p"]),
        "seed": spec_field(SPECS["seed"]),
        "stop": (
            stop_text | Annotated[list[stop_text], Field(max_length=MAX_STOP)] | None,
            Field(None, description=f"Where a completion ends, cut (up to {MAX_STOP})."),
        ),
        "stream": (bool, Field(False, description="Server-sent events, as OpenAI streams.")),
        "stream_options": (StreamOptions | None, None),
        "echo": (bool, Field(False, description="The prompt, then the completion.")),
        "logprobs": (None, Field(None, description="Not supported: null or left out.")),
        "user": (str | None, Field(None, max_length=MAX_TEXT, description="Ignored.")),
        "no_copies": spec_field(SPECS["no_copies"]),
    }
    return create_model("CompletionBody", __base__=_CompletionFields, **fields)


CompletionBody = _completion_body()


class ChoiceGuard(BaseModel):
    flagged: bool = Field(description="The post copies a training post.")
    copy_: CopyInfo | None = Field(alias="copy")
    attempts: int


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None
    finish_reason: Literal["stop", "length"] | None
    huggingtweets: ChoiceGuard | None = Field(
        None, description="The memorization guard's word on this choice."
    )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerationInfo(BaseModel):
    seed: int = Field(description="Send it back to draw the same completions.")
    checked: bool = Field(description="False: the model has no memorization guard.")
    flagged: int | None = Field(description="Choices that copy a training post.")


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None
    huggingtweets: GenerationInfo | None = None


# stream: true. Each event's data is a Completion chunk (JSON), the last one "[DONE]".
STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "event": {"type": "string", "enum": ["message"]},
                "data": {"type": "string", "description": "A Completion as JSON, or [DONE]."},
            },
        }
    }
}


@router.post(
    f"{OPENAI}/completions",
    response_model=Completion,
    responses={200: {"content": STREAM}, **error_responses(400, 404, 413, 500, 503)},
)
async def completions(body: CompletionBody, models: Models) -> Any:  # type: ignore[valid-type]
    """Completions of one prompt from a model the server serves (OpenAI's shape)."""
    (prompt_tokens,) = await asyncio.to_thread(models.count_tokens, body.model, [body.prompt])
    request = GenerateRequest(
        model=body.model,
        prompt=body.prompt,
        n=body.n,
        max_length=_max_length(prompt_tokens, body.max_tokens),
        temperature=None if body.temperature is None else max(body.temperature, _lowest()),
        top_p=body.top_p,
        seed=body.seed,
        no_copies=body.no_copies,
    )
    answer = await models.generate(request)
    completion = await asyncio.to_thread(_completion, body, answer, prompt_tokens, models)
    if not body.stream:
        return completion
    usage = body.stream_options is not None and body.stream_options.include_usage
    return StreamingResponse(
        _events(completion, usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


def _lowest() -> float:
    return float(SPECS["temperature"].min)


def _max_length(prompt_tokens: int, max_tokens: int | None) -> int | None:
    """GenerateRequest's max_length (the prompt included) for OpenAI's max_tokens (new
    tokens): within the same limit, or refused as OpenAI refuses a request too long."""
    if max_tokens is None:
        return None
    limit = int(SPECS["max_length"].max)
    if prompt_tokens + max_tokens > limit:
        raise OptionError(
            "max_tokens",
            f"and the prompt are at most {limit} tokens together; you asked for "
            f"{prompt_tokens + max_tokens} ({prompt_tokens} in the prompt, {max_tokens} for "
            "the completion)",
        )
    return prompt_tokens + max_tokens


def _completion(body: Any, answer: dict, prompt_tokens: int, models: Any) -> dict:
    """The generate answer as OpenAI's completion: each sample without its prompt (unless
    echo), cut at the first stop sequence, with why it ended and its guard's word."""
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    texts, reasons = [], []
    for sample in answer["samples"]:
        text = _continuation(sample["text"], body.prompt)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        texts.append(text if cut < 0 else text[:cut])
        reasons.append("stop" if cut >= 0 else None)
    counts = models.count_tokens(body.model, texts) if texts else []
    longest = answer["settings"]["max_length"]
    choices = []
    for index, (sample, text, reason, count) in enumerate(
        zip(answer["samples"], texts, reasons, counts, strict=True)
    ):
        ended = reason or ("length" if prompt_tokens + count >= longest else "stop")
        guard = {key: sample[key] for key in ("flagged", "copy", "attempts")}
        choices.append(
            {
                "text": body.prompt + text if body.echo else text,
                "index": index,
                "logprobs": None,
                "finish_reason": ended,
                "huggingtweets": guard,
            }
        )
    return {
        "id": f"cmpl-{secrets.token_hex(12)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sum(counts),
            "total_tokens": prompt_tokens + sum(counts),
        },
        "huggingtweets": {k: answer[k] for k in ("seed", "checked", "flagged")},
    }


def _continuation(text: str, prompt: str) -> str:
    """A sample (the prompt as given, then what the model wrote) without its prompt. A
    sample cut at the end of a prompt ending in spaces is the prompt, stripped: nothing."""
    if text.startswith(prompt):
        return text[len(prompt) :]
    return "" if prompt.startswith(text) else text


def _events(completion: dict, usage: bool) -> Iterator[bytes]:
    """OpenAI's completion stream: each choice's text, then each choice's end, (with
    stream_options.include_usage, the usage, choices empty), then [DONE]."""
    head = {k: completion[k] for k in ("id", "object", "created", "model", "huggingtweets")}

    def event(choices: list[dict], **extra: Any) -> bytes:
        chunk = {**head, "choices": choices, **({"usage": None} if usage else {}), **extra}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    for choice in completion["choices"]:
        yield event([{**choice, "finish_reason": None}])
    for choice in completion["choices"]:
        end = {"text": "", "index": choice["index"], "logprobs": None}
        yield event([{**end, "finish_reason": choice["finish_reason"]}])
    if usage:
        yield event([], usage=completion["usage"])
    yield b"data: [DONE]\n\n"
