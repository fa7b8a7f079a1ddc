"""Progress as events: how the stages tell whoever listens what they are doing.

No stage prints. Each takes a :class:`Reporter` and sends it :class:`Event`\\ s (a stage
starts, advances, logs a loss, warns, ends); the CLI draws them as progress bars, a web
app streams them, a tracker logs them. Listeners are plain callables, so a script can
pass ``print``. Cancellation travels the other way: ``reporter.cancel()`` (from a signal
handler, a web request, another thread) asks the running stage to stop at its next safe
point, where it raises :class:`Cancelled` — a web app cannot send SIGINT.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EventKind = Literal["start", "progress", "end", "info", "warning"]


@dataclass(frozen=True)
class Event:
    """One thing that happened in a stage.

    ``step``/``total`` count the stage's units (pages, posts, optimizer steps), ``eta`` is
    the seconds left as the reporter estimates them from the pace so far, and ``data``
    carries what is particular to a stage (an epoch, an evaluation loss, an account).
    """

    stage: str
    kind: EventKind
    message: str = ""
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    eta: float | None = None
    elapsed: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Listener = Callable[[Event], None]


class Cancelled(KeyboardInterrupt):
    """The run was asked to stop (``Reporter.cancel()`` or Ctrl-C); what was complete is
    kept, and running the same command again continues."""


class Reporter:
    """Sends a run's events to its listeners and carries its cancellation request."""

    def __init__(self, *listeners: Listener, cancel_event: threading.Event | None = None):
        self.listeners: list[Listener] = list(listeners)
        # Any object with is_set()/set() works, e.g. a multiprocessing.Event for a worker.
        self.cancel_event = cancel_event if cancel_event is not None else threading.Event()
        self._started: dict[str, tuple[float, int]] = {}
        self._cooperating = 0

    # -- sending --------------------------------------------------------------

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def start(
        self, stage: str, message: str = "", *, total: int | None = None, step: int = 0, **data
    ) -> None:
        """``step``: where a resumed stage starts (the pace, and so the ETA, counts from
        there)."""
        self._started[stage] = (time.monotonic(), step)
        self.emit(Event(stage, "start", message, step=step, total=total, data=data))

    def progress(
        self,
        stage: str,
        step: int,
        total: int | None = None,
        *,
        message: str = "",
        loss: float | None = None,
        **data,
    ) -> None:
        """``step`` of ``total`` done; the ETA is estimated from the pace since start."""
        started, first_step = self._started.setdefault(stage, (time.monotonic(), step))
        elapsed = time.monotonic() - started
        eta = None
        done = step - first_step
        if total is not None and done > 0 and elapsed > 0:
            eta = max(0.0, (total - step) * elapsed / done)
        self.emit(
            Event(stage, "progress", message, step, total, loss, eta, elapsed, data=dict(data))
        )

    def end(self, stage: str, message: str = "", **data) -> None:
        started = self._started.pop(stage, None)
        elapsed = time.monotonic() - started[0] if started else None
        self.emit(Event(stage, "end", message, elapsed=elapsed, data=data))

    def info(self, stage: str, message: str, **data) -> None:
        self.emit(Event(stage, "info", message, data=data))

    def warning(self, stage: str, message: str, **data) -> None:
        self.emit(Event(stage, "warning", message, data=data))

    @contextlib.contextmanager
    def stage(self, stage: str, message: str = "", *, total: int | None = None) -> Iterator[None]:
        """``start`` … ``end`` around a block (no ``end`` when it fails)."""
        self.start(stage, message, total=total)
        yield
        self.end(stage)

    # -- cancelling -----------------------------------------------------------

    def cancel(self) -> None:
        """Ask the running stage to stop at its next safe point (thread- and signal-safe)."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @contextlib.contextmanager
    def cooperative(self) -> Iterator[None]:
        """Marks a stretch of work that checks for cancellation itself and stops at a safe
        point (training, a live collection). Elsewhere a Ctrl-C handler may simply raise
        KeyboardInterrupt: every write is atomic, so nothing half-written is kept."""
        self._cooperating += 1
        try:
            yield
        finally:
            self._cooperating -= 1

    @property
    def cooperating(self) -> bool:
        return self._cooperating > 0

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled()


@contextlib.contextmanager
def cancel_on_sigint(reporter: Reporter, on_request: Callable[[], None] | None = None):
    """For command-line programs: Ctrl-C during cooperative work asks it to stop at a safe
    point (``on_request`` is told); a second Ctrl-C, or one elsewhere, interrupts at once."""
    import signal

    def handler(signum, frame):
        if reporter.cancelled or not reporter.cooperating:
            raise KeyboardInterrupt
        reporter.cancel()
        if on_request is not None:
            on_request()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def reporter_or_silent(reporter: Reporter | None) -> Reporter:
    """The stages' default: events go nowhere, cancellation still works per call."""
    return reporter if reporter is not None else Reporter()
