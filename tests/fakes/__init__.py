"""Fake servers on 127.0.0.1 that speak the documented APIs of X, Bluesky and Mastodon.

The live sources run their real client libraries (tweepy, atproto, Mastodon.py) against
them. A test scripts faults for the next requests to a path (a 429 with a reset header, a
5xx, a body that is not JSON, an answer slower than the client's time-out, a dropped
connection, an endless or compressed body, an answer made from the request itself such as
one that echoes its token, or a callback such as killing the client) and reads back every
request the server received. ``collect_live`` runs a live source through the library and
keeps its events.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from huggingtweets.collect.live.base import LiveOptions
from huggingtweets.collect.registry import SourceOptions, resolve
from huggingtweets.collect.sample import speeches
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Event, Reporter
from huggingtweets.core.runs import RunDir


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Fault:
    """How to answer one request instead of normally."""

    status: int | None = None
    headers: dict[str, str] | Callable[[], dict[str, str]] = field(default_factory=dict)
    # The body, or chunks sent as they are made, with no Content-Length (an endless body).
    body: bytes | Callable[[], Iterator[bytes]] = b"{}"
    delay: float = 0.0  # seconds before answering (longer than the client's time-out)
    drop: bool = False  # close the connection without an answer
    call: Callable[[], None] | None = None  # run this first (e.g. kill the client)
    # An answer made from the request (a page of one's making, an echo of the token).
    respond: Callable[[Seen], Answer] | None = None


def rate_limited(header: str, seconds: float) -> Fault:
    """A 429 whose ``header`` says the limit resets ``seconds`` after the request arrives:
    as a Unix time (x-rate-limit-reset, ratelimit-reset), an ISO time (x-ratelimit-reset)
    or a delay (retry-after)."""

    def headers() -> dict[str, str]:
        reset = time.time() + seconds
        if header.lower() == "retry-after":
            value = str(math.ceil(seconds))
        elif header.lower() == "x-ratelimit-reset":
            value = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(reset))
        else:
            value = str(math.ceil(reset))
        return {header: value}

    return Fault(429, headers, b'{"title": "Too Many Requests", "error": "RateLimitExceeded"}')


def server_error(status: int = 503) -> Fault:
    return Fault(status, {}, b'{"error": "temporarily unavailable"}')


def malformed() -> Fault:
    """A 200 that promises JSON and is not."""
    return Fault(200, {}, b'{"data": [ this is not JSON')


def slow(seconds: float) -> Fault:
    """Answer normally, but only after ``seconds``."""
    return Fault(delay=seconds)


def dropped() -> Fault:
    return Fault(drop=True)


def endless(chunk: bytes = b"[" + b" " * 65535) -> Fault:
    """A 200 whose body never ends."""

    def chunks() -> Iterator[bytes]:
        while True:
            yield chunk

    return Fault(200, {}, chunks)


def gzip_bomb(megabytes: int) -> Fault:
    """A 200 whose small gzip'd body inflates to ``megabytes`` MB of spaces."""
    return Fault(200, {"Content-Encoding": "gzip"}, _gzipped_spaces(megabytes))


@functools.cache
def _gzipped_spaces(megabytes: int) -> bytes:
    return gzip.compress(b" " * (megabytes * 2**20), 9)


def echo_token(status: int, shape: Callable[[str], object]) -> Fault:
    """An error answer that repeats the request's bearer token (as a careless proxy or
    server may): ``shape(authorization header)`` is the JSON body."""

    def respond(seen: Seen) -> Answer:
        return status, {}, json.dumps(shape(seen.headers.get("authorization", ""))).encode()

    return Fault(respond=respond)


Answer = tuple[int, dict[str, str], bytes]


class FakeServer:
    """A threaded HTTP server; subclasses answer ``handle(seen) -> (status, headers, body)``."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._faults: list[tuple[str, deque[Fault | None]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            def log_message(self, *args) -> None:  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, path_part: str, *faults: Fault | None) -> None:
        """The next requests whose path contains ``path_part`` get these answers in order
        (None: the normal answer)."""
        with self._lock:
            self._faults.append((path_part, deque(faults)))

    def seen(self, path_part: str = "") -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if path_part in r.path]

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            for part, queue in self._faults:
                if part in path and queue:
                    return queue.popleft()
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        seen = Seen("GET", url.path, query, {k.lower(): v for k, v in handler.headers.items()})
        with self._lock:
            self.requests.append(seen)
        fault = self._next_fault(url.path) or Fault()
        if fault.call is not None:
            fault.call()
        if fault.drop or fault.call is not None:
            handler.close_connection = True
            return
        time.sleep(fault.delay)
        if fault.respond is not None:
            status, headers, body = fault.respond(seen)
        elif fault.status is not None:
            headers = fault.headers() if callable(fault.headers) else fault.headers
            status, body = fault.status, fault.body
        else:
            status, headers, body = self.handle(seen)
        sent = {"Content-Type": "application/json; charset=utf-8"}
        if not callable(body):
            sent["Content-Length"] = str(len(body))
        given = {name.lower() for name in headers}
        sent = {k: v for k, v in sent.items() if k.lower() not in given} | dict(headers)
        try:
            handler.send_response(status)
            for name, value in sent.items():
                handler.send_header(name, value)
            handler.end_headers()
            if callable(body):  # sent until the client hangs up (HTTP/1.0: no length)
                handler.close_connection = True
                for chunk in body():
                    handler.wfile.write(chunk)
            else:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out)
            handler.close_connection = True

    def handle(self, seen: Seen) -> Answer:
        raise NotImplementedError


def as_json(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return status, headers or {}, json.dumps(obj).encode()


def posts_in(run_dir, handle: str) -> list[dict]:
    """The post records a collection wrote, in file order (every line must be whole)."""
    path = run_dir / "posts" / f"{handle}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def sample_texts(count: int, speaker: str = "ROMEO") -> list[str]:
    """``count`` real sentences (from the bundled tiny Shakespeare), one line each."""
    lines = [
        " ".join(body.split())
        for who, body in speeches()
        if who == speaker and len(body.split()) >= 8
    ]
    return [lines[i % len(lines)][:260] for i in range(count)]


TOKEN_ENVS = (
    "X_BEARER_TOKEN",
    "TWITTER_BEARER_TOKEN",
    "MASTODON_ACCESS_TOKEN",
    "MASTODON_INSTANCE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "WANDB_API_KEY",
)
URL_ENVS = ("HUGGINGTWEETS_X_API_URL", "HUGGINGTWEETS_BSKY_SERVICE", "HUGGINGTWEETS_MASTODON_URL")


@pytest.fixture(autouse=True)
def live_env(monkeypatch, tmp_path_factory):
    """No tokens or service URLs from the machine (nor its Hugging Face login); retries
    back off in milliseconds. Writes are not flushed to the disk itself (fsync): that
    guards against a power cut, which no test makes, and took half of each test's time
    (a killed process loses nothing the kernel has; the kill tests run in subprocesses
    with the real fsync)."""
    for name in TOKEN_ENVS + URL_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path_factory.mktemp("hf") / "token"))
    monkeypatch.setenv("HUGGINGTWEETS_BACKOFF_BASE", "0.01")
    for name in ("NO_PROXY", "no_proxy"):  # the fakes are local, whatever proxy is set
        monkeypatch.setenv(name, "127.0.0.1,localhost")


def stats_add_up(run_dir) -> dict:
    """dataset/stats.json's one account, after checking downloaded = sum of categories."""
    stats = json.loads((run_dir / "dataset" / "stats.json").read_text())
    (account,) = stats["accounts"]
    assert account["downloaded"] == sum(account[c] for c in stats["categories"])
    return account


# -- running a live source through the library, with its events ---------------------


@dataclass
class Outcome:
    """What one collection did: its events, its error (one line) or what it collected."""

    events: list[Event]
    error: str | None = None
    collected: Any = None
    cancelled: bool = False

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    @property
    def text(self) -> str:
        """Every event's message, then the error: what a user would read."""
        lines = [e.message for e in self.events if e.message]
        return "\n".join([*lines, self.error or ""])

    def everything(self) -> str:
        """All of it, data included (to look for what must never be there)."""
        return "\n".join([*(repr(e.to_dict()) for e in self.events), self.error or ""])


def collect_live(
    spec: str,
    out,
    *extra: object,
    handle: str | None = None,
    fails: bool = False,
    listener: Callable[[Event, Reporter], None] | None = None,
    reporter: Reporter | None = None,
    **live: Any,
) -> Outcome:
    """Collect ``spec`` into ``out`` through the library (``resolve`` and the source's
    ``collect``), with ``LiveOptions(**live)`` and the platforms' options ``extra``.
    ``fails``: a HuggingtweetsError is expected (else none may be raised); a cancelled
    collection returns ``cancelled=True``. ``listener(event, reporter)`` sees each event."""
    events: list[Event] = []
    reporter = reporter or Reporter()

    def record(event: Event) -> None:
        events.append(event)
        if listener is not None:
            listener(event, reporter)

    reporter.listeners.append(record)
    options = SourceOptions(
        handle=handle, live=LiveOptions(**live), extra={type(o): o for o in extra}
    )
    try:
        collected = resolve(spec, options).collect(RunDir(out), reporter)
    except HuggingtweetsError as exc:
        if not fails:
            raise
        assert "\n" not in str(exc), f"not one line: {exc}"
        return Outcome(events, str(exc))
    except Cancelled:
        return Outcome(events, cancelled=True)
    assert not fails, "expected an error"
    return Outcome(events, collected=collected)


def cancel_after_posts(count: int) -> Callable[[Event, Reporter], None]:
    """A listener that cancels the collection once ``count`` posts are in."""

    def listener(event: Event, reporter: Reporter) -> None:
        if event.kind == "progress" and (event.step or 0) >= count:
            reporter.cancel()

    return listener
