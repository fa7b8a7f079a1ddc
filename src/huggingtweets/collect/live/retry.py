"""The retry policy of the live sources: wait out rate limits, retry transient faults with
bounded exponential back-off, fail at once on permanent ones, and stay cancellable.

Every request runs in a worker thread while the collecting thread waits in short slices,
checking for cancellation; waits for a rate limit or a retry sleep in slices too. So a web
app's "stop" ends a collection within a fraction of a second (a request in flight is
abandoned: it ends by its own time-out, and its answer is dropped).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from huggingtweets.collect.live.http import Fault, server_text
from huggingtweets.collect.live.options import LiveOptions
from huggingtweets.core.errors import HuggingtweetsError

T = TypeVar("T")
MAX_RATE_LIMIT_WAITS = 10  # in a row, for one request: a server that never lets us in
# A limit announced to reset later than this is not waited for: the collection stops, as
# with --no-wait, to be run again later (X's monthly caps reset days ahead).
MAX_RATE_LIMIT_WAIT = 3600.0
SLICE = 0.2  # seconds between two looks at the reporter's cancellation


class Service(Protocol):
    """What the policy asks of a live source."""

    service: str  # "the X API", "Bluesky", ... as messages name it
    deadline: float  # the longest one whole request may take, answer read to its end

    def classify(self, exc: Exception) -> Fault | None: ...


class Watcher(Protocol):
    """Who the policy tells (a collection, which passes it on to its reporter)."""

    def raise_if_cancelled(self) -> None: ...

    def warning(self, message: str) -> None: ...

    def waiting(self, message: str, seconds_left: float) -> None: ...

    def continue_later(self) -> str:
        """How to go on after giving up ("run the same command again ...")."""
        ...


class RetryPolicy:
    """Runs a live source's requests for one collection, one at a time."""

    def __init__(self, source: Service, live: LiveOptions, watcher: Watcher) -> None:
        self.source, self.live, self.watcher = source, live, watcher

    def call(self, request: Callable[[], T], what: str) -> T:
        """Run one request: wait out rate limits, retry transient faults with exponential
        back-off (bounded in delay and count), fail at once on permanent ones."""
        failures = waits = 0
        while True:
            value, fault = self._attempt(request)
            if fault is None:
                return value  # type: ignore[return-value]
            if fault.kind == "permanent":
                raise HuggingtweetsError(fault.message)
            if fault.kind == "rate_limit":
                waits += 1
                self._wait_out(fault, waits)
                continue
            failures += 1
            if failures > self.live.retries:
                tries = "1 try" if failures == 1 else f"{failures} tries"
                raise HuggingtweetsError(
                    f"{fault.message} ({what}; gave up after {tries}); "
                    + self.watcher.continue_later()
                )
            delay = self.backoff(failures)
            self.watcher.warning(
                f"{fault.message} ({what}); retry {failures} of {self.live.retries} in {delay:.1f}s"
            )
            self._sleep(delay)

    def backoff(self, attempt: int) -> float:
        return min(self.live.backoff_max, self.live.backoff_base * 2 ** (attempt - 1))

    def _wait_out(self, fault: Fault, waits: int) -> None:
        """Sleep until a rate limit resets, or stop when that is not ours to do."""
        # A reset time already past (clocks differ, "Retry-After: 0") must not turn into a
        # burst of requests: wait at least the back-off delay.
        delay = max(fault.wait or 0.0, self.backoff(waits))
        if not self.live.wait:
            raise HuggingtweetsError(self._stopped(fault.message, delay, "--no-wait"))
        if delay > MAX_RATE_LIMIT_WAIT:
            why = f"longer than {clock(MAX_RATE_LIMIT_WAIT)}"
            raise HuggingtweetsError(self._stopped(fault.message, delay, why))
        if waits > MAX_RATE_LIMIT_WAITS:
            raise HuggingtweetsError(
                f"{fault.message}, still after {MAX_RATE_LIMIT_WAITS} waits; "
                + self.watcher.continue_later()
            )
        self._countdown(fault.message, delay)

    def _attempt(self, request: Callable[[], T]) -> tuple[T | None, Fault | None]:
        """One request, in a worker thread (classified there too: a platform may read the
        answer it keeps per thread), while this thread watches for cancellation and for
        the request's deadline."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = request()
            except HuggingtweetsError as exc:
                box["raise"] = exc
            except Exception as exc:
                try:
                    fault = self.source.classify(exc)
                except BaseException as bug:
                    box["raise"] = bug
                    return
                box["fault" if fault is not None else "raise"] = fault or exc
            except BaseException as exc:
                box["raise"] = exc

        worker = threading.Thread(target=work, name="huggingtweets-request", daemon=True)
        deadline = time.monotonic() + self.source.deadline
        worker.start()
        while True:
            worker.join(SLICE)
            if not worker.is_alive():
                break
            self.watcher.raise_if_cancelled()
            if time.monotonic() > deadline:
                return None, Fault(
                    "transient",
                    f"{self.source.service} did not finish answering within "
                    f"{self.source.deadline:g}s",
                )
        if "raise" in box:
            raise box["raise"]
        if "fault" in box:
            fault = box["fault"]
            return None, Fault(fault.kind, server_text(fault.message, 2000), fault.wait)
        return box["value"], None

    def _sleep(self, seconds: float) -> None:
        """Sleep in slices, stopping at once when cancelled."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.watcher.raise_if_cancelled()
            time.sleep(min(SLICE, left))
        self.watcher.raise_if_cancelled()

    def _stopped(self, message: str, delay: float, why: str) -> str:
        return (
            f"{message}; stopped ({why}) with the limit resetting in {clock(delay)}"
            f"{_at(delay)}; " + self.watcher.continue_later()
        )

    def _countdown(self, message: str, delay: float) -> None:
        """Sleep until the limit resets: a warning, then a word a second with the time
        left, stopping at once when cancelled."""
        self.watcher.warning(
            f"{message}: waiting {clock(delay)}{_at(delay, 'until')}; stopping loses "
            "nothing: the same command continues later"
        )
        end = time.monotonic() + delay
        told = math.inf
        while (left := end - time.monotonic()) > 0:
            self.watcher.raise_if_cancelled()
            if told - left >= 1:
                told = left
                self.watcher.waiting(f"waiting for the rate limit: {clock(left)} left", left)
            time.sleep(min(SLICE, left))
        self.watcher.raise_if_cancelled()


def clock(seconds: float) -> str:
    """A wait as a reader wants it: 45s, 3m05s, 1h02m, 3d04h."""
    if not math.isfinite(seconds) or seconds > 100 * 365 * 86400:
        return "more than a century"
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400:,}d{seconds % 86400 // 3600:02d}h"


def _at(delay: float, word: str = "at") -> str:
    """When a wait of ``delay`` seconds ends, as " (at 12:34:56 UTC)" (with the date when
    not today); "" for a time no calendar holds."""
    try:
        now = datetime.now(timezone.utc)
        when = datetime.fromtimestamp(now.timestamp() + delay, timezone.utc)
    except (OverflowError, ValueError, OSError):
        return ""
    if when.date() == now.date():
        return f" ({word} {when:%H:%M:%S} UTC)"
    return f" ({word} {when:%Y-%m-%d %H:%M} UTC)"
