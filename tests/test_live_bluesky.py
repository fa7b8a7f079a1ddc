"""Bluesky accounts: the Bluesky source and the atproto SDK against a fake AppView on
127.0.0.1, through the library, its progress read from its events."""

from __future__ import annotations

import json
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
from fakes.bluesky import FakeBluesky

from huggingtweets.collect.live.bluesky import BlueskyOptions

HANDLE = "juliet.test"


@pytest.fixture
def fake():
    with FakeBluesky(page_size=10) as server:
        server.add_account(HANDLE, 36)
        yield server


def collect(fake, out, *, source=f"bsky:{HANDLE}", **kwargs):
    return collect_live(source, out, BlueskyOptions(bsky_service=fake.url), **kwargs)


def feed_requests(fake):
    return fake.seen("getAuthorFeed")


def feed_ids(fake) -> list[str]:
    """The ids the source should record: the post's key, or the repost record's key."""
    return [
        (item.get("reason") or item["post"])["uri"].rsplit("/", 1)[-1]
        for item in fake.feeds[fake.did(HANDLE)]
    ]


def test_collects_the_author_feed_with_flags_and_profile(fake, tmp_path):
    result = collect(fake, tmp_path)
    assert result.of("end")[0].message == f"@{HANDLE}: 36 new posts fetched from Bluesky"
    assert [e.step for e in result.of("progress")] == [0, 10, 20, 30, 36, 36]
    assert {e.total for e in result.of("progress")} == {36}
    assert {e.data["account"] for e in result.events} == {HANDLE}
    posts = posts_in(tmp_path, HANDLE)
    assert [p["id"] for p in posts] == feed_ids(fake)
    items = dict(zip(feed_ids(fake), fake.feeds[fake.did(HANDLE)], strict=True))
    for post in posts:
        item = items[post["id"]]
        record = item["post"]["record"]
        assert post["is_repost"] == ("reason" in item)
        assert post["is_reply"] == ("reply" in record)
        assert post["is_quote"] == ("embed" in record)
        assert post["text"] == record["text"]
        assert (post["platform"], post["author"], post["lang"]) == ("bsky", HANDLE, "en")
        rkey = item["post"]["uri"].rsplit("/", 1)[-1]
        author = item["post"]["author"]["handle"]
        assert post["url"] == f"https://bsky.app/profile/{author}/post/{rkey}"
        when = (item.get("reason") or record)["indexedAt" if "reason" in item else "createdAt"]
        assert post["created_at"] == when[:19] + "Z"
    assert sum(p["is_repost"] for p in posts) == 5
    account = json.loads((tmp_path / "posts" / f"{HANDLE}.account.json").read_text())
    assert account["display_name"] == "Juliet" and account["platform"] == "bsky"
    requests = feed_requests(fake)
    assert len(requests) == 4
    assert requests[0].query["actor"] == fake.did(HANDLE)
    assert "cursor" not in requests[0].query
    assert all("cursor" in r.query for r in requests[1:])


@pytest.mark.parametrize(
    "spec",
    [f"https://bsky.app/profile/{HANDLE}", "bsky:@juliet.test", "DID", "bsky:DID"],
)
def test_other_spellings_record_the_resolved_handle(fake, tmp_path, spec):
    spec = spec.replace("DID", fake.did(HANDLE))
    collect(fake, tmp_path, source=spec)
    assert len(posts_in(tmp_path, HANDLE)) == 36  # named by handle, not by DID
    assert {p["author"] for p in posts_in(tmp_path, HANDLE)} == {HANDLE}


def test_unknown_suspended_and_withheld_accounts(fake, tmp_path):
    result = collect(fake, tmp_path, source="bsky:nobody.test", fails=True)
    assert "no Bluesky account nobody.test; check the handle" in result.error
    fake.errors["tybalt.test"] = ("AccountTakedown", "Account has been suspended")
    result = collect(fake, tmp_path, source="bsky:tybalt.test", fails=True)
    assert "tybalt.test is suspended on Bluesky" in result.error
    fake.add_account("rosaline.test", 5, labels=("!no-unauthenticated",))
    result = collect(fake, tmp_path, source="bsky:rosaline.test", fails=True)
    assert "asks Bluesky not to show its posts to logged-out readers" in result.error
    assert feed_requests(fake) == []
    assert len(fake.requests) == 3  # one each: permanent errors are not retried


def test_an_appview_that_wants_a_login_fails_at_once(fake, tmp_path):
    fake.fail("getProfile", Fault(401, {}, b'{"error": "AuthMissing", "message": "login"}'))
    result = collect(fake, tmp_path, fails=True)
    assert "refused to answer without a login (AuthMissing login)" in result.error
    assert "--bsky-service" in result.error
    assert len(fake.requests) == 1


def test_not_an_xrpc_service(fake, tmp_path):
    fake.fail("getAuthorFeed", Fault(404, {}, b"{}"))
    result = collect(fake, tmp_path, fails=True)
    assert "answered 404: is it a Bluesky AppView?" in result.error
    assert len(feed_requests(fake)) == 1


def test_rate_limit_waits_for_the_reset(fake, tmp_path):
    fake.fail("getAuthorFeed", None, rate_limited("ratelimit-reset", 0))
    started = time.monotonic()
    result = collect(fake, tmp_path)
    assert time.monotonic() - started >= 1.0
    (warning,) = result.of("warning")
    assert f"rate limited by Bluesky ({fake.url}) (429): waiting" in warning.message
    requests = feed_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == feed_ids(fake)


def test_no_wait_stops_and_resumes_from_the_cursor(fake, tmp_path):
    fake.fail("getAuthorFeed", None, None, rate_limited("ratelimit-reset", 900))
    result = collect(fake, tmp_path, wait=False, fails=True)
    assert "stopped (--no-wait)" in result.error
    assert "in 15m" in result.error  # the time left until the reset
    assert len(posts_in(tmp_path, HANDLE)) == 20
    cursor = feed_requests(fake)[-1].query["cursor"]
    before = len(feed_requests(fake))
    collect(fake, tmp_path)
    assert feed_requests(fake)[before].query["cursor"] == cursor
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == feed_ids(fake)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (server_error(500), "failed (500)"),
        (server_error(502), "answered 502"),
        (malformed(), "sent a malformed answer"),
        (dropped(), "cannot be reached"),
        (slow(1.5), "did not answer within 0.4s"),
    ],
    ids=["500", "502", "malformed-json", "dropped-connection", "slower-than-timeout"],
)
def test_transient_faults_are_retried(fake, tmp_path, fault, message):
    fake.fail("getAuthorFeed", None, fault)
    result = collect(fake, tmp_path, timeout=0.4)
    (warning,) = result.of("warning")
    assert message in warning.message and "retry 1 of 5" in warning.message
    requests = feed_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == feed_ids(fake)


def test_update_stops_at_the_posts_collected_before(fake, tmp_path):
    collect(fake, tmp_path)
    fake.add_posts(HANDLE, 3)
    before = len(feed_requests(fake))
    result = collect(fake, tmp_path, update=True)
    update = feed_requests(fake)[before:]
    assert len(update) == 1 and "cursor" not in update[0].query  # the newest page only
    assert result.of("end")[0].data["fetched"] == 3
    ids = [p["id"] for p in posts_in(tmp_path, HANDLE)]
    assert sorted(ids) == sorted(feed_ids(fake)) and len(set(ids)) == 39

    fake.add_posts(HANDLE, 15)  # more than a page: the walk goes on until old posts
    before = len(feed_requests(fake))
    collect(fake, tmp_path, update=True)
    assert len(feed_requests(fake)) - before == 2
    ids = [p["id"] for p in posts_in(tmp_path, HANDLE)]
    assert sorted(ids) == sorted(feed_ids(fake)) and len(set(ids)) == 54


def test_prepare_statistics_are_exactly_those_of_the_fake(fake, tmp_path):
    from huggingtweets.prepare.dataset import prepare

    fake.add_posts(HANDLE, 60)
    collect(fake, tmp_path)
    prepare(tmp_path)
    account = stats_add_up(tmp_path)
    # The fake's feed comes in turn: a repost, a reply, a quote and a "yes!" (too short)
    # among every eight items; nothing else is dropped.
    feed = fake.feeds[fake.did(HANDLE)]
    reposts = sum("reason" in item for item in feed)
    short = sum(item["post"]["record"]["text"] == "yes!" for item in feed)
    assert (reposts, short) == (12, 12)
    assert account["platform"] == "bsky"
    assert account["downloaded"] == 96
    assert account["retweets"] == reposts
    assert account["short"] == short
    assert account["kept"] == 96 - reposts - short
