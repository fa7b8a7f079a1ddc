"""Mastodon accounts: the Mastodon source and Mastodon.py against a fake instance on
127.0.0.1, through the library, its progress read from its events."""

from __future__ import annotations

import itertools
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
from fakes.mastodon import FakeMastodon

from huggingtweets.collect.live.mastodon_api import MastodonOptions

HANDLE = "mercutio@social.example"
TOKEN = "masto-test-token-81d2e7"


@pytest.fixture
def fake():
    with FakeMastodon("social.example", page_size=10) as server:
        server.add_account("mercutio", 36)
        yield server


def collect(fake, out, *, source=f"mastodon:@{HANDLE}", **kwargs):
    return collect_live(source, out, MastodonOptions(mastodon_url=fake.url), **kwargs)


def status_requests(fake):
    return fake.seen("/statuses")


def fake_ids(fake) -> list[str]:
    return [s["id"] for s in fake.statuses["100"]]


def test_collects_statuses_with_visibility_boosts_and_text(fake, tmp_path):
    result = collect(fake, tmp_path)
    end = result.of("end")[0]
    assert end.message == f"@{HANDLE}: 36 new posts fetched from social.example"
    assert [e.step for e in result.of("progress")] == [0, 10, 20, 30, 36, 36, 36]
    assert {e.total for e in result.of("progress")} == {36}
    assert {e.data["account"] for e in result.events} == {HANDLE}
    posts = posts_in(tmp_path, HANDLE)
    assert [p["id"] for p in posts] == fake_ids(fake)
    statuses = {s["id"]: s for s in fake.statuses["100"]}
    expected_visibility = {
        "public": "public",
        "unlisted": "unlisted",
        "private": "followers",
        "direct": "direct",
    }
    for post in posts:
        status = statuses[post["id"]]
        assert post["visibility"] == expected_visibility[status["visibility"]]
        assert post["is_repost"] == (status["reblog"] is not None)
        assert post["is_reply"] == (status["in_reply_to_id"] is not None)
        assert post["is_quote"] == ("quote" in status)
        if status["reblog"]:
            assert post["text"] == "" and post["url"] == status["reblog"]["url"]
        elif post["visibility"] in ("followers", "direct"):
            assert post["text"] == ""  # counted as private, its words never stored
        else:
            assert post["text"] and "<p>" not in post["text"]  # HTML made text
            assert post["url"] == status["url"]
        assert post["created_at"] == status["created_at"][:19] + "Z"
        assert (post["platform"], post["author"]) == ("mastodon", HANDLE)
    assert {p["visibility"] for p in posts} == {"public", "unlisted", "followers", "direct"}
    account = json.loads((tmp_path / "posts" / f"{HANDLE}.account.json").read_text())
    assert account["description"] == "A fake account for tests"
    assert account["display_name"] == "Mercutio"
    # Each page asked for with the max_id of the Link header's rel="next".
    requests = status_requests(fake)
    assert "max_id" not in requests[0].query
    for previous, following in itertools.pairwise(requests):
        assert int(following.query["max_id"]) < int(previous.query.get("max_id", 10**30))
    assert len(requests) == 5  # four pages, then an empty one


@pytest.mark.parametrize(
    "spec",
    [f"@{HANDLE}", f"mastodon:{HANDLE}", "https://social.example/@mercutio", HANDLE],
)
def test_other_spellings(fake, tmp_path, spec):
    collect(fake, tmp_path, source=spec)
    assert len(posts_in(tmp_path, HANDLE)) == 36


def test_an_instance_that_requires_a_token(fake, tmp_path, monkeypatch):
    fake.require_token = TOKEN
    result = collect(fake, tmp_path / "a", fails=True)
    assert "requires an access token (401): set MASTODON_ACCESS_TOKEN" in result.error
    assert len(fake.requests) == 1

    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", TOKEN)
    result = collect(fake, tmp_path / "b", fails=True)  # whose token is it? not sent anywhere
    assert "authorization" not in fake.requests[-1].headers
    assert "set MASTODON_INSTANCE=social.example if it is this one's" in result.error
    monkeypatch.setenv("MASTODON_INSTANCE", "elsewhere.example")  # not this instance's token
    collect(fake, tmp_path / "b", fails=True)
    assert "authorization" not in fake.requests[-1].headers  # never sent to another instance

    monkeypatch.setenv("MASTODON_INSTANCE", "social.example")
    ok = collect(fake, tmp_path / "c")
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert len(posts_in(tmp_path / "c", HANDLE)) == 36
    assert TOKEN not in ok.everything()
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert TOKEN.encode() not in path.read_bytes(), path

    fake.require_token = "another"
    result = collect(fake, tmp_path / "d", fails=True)
    assert "refused MASTODON_ACCESS_TOKEN (401)" in result.error
    assert TOKEN not in result.everything()


def test_unknown_gone_and_suspended_accounts(fake, tmp_path):
    result = collect(fake, tmp_path, source="@nobody@social.example", fails=True)
    assert "no account @nobody@social.example" in result.error
    fake.add_account("tybalt", 3, suspended=True)
    result = collect(fake, tmp_path, source="@tybalt@social.example", fails=True)
    assert "@tybalt@social.example is suspended" in result.error
    fake.fail("lookup", Fault(410, {}, b'{"error": "Gone"}'))
    result = collect(fake, tmp_path, fails=True)
    assert "is gone (suspended or deleted)" in result.error
    assert status_requests(fake) == []


def test_forbidden_fails_at_once(fake, tmp_path):
    fake.fail("/statuses", Fault(403, {}, b'{"error": "This action is not allowed"}'))
    result = collect(fake, tmp_path, fails=True)
    assert "forbade the request (403: This action is not allowed)" in result.error
    assert len(status_requests(fake)) == 1


@pytest.mark.parametrize("header", ["X-RateLimit-Reset", "Retry-After"])
def test_rate_limit_waits_for_the_reset(fake, tmp_path, header):
    fake.fail("/statuses", None, rate_limited(header, 1))
    started = time.monotonic()
    result = collect(fake, tmp_path)
    assert time.monotonic() - started >= 1.0
    (warning,) = result.of("warning")
    assert "(429): waiting" in warning.message
    requests = status_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == fake_ids(fake)


def test_no_wait_stops_and_resumes_from_max_id(fake, tmp_path):
    fake.fail("/statuses", None, rate_limited("Retry-After", 300))
    result = collect(fake, tmp_path, wait=False, fails=True)
    assert "stopped (--no-wait) with the limit resetting in 5m00s" in result.error
    assert len(posts_in(tmp_path, HANDLE)) == 10
    max_id = status_requests(fake)[-1].query["max_id"]
    before = len(status_requests(fake))
    collect(fake, tmp_path)
    assert status_requests(fake)[before].query["max_id"] == max_id
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == fake_ids(fake)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (server_error(500), "failed (500)"),
        (server_error(503), "failed (503)"),
        (malformed(), "sent a malformed answer (not JSON)"),
        (dropped(), "cannot reach social.example"),
        (slow(1.5), "did not answer within 0.4s"),
    ],
    ids=["500", "503", "malformed-json", "dropped-connection", "slower-than-timeout"],
)
def test_transient_faults_are_retried(fake, tmp_path, fault, message):
    fake.fail("/statuses", None, fault)
    result = collect(fake, tmp_path, timeout=0.4)
    (warning,) = result.of("warning")
    assert message in warning.message and "retry 1 of 5" in warning.message
    requests = status_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == fake_ids(fake)


def test_update_asks_only_for_newer_statuses(fake, tmp_path):
    collect(fake, tmp_path)
    newest = fake_ids(fake)[0]
    fake.add_statuses("mercutio", 14)
    before = len(status_requests(fake))
    result = collect(fake, tmp_path, update=True)
    update = status_requests(fake)[before:]
    assert all(r.query["since_id"] == newest for r in update)
    assert len(update) == 3  # two pages of new statuses, then an empty one
    assert result.of("end")[0].data["fetched"] == 14
    ids = [p["id"] for p in posts_in(tmp_path, HANDLE)]
    assert sorted(ids) == sorted(fake_ids(fake)) and len(set(ids)) == 50


def test_prepare_keeps_no_private_post_and_statistics_are_exactly_those_of_the_fake(fake, tmp_path):
    from huggingtweets.prepare.dataset import prepare

    fake.add_statuses("mercutio", 70)
    collect(fake, tmp_path)
    prepare(tmp_path)
    account = stats_add_up(tmp_path)
    posts = posts_in(tmp_path, HANDLE)
    private_ids = {p["id"] for p in posts if p["visibility"] in ("followers", "direct")}
    for name in ("train.jsonl", "valid.jsonl"):
        rows = (tmp_path / "dataset" / name).read_text().splitlines()
        assert not private_ids & {json.loads(row)["id"] for row in rows}
    # From the fake's own statuses: each visibility in turn (two of seven private), and
    # among every nine a boost, a reply, a quote and a "ha!" (too short). Each post counts
    # once, private first, then boosts, then short ones.
    statuses = fake.statuses["100"]
    private = sum(s["visibility"] in ("private", "direct") for s in statuses)
    public = [s for s in statuses if s["visibility"] not in ("private", "direct")]
    boosts = sum(s["reblog"] is not None for s in public)
    short = sum(s["content"] == "<p>ha!</p>" for s in public)
    assert (private, boosts, short) == (30, 10, 8)
    assert len(private_ids) == private
    assert account["platform"] == "mastodon"
    assert account["downloaded"] == 106
    assert account["private"] == private
    assert account["retweets"] == boosts
    assert account["short"] == short
    assert account["kept"] == 106 - private - boosts - short
