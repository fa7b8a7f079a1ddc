"""The jobs: list, show, cancel, and a server-sent event stream of a job's progress."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from huggingtweets.serve.api.bodies import Job
from huggingtweets.serve.api.common import API, JobId, Manager
from huggingtweets.serve.api.errors import error_responses
from huggingtweets.serve.jobs import ENDED
from huggingtweets.serve.manager import JobManager

SSE_HEARTBEAT_S = 15.0
# Each event as schemathesis and OpenAPI 3.2 (itemSchema) read a stream.
EVENT_STREAM_SCHEMA = {
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

router = APIRouter(tags=["jobs"])


@router.get(f"{API}/jobs", response_model=list[Job])
def list_jobs(manager: Manager) -> list[dict]:
    return manager.jobs()


@router.get(f"{API}/jobs/{{job_id}}", response_model=Job, responses=error_responses(404, 422))
def show_job(job_id: JobId, manager: Manager) -> dict:
    return manager.job(job_id)


@router.post(
    f"{API}/jobs/{{job_id}}/cancel", response_model=Job, responses=error_responses(404, 422)
)
def cancel_job(job_id: JobId, manager: Manager) -> dict:
    return manager.cancel(job_id)


@router.get(
    f"{API}/jobs/{{job_id}}/events",
    responses={
        **error_responses(404, 422),
        200: {
            "description": "The job as it changes: `data:` lines holding a Job, ending "
            "with the ended job.",
            "content": {"text/event-stream": {"schema": EVENT_STREAM_SCHEMA}},
        },
    },
    response_class=StreamingResponse,
)
async def job_events(job_id: JobId, manager: Manager) -> StreamingResponse:
    manager.job(job_id)  # 404 now, not inside a stream that has begun
    return StreamingResponse(
        event_stream(manager, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def event_stream(manager: JobManager, job_id: str) -> AsyncIterator[bytes]:
    """Server-sent events: one ``data:`` line holding the job each time it changes (a
    comment line after quiet stretches keeps proxies from closing the stream)."""
    last = None
    async for snapshot in manager.subscribe(job_id, heartbeat=SSE_HEARTBEAT_S):
        if snapshot == last:
            yield b": still there\n\n"
            continue
        last = snapshot
        event = "end" if snapshot["state"] in ENDED else "job"
        yield f"event: {event}\ndata: {json.dumps(snapshot)}\n\n".encode()
