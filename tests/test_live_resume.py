"""What the live sources share: nothing fetched is lost across crashes, Ctrl-C and torn
writes; specs that are not accounts nor files are refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from conftest import run_cli
from fakes import (
    Fault,
    live_env,  # noqa: F401 (autouse fixture)
    posts_in,
)
from fakes.bluesky import FakeBluesky
from fakes.mastodon import FakeMastodon
from fakes.x_api import FakeX

TOKEN = "x-test-token-resume"


class Platform:
    """One fake service with an account of 55 posts (six pages of ten)."""

    def __init__(self, name: str):
        self.name = name
        if name == "x":
            self.server, self.spec, self.handle = FakeX(TOKEN), "x:romeo", "romeo"
            self.server.add_user("romeo", 55)
            self.pages, self.cursor = "/tweets", "pagination_token"
            self.options = ["--x-api-url", self.server.url]
        elif name == "bsky":
            self.server, self.spec, self.handle = FakeBluesky(), "bsky:juliet.test", "juliet.test"
            self.server.add_account("juliet.test", 55)
            self.pages, self.cursor = "getAuthorFeed", "cursor"
            self.options = ["--bsky-service", self.server.url]
        else:
            self.server = FakeMastodon("social.example")
            self.spec, self.handle = "@mercutio@social.example", "mercutio@social.example"
            self.server.add_account("mercutio", 55)
            self.pages, self.cursor = "/statuses", "max_id"
            self.options = ["--mastodon-url", self.server.url]

    def add(self, count: int) -> None:
        if self.name == "x":
            self.server.add_posts("romeo", count)
        elif self.name == "bsky":
            self.server.add_posts("juliet.test", count)
        else:
            self.server.add_statuses("mercutio", count)

    def ids(self) -> list[str]:
        if self.name == "x":
            return self.server.all_ids("romeo")
        if self.name == "bsky":
            feed = self.server.feeds[self.server.did("juliet.test")]
            return [(i.get("reason") or i["post"])["uri"].rsplit("/", 1)[-1] for i in feed]
        return [s["id"] for s in self.server.statuses["100"]]

    def page_requests(self):
        return self.server.seen(self.pages)

    def argv(self, out, *extra) -> list[str]:
        return ["collect", self.spec, "--out", str(out), *self.options, *extra]


@pytest.fixture(params=["x", "bsky", "mastodon"])
def platform(request, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform(request.param)
    with platform.server:
        yield platform


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
    run_cli(*platform.argv(tmp_path))
    resumed = platform.page_requests()[before:]
    assert resumed[0].query[platform.cursor] == fourth  # not from the newest page again
    ids = [p["id"] for p in posts_in(tmp_path, platform.handle)]
    assert ids == platform.ids()  # all, once each, newest first


def test_ctrl_c_stops_cleanly_and_the_same_command_continues(platform, tmp_path):
    stopped = run_killed_at_page(platform, tmp_path, page=3, sig=signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    assert "Interrupted" in stopped.stderr and "run the command again" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert len(posts_in(tmp_path, platform.handle)) == 20
    run_cli(*platform.argv(tmp_path))
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


@pytest.mark.parametrize("body", [b"{}", b'"oops"', b"[]"])
def test_an_answer_of_another_shape_is_retried_not_taken_for_the_end(platform, tmp_path, body):
    """Valid JSON that is not a page (a proxy's reply, an API change) must not end the
    collection early, as an empty last page would, nor crash it."""
    if platform.name == "mastodon" and body == b"[]":
        pytest.skip("an empty list is how Mastodon documents the end of a timeline")
    platform.server.fail(platform.pages, None, Fault(200, {}, body), Fault(200, {}, body))
    result = run_cli(*platform.argv(tmp_path))
    assert "malformed answer" in result.stderr
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_a_rate_limit_reset_already_past_backs_off_instead_of_hammering(
    platform, tmp_path, monkeypatch
):
    """A reset time in the past (the machine's clock runs ahead) is no reason to retry at
    once: each wait is at least the back-off delay, which doubles."""
    past = {"Retry-After": "0", "x-rate-limit-reset": "1000000000", "ratelimit-reset": "0"}
    platform.server.fail(platform.pages, *[Fault(429, past)] * 3)
    monkeypatch.setenv("HUGGINGTWEETS_BACKOFF_BASE", "0.1")
    run_cli(*platform.argv(tmp_path))
    page_requests = platform.page_requests()
    first, second, third, fourth = (r.at for r in page_requests[:4])
    assert second - first >= 0.1 and third - second >= 0.2 and fourth - third >= 0.4
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_a_torn_last_line_is_cut_off_and_fetched_again(platform, tmp_path):
    """A crash in mid-write of page three: four of its records made it to the disk, and
    half of the fifth; the state still points at page three."""
    run_cli(*platform.argv(tmp_path / "whole"))
    whole = (tmp_path / "whole" / "posts" / f"{platform.handle}.jsonl").read_bytes()
    page_three = whole.splitlines(keepends=True)[20:25]

    platform.server.fail(platform.pages, None, None, Fault(503))
    run_cli(*platform.argv(tmp_path, "--retries", "0"), expect=2)
    path = tmp_path / "posts" / f"{platform.handle}.jsonl"
    assert len(path.read_bytes().splitlines()) == 20
    with open(path, "ab") as torn:
        torn.write(b"".join(page_three[:4]) + page_three[4][: len(page_three[4]) // 2])

    result = run_cli(*platform.argv(tmp_path))
    assert "cut off a last line left incomplete" in result.stderr
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_an_interrupted_update_resumes(platform, tmp_path):
    run_cli(*platform.argv(tmp_path))
    platform.add(25)
    platform.server.fail(platform.pages, None, Fault(503))
    run_cli(*platform.argv(tmp_path, "--update", "--retries", "0"), expect=2)
    state = json.loads((tmp_path / "posts" / f"{platform.handle}.state.json").read_text())
    assert state["update"]["cursor"] is not None
    run_cli(*platform.argv(tmp_path))  # the same command, even without --update
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
    result = run_cli("collect", spec, "--out", tmp_path, expect=2)
    assert words in result.stderr
    assert result.stderr.count("\n") == 1
    if "is neither" in words:
        for form in ("x:HANDLE", "bsky:HANDLE", "mastodon:@USER@INSTANCE", "X export"):
            assert form in result.stderr
    assert not tmp_path.joinpath("posts").exists()


def test_a_handle_taken_over_by_another_account_is_not_mixed_in(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN) as fake:
        fake.add_user("romeo", 12)
        run_cli("collect", "x:romeo", "--out", tmp_path, "--x-api-url", fake.url)
        fake.users["romeo"]["id"] = "4242"  # the handle now belongs to someone else
        fake.timelines["4242"] = fake.timelines.pop("1000")
        result = run_cli(
            "collect", "x:romeo", "--update", "--out", tmp_path, "--x-api-url", fake.url, expect=2
        )
    assert "holds posts of another account (id 1000)" in result.stderr
    assert len(posts_in(tmp_path, "romeo")) == 12


def test_an_export_then_update_fetches_only_newer_posts(tmp_path, monkeypatch):
    """Posts already there from the same platform (say, an export) are kept: --update
    adds what is newer, without duplicates."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN) as fake:
        fake.add_user("romeo", 20)
        run_cli("collect", "x:romeo", "--out", tmp_path / "api", "--x-api-url", fake.url)
        posts = tmp_path / "export" / "posts"
        posts.mkdir(parents=True)
        (posts / "romeo.jsonl").write_bytes((tmp_path / "api/posts/romeo.jsonl").read_bytes())
        fake.add_posts("romeo", 5)
        before = len(fake.seen("/tweets"))
        run_cli(
            "collect", "x:romeo", "--update", "--out", tmp_path / "export", "--x-api-url", fake.url
        )
        assert len(fake.seen("/tweets")) == before + 1
        ids = [p["id"] for p in posts_in(tmp_path / "export", "romeo")]
        assert sorted(ids) == sorted(fake.all_ids("romeo")) and len(set(ids)) == 25


def test_a_file_does_not_replace_posts_fetched_from_a_live_account(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN) as fake:
        fake.add_user("romeo", 12)
        run_cli("collect", "x:romeo", "--out", tmp_path, "--x-api-url", fake.url)
    fetched = (tmp_path / "posts/romeo.jsonl").read_bytes()
    other = tmp_path / "other.txt"
    other.write_text("a post written somewhere else entirely\n")
    result = run_cli("collect", other, "--handle", "romeo", "--out", tmp_path, expect=2)
    assert "holds posts fetched from a live account" in result.stderr
    assert (tmp_path / "posts/romeo.jsonl").read_bytes() == fetched
