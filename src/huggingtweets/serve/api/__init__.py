"""The HTTP API of ``huggingtweets serve`` (FastAPI), with the web UI mounted at "/".

Routes under ``/api/v1`` (OpenAPI at ``/openapi.json``, docs at ``/docs``), one router a
resource: health (health.py), runs (runs.py: list, show, create from accounts or an
upload, train), jobs (jobs.py: list, show, cancel, a server-sent event stream of their
progress), generation and the models served (generate.py), and the OpenAI-compatible
routes under ``/v1`` (openai.py: models, completions). The bodies are in bodies.py, derived from the
option specs where the library has them; :func:`create_app` (app.py) puts them together
behind the :class:`~huggingtweets.serve.api.guard.Guard`.

Every error is a JSON body of the one shape FastAPI uses for validation errors,
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``, whose ``loc`` names the
field (or the path parameter, or the header) that is wrong (errors.py); on ``/v1``, OpenAI's
``{"error": {"message", "type", "param", "code"}}`` (openai.py).
"""

from huggingtweets.serve.api.app import create_app

__all__ = ["create_app"]
