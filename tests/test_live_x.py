"""X API v2 accounts: the X source and tweepy against a fake X API on 127.0.0.1, through the
library (``resolve(...).collect(run, reporter)``), its progress read from its events."""

from __future__ import annotations

import json
import logging
import time

import pytest
from fakes import (
    Fault,
    collect_live,
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

from huggingtweets.collect.live.x_api import XApiOptions

TOKEN = "x-test-token-5f3a9c"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN, page_size=10) as server:
        server.add_user("romeo", 45)
        yield server


def collect(fake, out, *, source="x:romeo", **kwargs):
    return collect_live(source, out, XApiOptions(x_api_url=fake.url), **kwargs)


def tweet_requests(fake):
    return fake.seen("/tweets")


def test_collects_every_page_with_flags_and_profile(fake, tmp_path):
    result = collect(fake, tmp_path)
    posts = posts_in(tmp_path, "romeo")
    assert [p["id"] for p in posts] == fake.all_ids("romeo")  # newest first, all, once
    assert len(result.collected.posts) == 45
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


def test_progress_is_told_as_events_of_the_collect_stage(fake, tmp_path):
    result = collect(fake, tmp_path)
    assert {e.stage for e in result.events} == {"collect"}
    assert all(e.data["account"] == "romeo" for e in result.events)
    (start,) = result.of("start")
    assert start.total == 45 and start.message == "@romeo (the X API)"
    # Posts so far of the profile's count: before the first page, after each, at the end.
    assert [(e.step, e.total) for e in result.of("progress")] == [
        (0, 45),
        (10, 45),
        (20, 45),
        (30, 45),
        (40, 45),
        (45, 45),
        (45, 45),
    ]
    (end,) = result.of("end")
    assert end.message == "@romeo: 45 new posts fetched from the X API"
    assert (end.data["fetched"], end.data["posts"]) == (45, 45)
    assert result.events[0] is start and result.events[-1] is end
    assert not result.of("warning")


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
    result = collect(fake, tmp_path, fails=True)
    assert "set X_BEARER_TOKEN (or TWITTER_BEARER_TOKEN)" in result.error
    assert fake.requests == []
    assert not (tmp_path / "posts").exists()


def test_refused_token_fails_at_once(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "wrong-token")
    result = collect(fake, tmp_path, fails=True)
    assert "refused the bearer token (401 Unauthorized)" in result.error
    assert "X_BEARER_TOKEN" in result.error
    assert len(fake.requests) == 1  # a permanent error is not retried


def test_a_token_read_with_its_line_break_still_works(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", f"  {TOKEN}\n")  # as `$(cat token.txt)` may give it
    collect(fake, tmp_path)
    assert len(posts_in(tmp_path, "romeo")) == 45


def test_a_token_with_a_line_break_inside_fails_at_once_without_showing_it(
    fake, tmp_path, monkeypatch
):
    monkeypatch.setenv("X_BEARER_TOKEN", "secret-part-one\nsecret-part-two")
    result = collect(fake, tmp_path, fails=True)
    assert "holds characters a request cannot carry" in result.error
    assert "secret-part" not in result.everything()
    assert fake.requests == []  # not retried as if the network had failed


def test_unknown_suspended_and_protected_accounts(fake, tmp_path):
    result = collect(fake, tmp_path, source="x:nobody", fails=True)
    assert result.error == "no X account @nobody; check the spelling of the handle"
    fake.add_user("tybalt", 5)
    fake.suspended.add("tybalt")
    result = collect(fake, tmp_path, source="@tybalt", fails=True)
    assert result.error == "@tybalt is suspended on X; its posts cannot be collected"
    fake.add_user("rosaline", 5, protected=True)
    result = collect(fake, tmp_path, source="x:rosaline", fails=True)
    assert "protected X account" in result.error
    assert tweet_requests(fake) == []  # no posts were asked for
    assert not (tmp_path / "posts").exists()


@pytest.mark.parametrize(
    ("status", "words"),
    [(404, "has no @romeo (404 Not Found)"), (403, "forbade the request (403: no access)")],
)
def test_permanent_errors_fail_at_once(fake, tmp_path, status, words):
    fake.fail("/tweets", None, Fault(status, {}, b'{"title": "x", "detail": "no access"}'))
    result = collect(fake, tmp_path, fails=True)
    assert words in result.error
    assert len(tweet_requests(fake)) == 2  # page 1, then page 2 once: no retries
    assert len(posts_in(tmp_path, "romeo")) == 10  # the first page is kept


def test_rate_limit_waits_for_the_reset_with_a_countdown(fake, tmp_path):
    fake.fail("/tweets", None, rate_limited("x-rate-limit-reset", 0))
    started = time.monotonic()
    result = collect(fake, tmp_path)
    assert time.monotonic() - started >= 1.0
    (warning,) = result.of("warning")
    assert warning.message.startswith("rate limited by the X API (429): waiting ")
    assert " UTC" in warning.message and "(until " in warning.message
    countdown = [e for e in result.of("progress") if "waiting" in e.data]
    assert countdown and all(0 < e.data["waiting"] <= 2.01 for e in countdown)
    assert countdown[0].message.startswith("waiting for the rate limit: ")
    assert countdown[0].step == 10  # the posts so far, unchanged while waiting
    assert len(posts_in(tmp_path, "romeo")) == 45
    requests = tweet_requests(fake)
    assert requests[1].query == requests[2].query  # the limited page, asked for again


def test_no_wait_stops_resumably_and_the_same_command_continues(fake, tmp_path):
    fake.fail("/tweets", None, None, rate_limited("x-rate-limit-reset", 600))
    result = collect(fake, tmp_path, wait=False, fails=True)
    assert "rate limited by the X API (429); stopped (--no-wait)" in result.error
    assert "run the same command again to continue" in result.error
    assert "20 posts fetched so far are saved" in result.error
    assert len(posts_in(tmp_path, "romeo")) == 20
    limited = tweet_requests(fake)[-1].query["pagination_token"]

    before = len(tweet_requests(fake))
    collect(fake, tmp_path, wait=False)
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
    result = collect(fake, tmp_path, timeout=0.4)
    (warning,) = result.of("warning")
    assert message in warning.message
    assert warning.message.endswith("(fetching posts); retry 1 of 5 in 0.0s")
    requests = tweet_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, "romeo")] == fake.all_ids("romeo")


def test_retries_are_bounded_and_what_was_fetched_is_kept(fake, tmp_path):
    fake.fail("/tweets", None, *[server_error(502)] * 10)
    result = collect(fake, tmp_path, retries=2, fails=True)
    assert "gave up after 3 tries" in result.error
    assert "run the same command again to continue" in result.error
    assert len(result.of("warning")) == 2
    assert len(tweet_requests(fake)) == 1 + 3
    assert len(posts_in(tmp_path, "romeo")) == 10


def test_update_fetches_only_newer_posts(fake, tmp_path):
    collect(fake, tmp_path)
    newest = fake.all_ids("romeo")[0]
    fake.add_posts("romeo", 4)
    before = len(tweet_requests(fake))
    result = collect(fake, tmp_path, update=True)
    update = tweet_requests(fake)[before:]
    assert len(update) == 1
    assert update[0].query["since_id"] == newest
    assert result.of("end")[0].message == "@romeo: 4 new posts fetched from the X API"
    assert result.of("start")[0].total is None  # no total to count an update against
    ids = [p["id"] for p in posts_in(tmp_path, "romeo")]
    assert sorted(ids) == sorted(fake.all_ids("romeo")) and len(set(ids)) == 49

    # Nothing new: one request, nothing written; without update: no request at all.
    before = len(tweet_requests(fake))
    collect(fake, tmp_path, update=True)
    assert len(tweet_requests(fake)) == before + 1
    result = collect(fake, tmp_path)
    assert len(tweet_requests(fake)) == before + 1
    (info,) = result.of("info")
    assert info.message == "@romeo: already collected; --update fetches newer posts"
    assert result.of("end")[0].data["fetched"] == 0
    assert len(posts_in(tmp_path, "romeo")) == 49


def test_update_over_many_pages(fake, tmp_path):
    collect(fake, tmp_path)
    fake.add_posts("romeo", 25)
    before = len(tweet_requests(fake))
    collect(fake, tmp_path, update=True)
    update = tweet_requests(fake)[before:]
    assert len(update) == 3 and all("since_id" in r.query for r in update)
    ids = [p["id"] for p in posts_in(tmp_path, "romeo")]
    assert sorted(ids) == sorted(fake.all_ids("romeo")) and len(set(ids)) == 70


def test_token_is_never_in_events_logs_errors_or_files(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # tweepy logs request headers at DEBUG
    fake.fail("/tweets", None, server_error(500), rate_limited("x-rate-limit-reset", 0))
    ok = collect(fake, tmp_path / "ok")
    fake.token = "another-token"
    refused = collect(fake, tmp_path / "refused", fails=True)
    assert any("Making API request" in r.getMessage() for r in caplog.records)
    for text in (ok.everything(), refused.everything(), caplog.text):
        assert TOKEN not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 3  # posts, account, state
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_prepare_statistics_are_exactly_those_of_the_fake(fake, tmp_path):
    from huggingtweets.prepare.dataset import prepare

    fake.add_posts("romeo", 60)
    collect(fake, tmp_path)
    prepare(tmp_path)
    account = stats_add_up(tmp_path)
    # The fake's posts come in turn: a retweet, a reply, a quote, a long post and a
    # "so true" (too short) among every ten; nothing else is dropped.
    timeline = fake.timelines["1000"]
    retweets = sum(p["text"].startswith("RT @") for p in timeline)
    short = sum(p["text"] == "so true" for p in timeline)
    assert (retweets, short) == (11, 10)
    assert account["platform"] == "x"
    assert account["downloaded"] == 105
    assert account["retweets"] == retweets
    assert account["short"] == short
    assert account["kept"] == 105 - retweets - short


@pytest.mark.parametrize("handle", ["montague", "@montague"])
def test_handle_option_names_the_files_and_the_author(fake, tmp_path, handle):
    result = collect(fake, tmp_path, handle=handle)
    posts = posts_in(tmp_path, "montague")
    assert len(posts) == 45 and {p["author"] for p in posts} == {"montague"}
    account = json.loads((tmp_path / "posts" / "montague.account.json").read_text())
    assert account["handle"] == "montague"
    assert posts[0]["url"].startswith("https://x.com/romeo/status/")  # the real address
    assert {e.data["account"] for e in result.events} == {"montague"}


def test_python_api_reads_from_the_service_in_the_environment(fake, tmp_path, monkeypatch):
    from huggingtweets import read_source

    monkeypatch.setenv("HUGGINGTWEETS_X_API_URL", fake.url)
    collected = read_source("x:romeo")
    assert len(collected.posts) == 45 and collected.account.handle == "romeo"
    fake.add_posts("romeo", 2)
    first = collect_live("@romeo", tmp_path)  # no XApiOptions: the environment's URL
    assert len(first.collected.posts) == 47
    fake.add_posts("romeo", 3)
    before = len(tweet_requests(fake))
    updated = collect_live("x:romeo", tmp_path, update=True)
    assert len(updated.collected.posts) == 50 and len(tweet_requests(fake)) == before + 1
    # The option wins over the environment.
    monkeypatch.setenv("HUGGINGTWEETS_X_API_URL", "http://127.0.0.1:9")
    assert len(collect(fake, tmp_path / "again").collected.posts) == 50
