"""The HTTP layer of the live sources: bounded answers, the faults a failed request means,
service addresses, rate-limit headers, and a server's own words made safe to show.

A server may be broken or hostile: every answer is read with a bound on its (decoded) size
and time (:func:`bounded_adapter` for ``requests``, :func:`bounded_httpx_hook` for httpx),
an answer that is not the documented JSON is a :class:`MalformedAnswer` (retried, never
read as "no more posts"), and its text is made one bounded line without control
characters or secrets (:func:`server_text`) before it goes into an error or an event.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError, check_options, option
from huggingtweets.core.secrets import redact
from huggingtweets.core.times import parse_time

T = TypeVar("T")
MAX_ANSWER_BYTES = 32 * 2**20  # a page is ~100 KB: more is a broken or hostile server
MAX_DETAIL = 300  # characters of a server's own words kept in a message


# -- service addresses -----------------------------------------------------------


def url_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a service's base URL, or None."""
    if not value.strip():
        return "is empty"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return "holds a space or a control character"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host name"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password (tokens come from the environment)"
    if parts.query or parts.fragment:
        return "must not hold a query (?...) or a fragment (#...)"
    return None


def check_url_option(options: Any, name: str) -> None:
    """Refuse a malformed URL in the (optional) option ``name`` of ``options``."""
    value = getattr(options, name)
    if value is None:
        return
    problem = url_problem(value)
    if problem:
        raise OptionError(name, f"{problem}: expected a URL such as https://host (got {value!r})")


def service_url(value: str | None, env: str, default: str) -> str:
    """A service's base URL: the option's value, else the environment variable's, else the
    default; without a trailing "/". A malformed one from the environment is refused."""
    if value is None:
        value = os.environ.get(env) or None
        if value is not None:
            problem = url_problem(value)
            if problem:
                raise HuggingtweetsError(
                    f"{env} {problem}: expected a URL such as https://host (got {value!r})"
                )
    return (value or default).rstrip("/")


def url_option(help: str) -> Any:
    """A platform option holding its service's base URL (None: the environment's or the
    default); checked by :class:`ServiceAddresses`."""
    return option(None, metavar="URL", help=help)


class ServiceAddresses:
    """The base of a platform's options dataclass whose fields are service URLs: each one
    given is refused when malformed, before anything is fetched."""

    def __post_init__(self) -> None:
        check_options(self)
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            check_url_option(self, field.name)


# -- faults and malformed answers -------------------------------------------------


class MalformedAnswer(Exception):
    """The service answered, but not with the JSON it documents (a proxy's error page, a
    truncated body, another shape, far too large an answer): retried as a transient fault,
    never read as "no more posts", which would end a collection early."""


class AnswerOutOfBounds(MalformedAnswer):
    """An answer larger than MAX_ANSWER_BYTES (decoded), or still arriving at the deadline."""


def expect_shape(ok: bool, what: str) -> None:
    """Raise MalformedAnswer unless ``ok``; ``what`` names what was expected."""
    if not ok:
        raise MalformedAnswer(f"expected {what}")


@contextlib.contextmanager
def parsing(what: str):
    """Reading an answer's fields: a field of another type than documented (a list where
    an object belongs, a number for a text) is a MalformedAnswer, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise MalformedAnswer(f"{what}: {type(exc).__name__} {exc}") from exc


def count_or_none(value: object) -> int | None:
    """A count from a service, when it is a whole number above zero."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def find_cause(exc: BaseException | None, kind: type[T]) -> T | None:
    """``exc`` or the first exception it was raised from (or while handling) of ``kind``:
    client libraries wrap ours (Mastodon.py turns any into a MastodonNetworkError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


def server_text(text: object, limit: int = MAX_DETAIL) -> str:
    """A server's own words made fit for one line of a terminal: no control characters
    (an ANSI escape in an error body could rewrite the screen), no line breaks, at most
    ``limit`` characters, every secret redacted."""
    one_line = " ".join(_CONTROL_RE.sub(" ", redact(str(text))).split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1].rstrip() + "…"
    return one_line


def shown(spec: str, limit: int = 80) -> str:
    """A spec as an error message quotes it: repr'd (control characters visible), and
    cut short when it is long."""
    text = repr(spec)
    return text if len(text) <= limit else text[: limit - 2] + "…'"


@dataclass
class Fault:
    """What a failed request means. ``message`` says what happened (and, for a permanent
    fault, what to do) in one line; ``wait`` is the seconds until a rate limit resets."""

    kind: Literal["rate_limit", "transient", "permanent"]
    message: str
    wait: float | None = None


def optional_text(value: object) -> str | None:
    """An optional text field: a text, or None (for "" and for any other type)."""
    return value if isinstance(value, str) and value else None


class LastAnswer:
    """The last answer ``requests`` received, per thread (each request runs in a thread of
    its own: one abandoned at a time-out must not answer for the next). Client libraries
    drop what an error answer said; this keeps it, through requests' response hook."""

    def __init__(self) -> None:
        self._local = threading.local()

    def remember(self, response, *args, **kwargs):
        self._local.answer = response
        return response

    def forget(self) -> None:
        self._local.answer = None

    @property
    def response(self):
        return getattr(self._local, "answer", None)


# -- bounded answers -------------------------------------------------------------


class _Reading:
    """Counts an answer's bytes (decoded) and time as it is read."""

    def __init__(self, limit: int, deadline: float) -> None:
        self.limit, self.size = limit, 0
        self.deadline = time.monotonic() + deadline
        self.seconds = deadline

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise AnswerOutOfBounds(f"an answer of more than {self.limit / 2**20:g} MB")
        if time.monotonic() > self.deadline:
            raise AnswerOutOfBounds(f"an answer still arriving after {self.seconds:g}s")

    def check_declared(self, length: str | None) -> None:
        if length and length.strip().isdigit() and int(length) > self.limit:
            raise AnswerOutOfBounds(f"an answer of {int(length) / 2**20:,.0f} MB")


def bounded_adapter(timeout: float, deadline: float, rewrite: tuple[str, str] | None = None):
    """A ``requests`` transport adapter (requests' documented extension point) that gives
    every request a time-out, reads each answer with a bound on its (decoded) size and
    time, and, with ``rewrite=(prefix, base_url)``, sends requests for ``prefix`` to
    another base URL (tweepy always sends to https://api.twitter.com)."""
    from requests.adapters import HTTPAdapter
    from requests.utils import get_environ_proxies

    class BoundedAdapter(HTTPAdapter):
        def send(self, request, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            if rewrite is not None and rewrite[0] != rewrite[1]:
                prefix, base_url = rewrite
                if request.url.startswith(prefix):
                    request.url = base_url + request.url[len(prefix) :]
                    # Proxies (and NO_PROXY) as they apply to where the request now goes.
                    kwargs["proxies"] = get_environ_proxies(request.url)
            response = super().send(request, **kwargs)
            if not kwargs.get("stream"):
                reading = _Reading(MAX_ANSWER_BYTES, deadline)
                chunks = []
                try:
                    reading.check_declared(response.headers.get("content-length"))
                    for chunk in response.iter_content(65536):
                        reading.add(chunk)
                        chunks.append(chunk)
                except BaseException:
                    response.close()
                    raise
                response._content = b"".join(chunks)  # what Response.content would hold
            return response

    return BoundedAdapter()


def bounded_httpx_hook(deadline: float):
    """An httpx response event hook that reads the answer with the same bounds."""

    def read_bounded(response) -> None:
        reading = _Reading(MAX_ANSWER_BYTES, deadline)
        reading.check_declared(response.headers.get("content-length"))
        chunks = []
        for chunk in response.iter_bytes():
            reading.add(chunk)
            chunks.append(chunk)
        response._content = b"".join(chunks)  # what Response.read() keeps

    return read_bounded


# -- rate limits -----------------------------------------------------------------


def seconds_until_reset(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait after a 429, from whichever header the service sent.

    ``x-rate-limit-reset`` (X) and ``ratelimit-reset`` (Bluesky) are Unix times (the
    IETF draft's ``ratelimit-reset`` is a number of seconds: small values are read so),
    Mastodon's ``x-ratelimit-reset`` an ISO-8601 time, ``retry-after`` seconds or an
    HTTP date. A second is added to whole-second reset times, which round down. Values
    that are not numbers, not finite or in the past give no wait (0 or the next header).
    """
    now = time.time() if now is None else now
    lower = {str(k).lower(): v for k, v in headers.items()}
    for name in ("retry-after", "x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"):
        value = str(lower.get(name) or "").strip()
        if not value:
            continue
        with contextlib.suppress(ValueError):
            number = float(value)
            if not math.isfinite(number):
                continue
            if name == "retry-after" or number < 10**9:  # a delay, not a time
                return max(0.0, number)
            return max(0.0, number - now + 1)
        if name == "retry-after":
            with contextlib.suppress(TypeError, ValueError, OverflowError, IndexError):
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
        when = parse_time(value)
        if when is not None:
            return max(0.0, when.timestamp() - now + 1)
    return None
