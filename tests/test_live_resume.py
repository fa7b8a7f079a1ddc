"""What the live sources share: nothing fetched is lost across crashes, Ctrl-C, a cancelled
reporter and torn writes; a re-run resumes to the exact full count; specs that are not
accounts nor files are refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import run_cli
from fakes import (
    Fault,
    cancel_after_posts,
    collect_live,
    live_env,  # noqa: F401 (autouse fixture)
    posts_in,
    rate_limited,
    server_error,
)
from fakes.platforms import TOKEN, Platform, platform_fixture  # noqa: F401 (fixture)
from fakes.x_api import FakeX

from huggingtweets.collect.live.x_api import XApiOptions
from huggingtweets.collect.registry import resolve
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter


def run_killed_at_page(platform: Platform, out, page: int, sig: int) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess; when it asks for page ``page``, send it ``sig``."""
    started = threading.Event()
    holder: dict = {}

    def kill() -> None:
        started.wait(10)
        holder["proc"].send_signal(sig)
        holder["proc"].wait(10)

    platform.server.fail(platform.pages, *[None] * (page - 1), Fault(call=kill))
    proc = subprocess.Popen(
        [sys.executable, "-m", "huggingtweets", *platform.argv(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    holder["proc"] = proc
    started.set()
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_killed_after_the_third_page_the_same_command_finishes_the_job(platform, tmp_path):
    killed = run_killed_at_page(platform, tmp_path, page=4, sig=signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert len(posts_in(tmp_path, platform.handle)) == 30  # three pages, all kept
    state = json.loads((tmp_path / "posts" / f"{platform.handle}.state.json").read_text())
    fourth = platform.page_requests()[3].query[platform.cursor]
    assert state["backfill"] == {"cursor": fourth, "done": False}

    before = len(platform.page_requests())
    result = platform.collect(tmp_path)
    resumed = platform.page_requests()[before:]
    assert resumed[0].query[platform.cursor] == fourth  # not from the newest page again
    assert result.of("end")[0].data == {"account": platform.handle, "fetched": 25, "posts": 55}
    ids = [p["id"] for p in posts_in(tmp_path, platform.handle)]
    assert ids == platform.ids()  # all, once each, newest first


def test_ctrl_c_stops_cleanly_and_the_same_command_continues(platform, tmp_path):
    stopped = run_killed_at_page(platform, tmp_path, page=3, sig=signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert len(posts_in(tmp_path, platform.handle)) == 20
    platform.collect(tmp_path)
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_a_cancelled_reporter_stops_between_pages_and_a_rerun_resumes(platform, tmp_path):
    """A web app's "stop": the reporter is cancelled (here by a listener, once two pages
    are in); no further page is asked for, the two are kept, and the same collection run
    again continues from the third page to exactly every post."""
    result = platform.collect(tmp_path, listener=cancel_after_posts(20))
    assert result.cancelled and not result.of("end")
    assert len(platform.page_requests()) == 2
    assert len(posts_in(tmp_path, platform.handle)) == 20
    third = json.loads((tmp_path / "posts" / f"{platform.handle}.state.json").read_text())
    assert third["backfill"]["cursor"] is not None

    before = len(platform.page_requests())
    result = platform.collect(tmp_path)
    assert platform.page_requests()[before].query[platform.cursor] == third["backfill"]["cursor"]
    assert result.of("end")[0].data["fetched"] == 35
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()
    assert len(platform.ids()) == 55


SLOW_S = 5  # how long the fake server takes to answer the slow request


def _cancel_on(words: str):
    """A listener that cancels when an event says ``words``; returns it and when."""
    when: dict[str, float] = {}

    def listener(event, reporter) -> None:
        if words in event.message and "at" not in when:
            when["at"] = time.monotonic()
            reporter.cancel()

    return listener, when


@pytest.mark.parametrize(
    ("fault", "words", "options"),
    [
        (rate_limited("retry-after", 600), "waiting", {}),
        (server_error(503), "retry 1 of", {"backoff_base": 60.0}),
    ],
    ids=["rate-limit-wait", "retry-back-off"],
)
def test_a_cancel_during_a_wait_stops_without_waiting_it_out(
    platform, tmp_path, fault, words, options
):
    """The waits are 600 s and 60 s; the cancel is looked at every SLICE (0.2 s). Stopping
    within 10 s shows the wait was cut short, with room for a loaded machine."""
    platform.server.fail(platform.pages, None, fault)
    listener, when = _cancel_on(words)
    result = platform.collect(tmp_path, listener=listener, **options)
    stopped = time.monotonic()
    assert result.cancelled
    assert stopped - when["at"] < 10
    assert len(posts_in(tmp_path, platform.handle)) == 10
    platform.collect(tmp_path)
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_a_cancel_during_a_slow_request_abandons_it(platform, tmp_path):
    """The request in flight is abandoned (it ends by its own time-out); its page will be
    asked for again. The server answers it 5 s after it came: the collection ending
    before that answer was sent shows it was not waited for (an order of events, with
    the 5 s as room for a loaded machine)."""
    answered = threading.Event()

    def answer(seen):
        answered.set()
        return platform.server.handle(seen)

    platform.server.fail(platform.pages, None, Fault(delay=SLOW_S, respond=answer))
    reporter = Reporter()

    def cancel_once_asked() -> None:
        while len(platform.page_requests()) < 2:
            time.sleep(0.01)
        time.sleep(0.2)
        reporter.cancel()

    threading.Thread(target=cancel_once_asked, daemon=True).start()
    result = platform.collect(tmp_path, reporter=reporter, timeout=10)
    assert result.cancelled
    assert not answered.is_set()
    assert len(posts_in(tmp_path, platform.handle)) == 10
    platform.collect(tmp_path)
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


@pytest.mark.parametrize("body", [b"{}", b'"oops"', b"[]"])
def test_an_answer_of_another_shape_is_retried_not_taken_for_the_end(platform, tmp_path, body):
    """Valid JSON that is not a page (a proxy's reply, an API change) must not end the
    collection early, as an empty last page would, nor crash it."""
    if platform.name == "mastodon" and body == b"[]":
        pytest.skip("an empty list is how Mastodon documents the end of a timeline")
    platform.server.fail(platform.pages, None, Fault(200, {}, body), Fault(200, {}, body))
    result = platform.collect(tmp_path)
    warnings = result.of("warning")
    assert len(warnings) == 2 and all("malformed answer" in w.message for w in warnings)
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_a_rate_limit_reset_already_past_backs_off_instead_of_hammering(
    platform, tmp_path, monkeypatch
):
    """A reset time in the past (the machine's clock runs ahead) is no reason to retry at
    once: each wait is at least the back-off delay, which doubles."""
    past = {"Retry-After": "0", "x-rate-limit-reset": "1000000000", "ratelimit-reset": "0"}
    platform.server.fail(platform.pages, *[Fault(429, past)] * 3)
    platform.collect(tmp_path, backoff_base=0.1)
    page_requests = platform.page_requests()
    first, second, third, fourth = (r.at for r in page_requests[:4])
    assert second - first >= 0.1 and third - second >= 0.2 and fourth - third >= 0.4
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_a_torn_last_line_is_cut_off_and_fetched_again(platform, tmp_path):
    """A crash in mid-write of page three: four of its records made it to the disk, and
    half of the fifth; the state still points at page three."""
    platform.collect(tmp_path / "whole")
    whole = (tmp_path / "whole" / "posts" / f"{platform.handle}.jsonl").read_bytes()
    page_three = whole.splitlines(keepends=True)[20:25]

    platform.server.fail(platform.pages, None, None, Fault(503))
    platform.collect(tmp_path, retries=0, fails=True)
    path = tmp_path / "posts" / f"{platform.handle}.jsonl"
    assert len(path.read_bytes().splitlines()) == 20
    torn = b"".join(page_three[:4]) + page_three[4][: len(page_three[4]) // 2]
    with open(path, "ab") as handle:
        handle.write(torn)

    result = platform.collect(tmp_path)
    (warning,) = result.of("warning")
    assert warning.message == (
        f"cut off a last line left incomplete by an interrupted run "
        f"({len(page_three[4]) // 2} bytes) in {path}"
    )
    assert result.of("end")[0].data["fetched"] == 55 - 24
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_an_interrupted_update_resumes(platform, tmp_path):
    platform.collect(tmp_path)
    platform.add(25)
    platform.server.fail(platform.pages, None, Fault(503))
    platform.collect(tmp_path, update=True, retries=0, fails=True)
    state = json.loads((tmp_path / "posts" / f"{platform.handle}.state.json").read_text())
    assert state["update"]["cursor"] is not None
    platform.collect(tmp_path)  # the same collection, even without update
    ids = [p["id"] for p in posts_in(tmp_path, platform.handle)]
    assert sorted(ids) == sorted(platform.ids()) and len(set(ids)) == 80
    assert (
        json.loads((tmp_path / "posts" / f"{platform.handle}.state.json").read_text())["update"]
        is None
    )


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("@na-me", "'@na-me' is neither a file here nor an account"),
        ("somebody", "'somebody' is neither a file here nor an account"),
        ("jay.bsky.team", "'jay.bsky.team' is neither"),  # needs bsky:
        ("@user@", "'@user@' is neither"),
        # Addresses that are not of an account: no "file not found" for them.
        ("https://x.com/romeo/status/123", "'https://x.com/romeo/status/123' is neither"),
        ("https://x.com/home", "'https://x.com/home' is neither"),
        ("https://example.com/foo", "'https://example.com/foo' is neither"),
        ("https://bsky.app/profile/", "'https://bsky.app/profile/' is neither"),
        ("data/missing.csv", "file not found: data/missing.csv"),
        ("x:not-a-handle", "an X handle is 1 to 15 letters, digits or '_'"),
        ("mastodon:someone", "expected mastodon:@USER@INSTANCE"),
        ("bsky:not a handle", "expected bsky:HANDLE"),
    ],
)
def test_what_is_not_an_account_nor_a_file_is_refused_in_one_line(tmp_path, spec, words):
    with pytest.raises(HuggingtweetsError) as error:
        resolve(spec)
    message = str(error.value)
    assert words in message
    assert "\n" not in message
    if "is neither" in words:
        for form in ("x:HANDLE", "bsky:HANDLE", "mastodon:@USER@INSTANCE", "X export"):
            assert form in message


def test_a_handle_taken_over_by_another_account_is_not_mixed_in(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN) as fake:
        fake.add_user("romeo", 12)
        options = XApiOptions(x_api_url=fake.url)
        collect_live("x:romeo", tmp_path, options)
        fake.users["romeo"]["id"] = "4242"  # the handle now belongs to someone else
        fake.timelines["4242"] = fake.timelines.pop("1000")
        result = collect_live("x:romeo", tmp_path, options, update=True, fails=True)
    assert "holds posts of another account (id 1000)" in result.error
    assert len(posts_in(tmp_path, "romeo")) == 12


def test_an_export_then_update_fetches_only_newer_posts(tmp_path, monkeypatch):
    """Posts already there from the same platform (say, an export) are kept: update adds
    what is newer, without duplicates."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN) as fake:
        fake.add_user("romeo", 20)
        options = XApiOptions(x_api_url=fake.url)
        collect_live("x:romeo", tmp_path / "api", options)
        posts = tmp_path / "export" / "posts"
        posts.mkdir(parents=True)
        (posts / "romeo.jsonl").write_bytes((tmp_path / "api/posts/romeo.jsonl").read_bytes())
        fake.add_posts("romeo", 5)
        before = len(fake.seen("/tweets"))
        result = collect_live("x:romeo", tmp_path / "export", options, update=True)
        assert len(fake.seen("/tweets")) == before + 1
        assert result.of("end")[0].data["fetched"] == 5
        ids = [p["id"] for p in posts_in(tmp_path / "export", "romeo")]
        assert sorted(ids) == sorted(fake.all_ids("romeo")) and len(set(ids)) == 25


def test_a_file_does_not_replace_posts_fetched_from_a_live_account(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN) as fake:
        fake.add_user("romeo", 12)
        collect_live("x:romeo", tmp_path, XApiOptions(x_api_url=fake.url))
    fetched = (tmp_path / "posts/romeo.jsonl").read_bytes()
    other = tmp_path / "other.txt"
    other.write_text("a post written somewhere else entirely\n")
    result = run_cli("collect", other, "--handle", "romeo", "--out", tmp_path, expect=2)
    assert "holds posts fetched from a live account" in result.stderr
    assert (tmp_path / "posts/romeo.jsonl").read_bytes() == fetched
