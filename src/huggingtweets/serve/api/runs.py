"""The runs: list, show, create from accounts or an upload, and train."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from huggingtweets.core.options import OptionError
from huggingtweets.serve.api.bodies import CreateRun, Job, RunDetail, RunSummary, TrainBody
from huggingtweets.serve.api.common import API, Manager, RunId
from huggingtweets.serve.api.errors import error_responses
from huggingtweets.serve.catalog import RESERVED_RUN_IDS
from huggingtweets.serve.manager import JobManager

# The upload's form, as OpenAPI describes it (the route reads it itself, bounded).
UPLOAD_FORM = {
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

router = APIRouter()


@router.get(f"{API}/runs", response_model=list[RunSummary], tags=["runs"])
def list_runs(manager: Manager) -> list[dict]:
    return manager.runs()


@router.get(
    f"{API}/runs/{{run_id}}",
    response_model=RunDetail,
    tags=["runs"],
    responses=error_responses(404, 422),
)
def show_run(run_id: RunId, manager: Manager) -> dict:
    if run_id in RESERVED_RUN_IDS:  # /runs/upload: a resource of its own (POST)
        raise HTTPException(405, "Method Not Allowed")
    return manager.run(run_id)


@router.post(
    f"{API}/runs",
    status_code=202,
    response_model=Job,
    tags=["runs"],
    responses=error_responses(409, 413, 422),
)
def create_run(body: CreateRun, manager: Manager) -> dict:
    """Collect 1 to 3 accounts and prepare them into a run (a job): a new one, or the
    run_id given (one with a trained model only with overwrite)."""
    return manager.create_run(
        body.sources, body.handles, run_id=body.run_id, overwrite=body.overwrite
    )


@router.post(
    f"{API}/runs/upload",
    status_code=202,
    response_model=Job,
    tags=["runs"],
    responses=error_responses(413, 422),
    openapi_extra={"requestBody": UPLOAD_FORM},
)
async def upload(request: Request, manager: Manager) -> dict:
    """Prepare an uploaded export or posts file into a new run (a job)."""
    return await read_upload(request, manager)


@router.post(
    f"{API}/runs/{{run_id}}/train",
    status_code=202,
    response_model=Job,
    tags=["training"],
    responses=error_responses(404, 409, 413, 422),
)
def train(run_id: RunId, body: TrainBody, manager: Manager) -> dict:  # type: ignore[valid-type]
    """Queue a training of the run (TrainOptions' fields; their CLI defaults)."""
    return manager.start_training(run_id, body.model_dump(exclude_unset=True))


async def read_upload(request: Request, manager: JobManager) -> dict:
    """The multipart form read with Starlette's limits (one file, a few small fields);
    the file itself is bounded by the Guard (the body) and by the manager (its size)."""
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
        return await run_in_threadpool(
            manager.create_run_from_upload, file.filename or "", file.file, handles
        )
    finally:
        await form.close()
