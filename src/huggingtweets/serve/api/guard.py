"""The guard in front of every route: host, token, body size."""

from __future__ import annotations

import secrets

from huggingtweets.serve.api.common import API, API_PATHS, HEALTH, OPENAI
from huggingtweets.serve.api.errors import BodyTooLarge
from huggingtweets.serve.api.errors import error_response as api_error
from huggingtweets.serve.api.openai import openai_error
from huggingtweets.serve.config import ServeConfig

# JSON bodies are small; only an upload may be large (ServeConfig.max_upload_bytes), the
# API's and the page's (Gradio's upload route); every other route of the page is small.
MAX_JSON_BYTES = 1 << 20
UPLOAD_PATHS = (f"{API}/runs/upload", "/gradio_api/upload")
MULTIPART_OVERHEAD = 64 << 10  # the form's boundaries and headers around the file
# Names a request may be addressed to on a loopback server ("testserver": the ASGI test
# clients' name, which no DNS rebinding can produce).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1", "testserver")


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
            too_large = error_response(
                path, 413, ["body"], BodyTooLarge(limit).detail, "http_error"
            )
            return await too_large(scope, receive, send)
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
        if path in UPLOAD_PATHS:  # the page's is also bounded by Gradio's max_file_size
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
                return error_response(
                    path,
                    400,
                    ["header", "host"],
                    "this server answers requests to localhost only",
                    "host_refused",
                )
            # A page on another site may still send a form to localhost (a multipart
            # upload, a cancel, the page's queue: no preflight asked): the browser names
            # that site in Origin. Every route, the page's own too (the page is served
            # from here: its requests carry a loopback Origin, or none).
            origin = headers.get("origin")
            if origin is not None and not _local_origin(origin):
                return error_response(
                    path,
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
        return error_response(
            path,
            401,
            ["header", "authorization"],
            "give the server's token: Authorization: Bearer $HUGGINGTWEETS_API_TOKEN",
            "unauthorized",
            {"WWW-Authenticate": "Bearer"},
        )


# The guard's refusals in OpenAI's words, on the /v1 routes (what its clients look for).
OPENAI_CODES = {"unauthorized": "invalid_api_key", "http_error": "too_large"}


def error_response(path: str, status: int, loc: list, msg: str, kind: str, headers=None):
    """The refusal in the route's own error shape: OpenAI's on /v1, the project's else."""
    if path.startswith(OPENAI + "/"):
        code = OPENAI_CODES.get(kind, kind)
        param = str(loc[-1]) if loc else None
        return openai_error(status, msg, param=param, code=code, headers=headers)
    return api_error(status, loc, msg, kind, headers)


def _local_origin(origin: bytes) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(origin.decode("latin-1"))
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        return parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_NAMES
    except ValueError:
        return False
