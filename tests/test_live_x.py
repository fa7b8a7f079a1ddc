"""X API v2 accounts: the real CLI and tweepy against a fake X API on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import time

import pytest
from conftest import run_cli
from fakes import (
    Fault,
    dropped,
    live_env,  # noqa: F401 (autouse fixture)
    malformed,
    posts_in,
    rate_limited,
    server_error,
    slow,
    stats_add_up,
)
from fakes.x_api import FakeX

TOKEN = "x-test-token-5f3a9c"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN, page_size=10) as server:
        server.add_user("romeo", 45)
        yield server


def collect(fake, out, *args, expect=0, source="x:romeo"):
    return run_cli("collect", source, "--out", out, "--x-api-url", fake.url, *args, expect=expect)


def tweet_requests(fake):
    return fake.seen("/tweets")


def test_collects_every_page_with_flags_and_profile(fake, tmp_path):
    result = collect(fake, tmp_path)
    assert "@romeo: 45 posts" in result.stdout
    posts = posts_in(tmp_path, "romeo")
    assert [p["id"] for p in posts] == fake.all_ids("romeo")  # newest first, all, once
    by_id = {p["id"]: p for p in posts}
    for source in fake.timelines["1000"]:
        post = by_id[source["id"]]
        kinds = {r["type"] for r in source.get("referenced_tweets", ())}
        assert post["is_repost"] == ("retweeted" in kinds)
        assert post["is_reply"] == ("replied_to" in kinds)
        assert post["is_quote"] == ("quoted" in kinds)
        if "note_tweet" in source:  # a long post: its whole text, not the truncated one
            assert post["text"] == source["note_tweet"]["text"]
            assert "…" not in post["text"]
        assert post["url"] == f"https://x.com/romeo/status/{source['id']}"
        assert post["created_at"] == source["created_at"][:19] + "Z"
        assert (post["platform"], post["author"], post["visibility"]) == ("x", "romeo", "public")
    assert sum(p["is_repost"] for p in posts) == 5
    account = json.loads((tmp_path / "posts" / "romeo.account.json").read_text())
    assert account["display_name"] == "Romeo Example"
    assert account["avatar_url"].endswith("/romeo_400x400.jpg")
    # Five pages of ten, each asked for with the previous page's next_token.
    requests = tweet_requests(fake)
    assert len(requests) == 5
    assert "pagination_token" not in requests[0].query
    assert all(r.query["pagination_token"].startswith("next-") for r in requests[1:])
    fields = requests[0].query["tweet.fields"].split(",")
    assert {"note_tweet", "referenced_tweets", "created_at"} <= set(fields)
    state = json.loads((tmp_path / "posts" / "romeo.state.json").read_text())
    assert state["backfill"] == {"cursor": None, "done": True}


@pytest.mark.parametrize("spec", ["@romeo", "https://x.com/romeo", "https://twitter.com/Romeo/"])
def test_other_spellings(fake, tmp_path, spec):
    collect(fake, tmp_path, source=spec)
    assert len(posts_in(tmp_path, "romeo")) == 45


def test_twitter_bearer_token_is_read_too(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("X_BEARER_TOKEN")
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)
    collect(fake, tmp_path)
    assert len(posts_in(tmp_path, "romeo")) == 45


def test_missing_token_names_the_variable(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("X_BEARER_TOKEN")
    result = collect(fake, tmp_path, expect=2)
    assert "set X_BEARER_TOKEN (or TWITTER_BEARER_TOKEN)" in result.stderr
    assert fake.requests == []
    assert not (tmp_path / "posts").exists()


def test_refused_token_fails_at_once(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "wrong-token")
    result = collect(fake, tmp_path, expect=2)
    assert "refused the bearer token (401 Unauthorized)" in result.stderr
    assert "X_BEARER_TOKEN" in result.stderr
    assert len(fake.requests) == 1  # a permanent error is not retried
    assert "Traceback" not in result.output


def test_a_token_read_with_its_line_break_still_works(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", f"  {TOKEN}\n")  # as `$(cat token.txt)` may give it
    collect(fake, tmp_path)
    assert len(posts_in(tmp_path, "romeo")) == 45


def test_a_token_with_a_line_break_inside_fails_at_once_without_showing_it(
    fake, tmp_path, monkeypatch
):
    monkeypatch.setenv("X_BEARER_TOKEN", "secret-part-one\nsecret-part-two")
    result = collect(fake, tmp_path, expect=2)
    assert "holds characters a request cannot carry" in result.stderr
    assert "secret-part" not in result.output
    assert fake.requests == []  # not retried as if the network had failed
    assert result.stderr.count("\n") == 1


def test_unknown_suspended_and_protected_accounts(fake, tmp_path):
    result = collect(fake, tmp_path, source="x:nobody", expect=2)
    assert "no X account @nobody; check the spelling" in result.stderr
    fake.add_user("tybalt", 5)
    fake.suspended.add("tybalt")
    result = collect(fake, tmp_path, source="@tybalt", expect=2)
    assert "@tybalt is suspended on X" in result.stderr
    fake.add_user("rosaline", 5, protected=True)
    result = collect(fake, tmp_path, source="x:rosaline", expect=2)
    assert "protected X account" in result.stderr
    assert tweet_requests(fake) == []  # no posts were asked for
    assert not (tmp_path / "posts").exists()


@pytest.mark.parametrize(
    ("status", "words"),
    [(404, "has no @romeo (404 Not Found)"), (403, "forbade the request (403")],
)
def test_permanent_errors_fail_at_once(fake, tmp_path, status, words):
    fake.fail("/tweets", None, Fault(status, {}, b'{"title": "x", "detail": "no access"}'))
    result = collect(fake, tmp_path, expect=2)
    assert words in result.stderr
    assert len(tweet_requests(fake)) == 2  # page 1, then page 2 once: no retries
    assert len(posts_in(tmp_path, "romeo")) == 10  # the first page is kept


def test_rate_limit_waits_for_the_reset_with_a_countdown(fake, tmp_path):
    fake.fail("/tweets", None, rate_limited("x-rate-limit-reset", 0))
    started = time.monotonic()
    result = collect(fake, tmp_path)
    assert time.monotonic() - started >= 1.0
    assert "rate limited by the X API (429): waiting" in result.stderr
    assert "until" in result.stderr
    assert len(posts_in(tmp_path, "romeo")) == 45
    requests = tweet_requests(fake)
    assert requests[1].query == requests[2].query  # the limited page, asked for again


def test_no_wait_stops_resumably_and_the_same_command_continues(fake, tmp_path):
    fake.fail("/tweets", None, None, rate_limited("x-rate-limit-reset", 600))
    result = collect(fake, tmp_path, "--no-wait", expect=2)
    assert "rate limited by the X API (429); stopped (--no-wait)" in result.stderr
    assert "run the same command again to continue" in result.stderr
    assert "20 posts fetched so far are saved" in result.stderr
    assert len(posts_in(tmp_path, "romeo")) == 20
    limited = tweet_requests(fake)[-1].query["pagination_token"]

    before = len(tweet_requests(fake))
    collect(fake, tmp_path, "--no-wait")
    resumed = tweet_requests(fake)[before:]
    assert resumed[0].query["pagination_token"] == limited  # not from the newest again
    assert len(resumed) == 3
    assert [p["id"] for p in posts_in(tmp_path, "romeo")] == fake.all_ids("romeo")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (server_error(503), "the X API failed (503)"),
        (server_error(500), "the X API failed (500)"),
        (malformed(), "sent a malformed answer (not JSON)"),
        (dropped(), "cannot reach the X API"),
        (slow(1.5), "did not answer within 0.4s"),
    ],
    ids=["503", "500", "malformed-json", "dropped-connection", "slower-than-timeout"],
)
def test_transient_faults_are_retried(fake, tmp_path, fault, message):
    fake.fail("/tweets", None, fault)
    result = collect(fake, tmp_path, "--timeout", "0.4")
    assert message in result.stderr
    assert "retry 1 of 5" in result.stderr
    requests = tweet_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, "romeo")] == fake.all_ids("romeo")


def test_retries_are_bounded_and_what_was_fetched_is_kept(fake, tmp_path):
    fake.fail("/tweets", None, *[server_error(502)] * 10)
    result = collect(fake, tmp_path, "--retries", "2", expect=2)
    assert "gave up after 3 tries" in result.stderr
    assert "run the same command again to continue" in result.stderr
    assert len(tweet_requests(fake)) == 1 + 3
    assert len(posts_in(tmp_path, "romeo")) == 10


def test_update_fetches_only_newer_posts(fake, tmp_path):
    collect(fake, tmp_path)
    newest = fake.all_ids("romeo")[0]
    fake.add_posts("romeo", 4)
    before = len(tweet_requests(fake))
    result = collect(fake, tmp_path, "--update")
    update = tweet_requests(fake)[before:]
    assert len(update) == 1
    assert update[0].query["since_id"] == newest
    assert "4 new posts" in result.stderr
    ids = [p["id"] for p in posts_in(tmp_path, "romeo")]
    assert sorted(ids) == sorted(fake.all_ids("romeo")) and len(set(ids)) == 49

    # Nothing new: one request, nothing written; without --update: no request at all.
    before = len(tweet_requests(fake))
    collect(fake, tmp_path, "--update")
    assert len(tweet_requests(fake)) == before + 1
    result = collect(fake, tmp_path)
    assert len(tweet_requests(fake)) == before + 1
    assert "already collected; --update fetches newer posts" in result.stderr
    assert len(posts_in(tmp_path, "romeo")) == 49


def test_update_over_many_pages(fake, tmp_path):
    collect(fake, tmp_path)
    fake.add_posts("romeo", 25)
    before = len(tweet_requests(fake))
    collect(fake, tmp_path, "--update")
    update = tweet_requests(fake)[before:]
    assert len(update) == 3 and all("since_id" in r.query for r in update)
    ids = [p["id"] for p in posts_in(tmp_path, "romeo")]
    assert sorted(ids) == sorted(fake.all_ids("romeo")) and len(set(ids)) == 70


def test_token_is_never_printed_logged_or_written(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # tweepy logs request headers at DEBUG
    fake.add_posts("romeo", 40)  # enough text for prepare
    fake.fail("/tweets", None, server_error(500), rate_limited("x-rate-limit-reset", 0))
    ok = collect(fake, tmp_path / "ok")
    prepared = run_cli("prepare", "--out", tmp_path / "ok")
    fake.token = "another-token"
    refused = collect(fake, tmp_path / "refused", expect=2)
    assert any("Making API request" in r.getMessage() for r in caplog.records)
    for text in (ok.output, prepared.output, refused.output, caplog.text):
        assert TOKEN not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_prepare_statistics_add_up(fake, tmp_path):
    fake.add_posts("romeo", 60)
    run_cli("prepare", "x:romeo", "--out", tmp_path, "--x-api-url", fake.url)
    account = stats_add_up(tmp_path)
    assert account["downloaded"] == 105
    assert account["retweets"] == sum(p["is_repost"] for p in posts_in(tmp_path, "romeo"))
    assert account["short"] >= 10  # the "so true" posts
    assert account["platform"] == "x" and account["kept"] > 50


@pytest.mark.parametrize("handle", ["montague", "@montague"])
def test_handle_option_names_the_files_and_the_author(fake, tmp_path, handle):
    collect(fake, tmp_path, "--handle", handle)
    posts = posts_in(tmp_path, "montague")
    assert len(posts) == 45 and {p["author"] for p in posts} == {"montague"}
    account = json.loads((tmp_path / "posts" / "montague.account.json").read_text())
    assert account["handle"] == "montague"
    assert posts[0]["url"].startswith("https://x.com/romeo/status/")  # the real address


def test_python_api_reads_from_the_service_in_the_environment(fake, tmp_path, monkeypatch):
    from huggingtweets import LiveOptions, read_source
    from huggingtweets import collect as collect_api

    monkeypatch.setenv("HUGGINGTWEETS_X_API_URL", fake.url)
    collected = read_source("x:romeo")
    assert len(collected.posts) == 45 and collected.account.handle == "romeo"
    fake.add_posts("romeo", 2)
    (first,) = collect_api("@romeo", tmp_path)
    assert len(first.posts) == 47
    fake.add_posts("romeo", 3)
    before = len(tweet_requests(fake))
    (updated,) = collect_api("x:romeo", tmp_path, live=LiveOptions(update=True))
    assert len(updated.posts) == 50 and len(tweet_requests(fake)) == before + 1
