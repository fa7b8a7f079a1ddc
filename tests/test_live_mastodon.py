"""Mastodon accounts: the real CLI and Mastodon.py against a fake instance on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
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
from fakes.mastodon import FakeMastodon

HANDLE = "mercutio@social.example"
TOKEN = "masto-test-token-81d2e7"


@pytest.fixture
def fake():
    with FakeMastodon("social.example", page_size=10) as server:
        server.add_account("mercutio", 36)
        yield server


def collect(fake, out, *args, expect=0, source=f"mastodon:@{HANDLE}"):
    return run_cli(
        "collect", source, "--out", out, "--mastodon-url", fake.url, *args, expect=expect
    )


def status_requests(fake):
    return fake.seen("/statuses")


def fake_ids(fake) -> list[str]:
    return [s["id"] for s in fake.statuses["100"]]


def test_collects_statuses_with_visibility_boosts_and_text(fake, tmp_path):
    result = collect(fake, tmp_path)
    assert f"@{HANDLE}: 36 posts" in result.stdout
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
    result = collect(fake, tmp_path / "a", expect=2)
    assert "requires an access token (401): set MASTODON_ACCESS_TOKEN" in result.stderr
    assert len(fake.requests) == 1

    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", TOKEN)
    result = collect(fake, tmp_path / "b", expect=2)  # whose token is it? not sent anywhere
    assert "authorization" not in fake.requests[-1].headers
    assert "set MASTODON_INSTANCE=social.example if it is this one's" in result.stderr
    monkeypatch.setenv("MASTODON_INSTANCE", "elsewhere.example")  # not this instance's token
    collect(fake, tmp_path / "b", expect=2)
    assert "authorization" not in fake.requests[-1].headers  # never sent to another instance

    monkeypatch.setenv("MASTODON_INSTANCE", "social.example")
    ok = collect(fake, tmp_path / "c")
    assert len(posts_in(tmp_path / "c", HANDLE)) == 36
    for text in (ok.output,):
        assert TOKEN not in text
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert TOKEN.encode() not in path.read_bytes(), path

    fake.require_token = "another"
    result = collect(fake, tmp_path / "d", expect=2)
    assert "refused MASTODON_ACCESS_TOKEN (401)" in result.stderr
    assert TOKEN not in result.output


def test_unknown_gone_and_suspended_accounts(fake, tmp_path):
    result = collect(fake, tmp_path, source="@nobody@social.example", expect=2)
    assert "no account @nobody@social.example" in result.stderr
    fake.add_account("tybalt", 3, suspended=True)
    result = collect(fake, tmp_path, source="@tybalt@social.example", expect=2)
    assert "@tybalt@social.example is suspended" in result.stderr
    fake.fail("lookup", Fault(410, {}, b'{"error": "Gone"}'))
    result = collect(fake, tmp_path, expect=2)
    assert "is gone (suspended or deleted)" in result.stderr
    assert status_requests(fake) == []


def test_forbidden_fails_at_once(fake, tmp_path):
    fake.fail("/statuses", Fault(403, {}, b'{"error": "This action is not allowed"}'))
    result = collect(fake, tmp_path, expect=2)
    assert "forbade the request (403: This action is not allowed)" in result.stderr
    assert len(status_requests(fake)) == 1


@pytest.mark.parametrize("header", ["X-RateLimit-Reset", "Retry-After"])
def test_rate_limit_waits_for_the_reset(fake, tmp_path, header):
    fake.fail("/statuses", None, rate_limited(header, 1))
    started = time.monotonic()
    result = collect(fake, tmp_path)
    assert time.monotonic() - started >= 1.0
    assert "(429): waiting" in result.stderr
    requests = status_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == fake_ids(fake)


def test_no_wait_stops_and_resumes_from_max_id(fake, tmp_path):
    fake.fail("/statuses", None, rate_limited("Retry-After", 300))
    result = collect(fake, tmp_path, "--no-wait", expect=2)
    assert "stopped (--no-wait) with the limit resetting in 5m00s" in result.stderr
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
    result = collect(fake, tmp_path, "--timeout", "0.4")
    assert message in result.stderr and "retry 1 of 5" in result.stderr
    requests = status_requests(fake)
    assert requests[1].query == requests[2].query
    assert [p["id"] for p in posts_in(tmp_path, HANDLE)] == fake_ids(fake)


def test_update_asks_only_for_newer_statuses(fake, tmp_path):
    collect(fake, tmp_path)
    newest = fake_ids(fake)[0]
    fake.add_statuses("mercutio", 14)
    before = len(status_requests(fake))
    result = collect(fake, tmp_path, "--update")
    update = status_requests(fake)[before:]
    assert all(r.query["since_id"] == newest for r in update)
    assert len(update) == 3  # two pages of new statuses, then an empty one
    assert "14 new posts" in result.stderr
    ids = [p["id"] for p in posts_in(tmp_path, HANDLE)]
    assert sorted(ids) == sorted(fake_ids(fake)) and len(set(ids)) == 50


def test_prepare_keeps_no_private_post_and_statistics_add_up(fake, tmp_path):
    fake.add_statuses("mercutio", 70)
    run_cli("prepare", f"@{HANDLE}", "--out", tmp_path, "--mastodon-url", fake.url)
    account = stats_add_up(tmp_path)
    posts = posts_in(tmp_path, HANDLE)
    assert account["downloaded"] == 106
    assert account["private"] == sum(p["visibility"] in ("followers", "direct") for p in posts)
    assert account["private"] > 20
    private_ids = {p["id"] for p in posts if p["visibility"] in ("followers", "direct")}
    for name in ("train.jsonl", "valid.jsonl"):
        rows = (tmp_path / "dataset" / name).read_text().splitlines()
        assert not private_ids & {json.loads(row)["id"] for row in rows}
    assert account["platform"] == "mastodon" and account["kept"] > 30
