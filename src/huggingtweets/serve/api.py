"""The HTTP API of ``huggingtweets serve`` (FastAPI), with the web UI mounted at "/".

Routes under ``/api/v1`` (OpenAPI at ``/openapi.json``, docs at ``/docs``): health, runs
(list, show, create from accounts or an upload), training (start, cancel), jobs (list,
show, a server-sent event stream of their progress) and generation (serve_models).

Every error is a JSON body of the one shape FastAPI uses for validation errors,
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``, whose ``loc`` names the
field (or the path parameter, or the header) that is wrong: 401 token, 404 unknown run /
job / model, 409 busy, 413 too large, 422 invalid, 503 queue full (with Retry-After).
Never a traceback: a bug answers 500 with a generic message and is logged (redacted).

Security: on a loopback address the API is open to the local user, and only requests
addressed to a loopback name are served (a web page cannot reach it through DNS
rebinding); on any other address every route but health needs ``Authorization: Bearer
$HUGGINGTWEETS_API_TOKEN`` (the UI asks for it as its password).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from starlette.exceptions import HTTPException

from huggingtweets import __version__
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import MAX_SEED, OptionError, option_specs
from huggingtweets.serve.jobs import (
    JOB_ID_RE,
    RESERVED_RUN_IDS,
    RUN_ID_RE,
    SERVER_ONLY_OPTIONS,
    Busy,
    JobManager,
    ServeConfig,
    UnknownJob,
    UnknownRun,
    UploadTooLarge,
    prompt_problem,
)

log = logging.getLogger(__name__)

API = "/api/v1"
HEALTH = f"{API}/health"
# JSON bodies are small; only an upload may be large (ServeConfig.max_upload_bytes).
MAX_JSON_BYTES = 1 << 20
MULTIPART_OVERHEAD = 64 << 10  # the form's boundaries and headers around the file
SSE_HEARTBEAT_S = 15.0
# Names a request may be addressed to on a loopback server ("testserver": the ASGI test
# clients' name, which no DNS rebinding can produce).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1", "testserver")
# Paths the API owns; everything else belongs to the mounted UI (Gradio, with its login).
API_PATHS = (API + "/", "/docs", "/redoc", "/openapi.json")

RunId = Annotated[
    str,
    Path(
        pattern=f"^{RUN_ID_RE.pattern}$",
        max_length=100,
        description="A run: a folder name under the server's runs directory.",
    ),
]
JobId = Annotated[str, Path(pattern=f"^{JOB_ID_RE.pattern}$", description="A job id.")]


# -- bodies and answers -----------------------------------------------------------------


class Strict(BaseModel):
    # Unknown fields refused; no quiet coercion ("5" is not a number, "yes" not true).
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class RunSummary(BaseModel):
    id: str
    handles: list[str]
    has_model: bool
    posts: int | None = Field(description="Posts kept for training (None: not prepared).")
    created: str


class StatisticsRow(BaseModel):
    label: str
    values: dict[str, int] = Field(description="One value per account handle.")
    total: int


class AccountInfo(BaseModel):
    handle: str
    display_name: str | None
    platform: str


class Progress(BaseModel):
    stage: str | None = None
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    eta: float | None = Field(None, description="Seconds left, estimated from the pace.")
    epoch: float | None = None
    message: str | None = None


class Job(BaseModel):
    id: str
    run_id: str
    kind: Literal["prepare", "train"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    position: int | None = Field(description="In the queue (1 = next); None unless queued.")
    progress: Progress | None
    error: str | None = Field(description="Why a failed job failed, in one line.")
    warnings: list[str]
    options: dict[str, Any]
    created: str
    finished: str | None


class RunDetail(RunSummary):
    accounts: list[AccountInfo]
    statistics: list[StatisticsRow] = Field(description="The model card's data table.")
    examples: dict[str, list[str]] = Field(description="A few kept posts per account.")
    jobs: list[Job]


Source = Annotated[str, Field(min_length=1, max_length=300)]
Handle = Annotated[str, Field(pattern=r"^@?[A-Za-z0-9_.@-]{1,100}$")]


class CreateRun(Strict):
    sources: list[Source] = Field(
        min_length=1,
        max_length=3,
        description="1 to 3 accounts: x:NAME, bsky:NAME, mastodon:@user@host, sample:NAME "
        "(files and exports: POST /api/v1/runs/upload).",
    )
    handles: list[Handle] = Field(
        default_factory=list, max_length=3, description="The handles to use, in order."
    )
    run_id: str | None = Field(
        None,
        pattern=f"^{RUN_ID_RE.pattern}$",
        description="Collect into this run (default: a new one named after the accounts).",
    )


def _train_body() -> type[BaseModel]:
    """The training body from TrainOptions' own fields (defaults, ranges, choices, help):
    options are defined once (options.py); "epochs" is the form's word for
    num_train_epochs. The checks that pydantic cannot express (max_steps is 1+ or -1)
    still run in TrainOptions and answer 422 naming the field."""
    from huggingtweets.train.recipe import TrainOptions

    fields: dict[str, Any] = {}
    for spec in option_specs(TrainOptions):
        if spec.name in SERVER_ONLY_OPTIONS:
            continue
        constraints: dict[str, Any] = {"description": spec.help}
        kind: Any = spec.kind
        if spec.kind in (int, float) and spec.min is not None:
            constraints["gt" if spec.min_open else "ge"] = spec.min
        if spec.kind in (int, float) and spec.max is not None:
            constraints["lt" if spec.max_open else "le"] = spec.max
        if spec.kind is float:
            constraints["allow_inf_nan"] = False
        if spec.kind is FilePath:
            kind = str
        if spec.kind is list:
            kind = list[Annotated[str, Field(max_length=100)]]
            constraints["max_length"] = 10
        if spec.kind is str and not spec.choices:
            constraints["max_length"] = 200
        if spec.choices:
            kind = Literal[tuple(spec.choices)]
        if spec.optional:
            kind = kind | None
        default = str(spec.default) if isinstance(spec.default, FilePath) else spec.default
        fields[spec.name] = (kind, Field(default, **constraints))
    fields["epochs"] = (
        float | None,
        Field(
            None, gt=0, le=100_000, allow_inf_nan=False, description="num_train_epochs, shorter."
        ),
    )
    return create_model("TrainBody", __base__=Strict, **fields)


TrainBody = _train_body()


class GenerateBody(Strict):
    model: str = Field(min_length=1, max_length=200, description="A run id or a served model.")
    prompt: str = Field(
        "My dream is",
        min_length=1,
        max_length=1000,
        pattern=r"\S",
        description="The start of the posts (not blank).",
    )
    n: int = Field(10, ge=1, le=20, description="How many posts.")
    max_length: int | None = Field(None, ge=1, le=512, description="Max tokens, prompt included.")
    temperature: float | None = Field(None, ge=1e-3, le=1e3, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    no_copies: bool = Field(False, description="Draw again posts that copy training posts.")

    @field_validator("prompt")
    @classmethod
    def _visible_prompt(cls, prompt: str) -> str:
        problem = prompt_problem(prompt)
        if problem is not None:
            raise ValueError(problem)
        return prompt


class CopyInfo(BaseModel):
    kind: str
    words: int
    why: str


class ShareLinks(BaseModel):
    x: str
    bluesky: str
    mastodon: str


class SampleOut(BaseModel):
    text: str
    flagged: bool
    copy_: CopyInfo | None = Field(alias="copy")
    attempts: int
    share: ShareLinks | None = Field(description="None for a post that copies a training post.")


class GenerationOut(BaseModel):
    model: str
    prompt: str
    seed: int
    settings: dict[str, Any]
    checked: bool = Field(description="False: the model has no memorization guard.")
    flagged: int | None
    samples: list[SampleOut]


def _errors(*responses: int) -> dict[int | str, dict[str, Any]]:
    words = {
        401: "No or a wrong bearer token (servers on a non-loopback address).",
        404: "No such run, job or model.",
        409: "The run already has a job queued or running.",
        413: "The body is larger than the server accepts.",
        422: "An invalid field, named in loc.",
        503: "Too many requests waiting: try again after Retry-After seconds.",
    }
    return {code: {"model": ErrorBody, "description": words[code]} for code in responses}


# -- errors -----------------------------------------------------------------------------


def _error(status: int, loc: list, msg: str, kind: str, headers: dict | None = None):
    from huggingtweets.core.secrets import redact

    body = {"detail": [{"loc": loc, "msg": redact(msg), "type": kind}]}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_loc(name: str) -> list[str]:
    if name in ("run_id", "job_id"):
        return ["path", name]
    return ["body", name]


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body reading lets it through as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit:,} bytes")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # Only where and what: the input is not echoed (it may be large, or a secret).
        items = [
            {
                "loc": [str(part) if not isinstance(part, int) else part for part in e["loc"]],
                "msg": str(e.get("msg", "invalid")),
                "type": str(e.get("type", "value_error")),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(HuggingtweetsError)
    async def refused(request: Request, exc: HuggingtweetsError):
        from huggingtweets.serve.models import QueueFull, UnknownModel

        if isinstance(exc, UnknownRun):
            return _error(404, ["path", "run_id"], str(exc), "not_found")
        if isinstance(exc, UnknownJob):
            return _error(404, ["path", "job_id"], str(exc), "not_found")
        if isinstance(exc, UnknownModel):
            return _error(404, ["body", "model"], str(exc), "not_found")
        if isinstance(exc, Busy):
            # POST /runs names its run in the body; /runs/{run_id}/train in the path.
            where = "path" if "run_id" in request.path_params else "body"
            return _error(409, [where, "run_id"], str(exc), "busy")
        if isinstance(exc, QueueFull):
            retry = str(max(1, int(getattr(exc, "retry_after", 1))))
            return _error(503, [], str(exc), "queue_full", {"Retry-After": retry})
        if isinstance(exc, UploadTooLarge):
            return _error(413, ["body", "file"], exc.problem, "too_large")
        if isinstance(exc, OptionError):
            return _error(422, _field_loc(exc.name), exc.problem, "value_error")
        return _error(422, ["body"], str(exc), "value_error")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 400:  # FastAPI: a body it cannot decode (not UTF-8 ...)
            return _error(422, ["body"], "the body is not valid JSON text", "json_invalid")
        loc = ["body"] if exc.status_code == 413 else []
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route of that path only; a path
            # served by two routes (GET and POST /runs) allows both.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return _error(exc.status_code, loc, str(exc.detail), "http_error", headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        # The last resort: the goal is that no request gets here (the schema test).
        from huggingtweets.core.secrets import redact

        log.error("%s %s failed: %s", request.method, request.url.path, redact(repr(exc)))
        return _error(500, [], "internal error: the server log has the details", "server_error")


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


# -- the guard: host, token, body size -------------------------------------------------------


class Guard:
    """Pure ASGI (a server-sent event stream passes through untouched): refuses a request
    to a loopback server addressed to another name, one without the token where one is
    needed, and a body larger than the route accepts, before anything reads it."""

    def __init__(self, app, config: ServeConfig, ui_mounted: bool) -> None:
        self.app = app
        self.config = config
        self.ui_mounted = ui_mounted
        self.token = (config.token or "").encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        refusal = self._refusal(path, headers)
        if refusal is not None:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await refusal(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(path)
        length = headers.get("content-length", b"")
        if length.isdigit() and int(length) > limit:
            return await _error(413, ["body"], BodyTooLarge(limit).detail, "http_error")(
                scope, receive, send
            )
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return await self.app(scope, counted, send)

    def _limit(self, path: str) -> int:
        if path == f"{API}/runs/upload" or not path.startswith(API_PATHS):
            # The UI uploads through Gradio's own routes (bounded by max_file_size).
            return self.config.max_upload_bytes + MULTIPART_OVERHEAD
        return MAX_JSON_BYTES

    def _refusal(self, path: str, headers: dict[str, bytes]):
        if self.config.loopback:
            host = headers.get("host", b"").decode("latin-1").lower()
            name, port = host, ""
            if not host.endswith("]") and ":" in host:
                name, _, port = host.rpartition(":")
            # The port is digits or absent: "localhost:80@evil" names no loopback host.
            if name not in LOOPBACK_NAMES or not (port == "" or port.isdigit()):
                return _error(
                    400,
                    ["header", "host"],
                    "this server answers requests to localhost only",
                    "host_refused",
                )
            # A page on another site may still send a form to localhost (a multipart
            # upload, a cancel: no preflight asked): the browser names that site in Origin.
            origin = headers.get("origin")
            if origin is not None and path.startswith(API_PATHS) and not _local_origin(origin):
                return _error(
                    403,
                    ["header", "origin"],
                    "requests from other sites' pages are refused",
                    "origin_refused",
                )
            return None
        if path == HEALTH:
            return None
        if self.ui_mounted and not path.startswith(API_PATHS):
            return None  # the UI: Gradio's login asks for the token
        given = headers.get("authorization", b"")
        scheme, _, value = given.partition(b" ")
        if scheme.lower() == b"bearer" and secrets.compare_digest(value.strip(), self.token):
            return None
        return _error(
            401,
            ["header", "authorization"],
            "give the server's token: Authorization: Bearer $HUGGINGTWEETS_API_TOKEN",
            "unauthorized",
            {"WWW-Authenticate": "Bearer"},
        )


def _local_origin(origin: bytes) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(origin.decode("latin-1"))
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        return parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_NAMES
    except ValueError:
        return False


# -- the app --------------------------------------------------------------------------------


def _ui_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("huggingtweets.serve.ui") is not None


def create_app(
    config: ServeConfig, *, manager: JobManager | None = None, models=None, ui: bool = True
) -> FastAPI:
    """The API (and the UI at "/" when serve_ui and Gradio are there). ``manager`` and
    ``models`` default to new ones over ``config``; both are closed when the app stops."""
    from huggingtweets.serve.models import GenerateRequest, ModelService

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
    app.state.config = config
    app.state.manager = manager
    app.state.models = models
    _install_error_handlers(app)
    auth = _errors(401) if not config.loopback else {}

    @app.get(HEALTH, response_model=Health, tags=["server"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    @app.get(f"{API}/runs", response_model=list[RunSummary], tags=["runs"], responses=auth)
    def list_runs() -> list[dict]:
        return manager.runs()

    @app.get(
        f"{API}/runs/{{run_id}}",
        response_model=RunDetail,
        tags=["runs"],
        responses={**auth, **_errors(404, 422)},
    )
    def show_run(run_id: RunId) -> dict:
        if run_id in RESERVED_RUN_IDS:  # /runs/upload: a resource of its own (POST)
            raise HTTPException(405, "Method Not Allowed")
        return manager.run(run_id)

    @app.post(
        f"{API}/runs",
        status_code=202,
        response_model=Job,
        tags=["runs"],
        responses={**auth, **_errors(409, 413, 422)},
    )
    def create_run(body: CreateRun) -> dict:
        """Collect 1 to 3 accounts and prepare them into a run (a job)."""
        return manager.create_run(body.sources, body.handles, run_id=body.run_id)

    @app.post(
        f"{API}/runs/upload",
        status_code=202,
        response_model=Job,
        tags=["runs"],
        responses={**auth, **_errors(413, 422)},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": "An X or Mastodon export (.zip, tweets.js, "
                                    "outbox.json) or posts (.csv, .jsonl, .txt).",
                                },
                                "handle": {"type": "string", "maxLength": 101},
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            }
        },
    )
    async def upload(request: Request) -> dict:
        """Prepare an uploaded export or posts file into a new run (a job)."""
        return await _upload(request, manager)

    @app.post(
        f"{API}/runs/{{run_id}}/train",
        status_code=202,
        response_model=Job,
        tags=["training"],
        responses={**auth, **_errors(404, 409, 413, 422)},
    )
    def train(run_id: RunId, body: TrainBody) -> dict:  # type: ignore[valid-type]
        """Queue a training of the run (TrainOptions' fields; their CLI defaults)."""
        options = body.model_dump(exclude_unset=True)
        return manager.start_training(run_id, options)

    @app.get(f"{API}/jobs", response_model=list[Job], tags=["jobs"], responses=auth)
    def list_jobs() -> list[dict]:
        return manager.jobs()

    @app.get(
        f"{API}/jobs/{{job_id}}",
        response_model=Job,
        tags=["jobs"],
        responses={**auth, **_errors(404, 422)},
    )
    def show_job(job_id: JobId) -> dict:
        return manager.job(job_id)

    @app.post(
        f"{API}/jobs/{{job_id}}/cancel",
        response_model=Job,
        tags=["jobs"],
        responses={**auth, **_errors(404, 422)},
    )
    def cancel_job(job_id: JobId) -> dict:
        return manager.cancel(job_id)

    @app.get(
        f"{API}/jobs/{{job_id}}/events",
        tags=["jobs"],
        responses={
            **auth,
            **_errors(404, 422),
            200: {
                "description": "The job as it changes: `data:` lines holding a Job, ending "
                "with the ended job.",
                # Each event as schemathesis and OpenAPI 3.2 (itemSchema) read a stream.
                "content": {
                    "text/event-stream": {
                        "schema": {
                            "type": "object",
                            "required": ["event", "data"],
                            "properties": {
                                "event": {"type": "string", "enum": ["job", "end"]},
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": {"$ref": "#/components/schemas/Job"},
                                },
                            },
                        }
                    }
                },
            },
        },
        response_class=StreamingResponse,
    )
    async def job_events(job_id: JobId) -> StreamingResponse:
        manager.job(job_id)  # 404 now, not inside a stream that has begun
        return StreamingResponse(
            _event_stream(manager, job_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post(
        f"{API}/generate",
        response_model=GenerationOut,
        tags=["generate"],
        responses={**auth, **_errors(404, 413, 422, 503)},
    )
    async def generate(body: GenerateBody) -> dict:
        """Posts from a model the server serves, each with its memorization flag and
        share links."""
        request = GenerateRequest(**body.model_dump())
        answer = await models.generate(request)
        # Generation.model is where the model lies on the server: the client's name.
        return {**answer, "model": body.model}

    ui_mounted = False
    if ui and _ui_available():
        app, ui_mounted = _mount_ui(app, manager, models, config)
    app.add_middleware(Guard, config=config, ui_mounted=ui_mounted)
    return app


async def _event_stream(manager: JobManager, job_id: str) -> AsyncIterator[bytes]:
    """Server-sent events: one ``data:`` line holding the job each time it changes (a
    comment line after quiet stretches keeps proxies from closing the stream)."""
    last = None
    async for snapshot in manager.subscribe(job_id, heartbeat=SSE_HEARTBEAT_S):
        if snapshot == last:
            yield b": still there\n\n"
            continue
        last = snapshot
        event = "end" if snapshot["state"] in ("succeeded", "failed", "cancelled") else "job"
        yield f"event: {event}\ndata: {json.dumps(snapshot)}\n\n".encode()


async def _upload(request: Request, manager: JobManager) -> dict:
    """The multipart form read with Starlette's limits (one file, a few small fields);
    the file itself is bounded by the Guard (the body) and by the manager (its size)."""
    from starlette.datastructures import UploadFile

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise OptionError("file", "send the file as multipart/form-data (a field named file)")
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=64 << 10)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        raise OptionError("file", f"the form cannot be read: {exc.detail}") from None
    try:
        unknown = sorted(set(form) - {"file", "handle"})
        if unknown:
            raise OptionError(unknown[0][:100], "is not a field of this form (file, handle)")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise OptionError("file", "is missing: send the export or posts file as 'file'")
        handle = form.get("handle")
        if handle is not None and not isinstance(handle, str):
            raise OptionError("handle", "must be text")
        handles = [handle] if handle else []
        # The manager's work (copying up to max_upload_bytes) runs in a thread.
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(
            manager.create_run_from_upload, file.filename or "", file.file, handles
        )
    finally:
        await form.close()


def _mount_ui(app: FastAPI, manager: JobManager, models, config: ServeConfig):
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
    return app, True
