"""Use the second core for the two CPU-heavy loops of the data half (reading a large
export, cleaning its posts) without shipping the data to a worker.

The work is split in two: a forked child computes the second half from memory it shares
with the parent (copy-on-write, nothing pickled on the way in) and sends its result back
as msgpack, which msgspec decodes into typed records far faster than pickle would; the
parent computes the first half meanwhile. Anything unusual — no ``fork`` on this
platform, threads already running, a small input, a child that fails — falls back to
doing the work here, so results and error messages are the same either way.

The child never outlives the parent and never holds it up:

- the kernel kills it when the parent dies, even by ``kill -9`` (``PR_SET_PDEATHSIG``);
- it ignores Ctrl-C (the terminal sends SIGINT to both): the parent decides, and kills it
  when interrupted or when its own half fails;
- it keeps only the write end of its pipe, and closes every other descriptor it inherited
  (the pipe's read end, the caller's stdout, a server's sockets), so a reader waiting for
  the end of our output, or for the pipe, is never held by it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
MIN_ITEMS = 20_000  # below this, forking costs more than it saves
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@cache
def _prctl() -> Any:
    """libc's prctl, loaded in the parent (never first in a freshly forked child)."""
    import ctypes  # only where a fork is worth it

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def can_fork() -> bool:
    # fork() in a process with other threads may deadlock the child (a lock held by a
    # thread that does not exist there), and macOS has no safe fork at all. Without
    # prctl a child could outlive a killed parent: no fork then either.
    return (
        sys.platform == "linux"
        and threading.active_count() == 1
        and os.environ.get("HUGGINGTWEETS_NO_FORK", "") == ""
        and (os.cpu_count() or 1) > 1
        and _prctl() is not None
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
    prctl = _prctl()
    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process or memory left for a child: all of it here
        os.close(read_fd)
        os.close(write_fd)
        return first(), second()
    if pid == 0:
        _child(second, read_fd, write_fd, parent, prctl)  # never returns
    try:
        os.close(write_fd)
        try:
            head = first()
            with open(read_fd, "rb", buffering=0, closefd=False) as pipe:
                payload = pipe.readall()  # b"" when the child died
        finally:
            os.close(read_fd)
        with contextlib.suppress(ChildProcessError):  # SIGCHLD ignored: reaped already
            os.waitpid(pid, 0)  # it has written everything: it is exiting
    except BaseException:  # Ctrl-C, or our half failed: its half is not wanted
        _kill(pid)
        raise
    if payload[:1] != b"\x01":
        return head, second()  # the child failed: recompute, so the error is raised here
    return head, msgspec.msgpack.decode(memoryview(payload)[1:], type=result_type)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _child(work: Callable[[], Any], read_fd: int, write_fd: int, parent: int, prctl) -> None:
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        os.close(read_fd)
        _close_inherited(keep=write_fd)
        try:
            payload = b"\x01" + msgspec.msgpack.encode(work())
        except BaseException:  # reported by recomputing in the parent
            payload = b"\x00"
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view) :]
        code = 0
    finally:
        os._exit(code)  # no atexit handlers, no flush of buffers the parent owns


def _close_inherited(keep: int) -> None:
    """Close every descriptor but ``keep``; standard streams become /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every possible number
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        return
    for fd in open_fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):  # the listing's own, already closed
                os.close(fd)
