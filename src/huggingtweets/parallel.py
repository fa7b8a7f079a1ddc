"""Use the second core for the two CPU-heavy loops of the data half (reading a large
export, cleaning its posts) without shipping the data to a worker.

The work is split in two: a forked child computes the second half from memory it shares
with the parent (copy-on-write, nothing pickled on the way in) and sends its result back
as msgpack, which msgspec decodes into typed records far faster than pickle would; the
parent computes the first half meanwhile. Anything unusual — no ``fork`` on this
platform, threads already running, a small input, a child that fails — falls back to
doing the work here, so results and error messages are the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
MIN_ITEMS = 20_000  # below this, forking costs more than it saves


def can_fork() -> bool:
    # fork() in a process with other threads may deadlock the child (a lock held by a
    # thread that does not exist there), and macOS has no safe fork at all.
    return (
        sys.platform == "linux"
        and threading.active_count() == 1
        and os.environ.get("HUGGINGTWEETS_NO_FORK", "") == ""
        and (os.cpu_count() or 1) > 1
    )


def split_in_two(
    first: Callable[[], T], second: Callable[[], T], result_type: Any, size: int
) -> tuple[T, T]:
    """(first(), second()), with ``second`` run in a forked child when worth it.

    ``result_type`` is the type msgspec decodes the child's result into (e.g.
    ``list[Post]``); ``size`` is the number of items, to decide whether to fork.
    """
    if size < MIN_ITEMS or not can_fork():
        return first(), second()
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(second, sender), daemon=True)
    child.start()
    sender.close()
    try:
        head = first()
        try:
            payload = receiver.recv_bytes()
        except EOFError:  # the child died (killed, out of memory): do its share here
            payload = b""
    finally:
        receiver.close()
        child.join()
    if not payload or payload[:1] != b"\x01":
        return head, second()  # the child failed: recompute, so the error is raised here
    return head, msgspec.msgpack.decode(payload[1:], type=result_type)


def _child(work: Callable[[], Any], sender) -> None:
    try:
        sender.send_bytes(b"\x01" + msgspec.msgpack.encode(work()))
    except BaseException:  # reported by recomputing in the parent
        sender.send_bytes(b"\x00")
    finally:
        sender.close()
