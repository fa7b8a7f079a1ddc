"""Hostile inputs to the live sources, each of which once gave a traceback, a hang, a leaked
token or a wrong count: malformed service URLs, state files of another shape, servers that
echo the token, endless or compressed bodies, absurd rate-limit headers, cursors that go
round in a loop, duplicate posts, fields of another type and handles no file can take."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote, unquote

import pytest
from conftest import run_cli
from fakes import (
    Fault,
    collect_live,
    echo_token,
    endless,
    gzip_bomb,
    live_env,  # noqa: F401 (autouse fixture)
    posts_in,
)
from fakes.platforms import TOKEN, Platform, platform_fixture  # noqa: F401 (fixture)

from huggingtweets.collect.live import base as live_module
from huggingtweets.collect.live import http as live_http
from huggingtweets.collect.live.bluesky import BlueskyOptions
from huggingtweets.collect.live.http import seconds_until_reset, server_text
from huggingtweets.collect.live.mastodon_api import MastodonOptions
from huggingtweets.collect.live.retry import clock
from huggingtweets.collect.live.store import state_problem
from huggingtweets.collect.live.x_api import XApiOptions
from huggingtweets.collect.registry import resolve
from huggingtweets.core import secrets
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError

URL_OPTIONS = [
    (XApiOptions, "x_api_url", "--x-api-url", "x:romeo"),
    (BlueskyOptions, "bsky_service", "--bsky-service", "bsky:juliet.test"),
    (MastodonOptions, "mastodon_url", "--mastodon-url", "@mercutio@social.example"),
]
BAD_URLS = [
    "http://[::1",
    "ftp://x",
    "not a url",
    "",
    "   ",
    "http://",
    "https://host:99999",
    "https://host:port",
    "https://user:password@host",
    "https://host/?q=1",
    "https://ho st",
    "http://host\n",
    "file:///etc/passwd",
]


@pytest.fixture
def x(monkeypatch):
    """The X platform alone (what is the same for every platform is tried on it)."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        yield platform


def files_hold(tmp_path, text: str) -> list[str]:
    """The files under ``tmp_path`` that hold ``text``."""
    return [str(p) for p in tmp_path.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


# -- service URLs ----------------------------------------------------------------------


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize(("cls", "field", "flag", "spec"), URL_OPTIONS)
def test_a_malformed_service_url_is_an_option_error_at_once(cls, field, flag, spec, url):
    with pytest.raises(OptionError) as error:
        cls(**{field: url})
    assert error.value.name == field
    assert "expected a URL such as https://host" in error.value.problem
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "https://proxy.example/x-api/", "http://[::1]:80"]
)
@pytest.mark.parametrize(("cls", "field", "flag", "spec"), URL_OPTIONS)
def test_well_formed_service_urls_are_taken(cls, field, flag, spec, url):
    assert getattr(cls(**{field: url}), field) == url


@pytest.mark.parametrize(("cls", "field", "flag", "spec"), URL_OPTIONS)
def test_the_cli_names_the_flag_of_a_malformed_url_in_one_line(
    tmp_path, monkeypatch, cls, field, flag, spec
):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    result = run_cli("collect", spec, "--out", tmp_path, flag, "http://[::1", expect=2)
    assert flag in result.stderr and "not a valid URL" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "posts").exists()


@pytest.mark.parametrize(
    ("env", "spec"),
    [
        ("HUGGINGTWEETS_X_API_URL", "x:romeo"),
        ("HUGGINGTWEETS_BSKY_SERVICE", "bsky:juliet.test"),
        ("HUGGINGTWEETS_MASTODON_URL", "@mercutio@social.example"),
    ],
)
def test_a_malformed_url_in_the_environment_is_one_line_naming_the_variable(monkeypatch, env, spec):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv(env, "http://[::1")
    with pytest.raises(HuggingtweetsError) as error:
        resolve(spec)
    assert str(error.value).startswith(f"{env} is not a valid URL")
    assert "\n" not in str(error.value)


# -- state files -----------------------------------------------------------------------

GOOD_STATE = {
    "version": 1,
    "source": "x:romeo",
    "platform": "x",
    "account_id": "1000",
    "backfill": {"cursor": None, "done": True},
    "update": None,
}
BAD_STATES = {
    "list": [],
    "text": "state",
    "null": None,
    "version-and-cursor": {"version": 1, "cursor": 5},
    "version-2": {**GOOD_STATE, "version": 2},
    "no-backfill": {k: v for k, v in GOOD_STATE.items() if k != "backfill"},
    "no-platform": {k: v for k, v in GOOD_STATE.items() if k != "platform"},
    "backfill-list": {**GOOD_STATE, "backfill": []},
    "backfill-cursor-number": {**GOOD_STATE, "backfill": {"cursor": 5, "done": False}},
    "backfill-no-done": {**GOOD_STATE, "backfill": {"cursor": None}},
    "update-text": {**GOOD_STATE, "update": "yes"},
    "update-no-known-before": {**GOOD_STATE, "update": {"cursor": None, "since": "1"}},
    "update-negative": {
        **GOOD_STATE,
        "update": {"cursor": None, "since": "1", "known_before": -1},
    },
    "account-id-list": {**GOOD_STATE, "account_id": [1000]},
}


@pytest.mark.parametrize("state", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_state_file_of_another_shape_says_what_to_do_in_one_line(x, tmp_path, state):
    platform = x
    platform.collect(tmp_path)
    path = tmp_path / "posts" / "romeo.state.json"
    assert state_problem(json.loads(path.read_text())) is None
    path.write_text(json.dumps(state))
    before = path.read_bytes()
    result = platform.collect(tmp_path, fails=True)
    assert result.error.startswith(f"{path} is not a collection state this version can use (")
    assert "delete it and run the same command again" in result.error
    assert path.read_bytes() == before  # left for the user to look at
    path.unlink()  # as the message says: then all is fetched again, nothing twice
    again = platform.collect(tmp_path)
    assert again.of("end")[0].data == {"account": "romeo", "fetched": 0, "posts": 55}
    assert [p["id"] for p in posts_in(tmp_path, "romeo")] == platform.ids()


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_a_state_file_that_is_not_json_says_what_to_do(tmp_path, monkeypatch, body):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        platform.collect(tmp_path)
        (tmp_path / "posts" / "romeo.state.json").write_bytes(body)
        result = platform.collect(tmp_path, fails=True)
    assert "is not a collection state this version can use (not JSON" in result.error


def test_the_cli_exits_2_with_one_line_on_a_state_file_of_another_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        platform.collect(tmp_path)
        (tmp_path / "posts" / "romeo.state.json").write_text('{"version": 1, "cursor": 5}')
        result = run_cli(*platform.argv(tmp_path), expect=2)
    assert "delete it and run the same command again" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


# -- secrets ---------------------------------------------------------------------------


def test_redact_masks_every_configured_secret_in_every_form(monkeypatch, tmp_path):
    monkeypatch.setenv("X_BEARER_TOKEN", "AAAA%2Bx-bearer%3Dtoken")
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "masto-secret-token")
    monkeypatch.setenv("WANDB_API_KEY", "short")  # under 8 characters: not looked for
    (tmp_path / "token").write_text("hf_stored_token_123\n")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "token"))
    secrets.register_secret("registered-secret-value")
    text = (
        "a AAAA%2Bx-bearer%3Dtoken b AAAA+x-bearer=token c masto-secret-token "
        "d hf_stored_token_123 e registered-secret-value f short"
    )
    assert secrets.redact(text) == "a *** b *** c *** d *** e *** f short"
    assert secrets.redact("") == "" and secrets.redact("nothing here") == "nothing here"


def test_a_token_with_a_line_break_is_masked_piece_by_piece(monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "first-piece-abc\nsecond-piece-def")
    assert secrets.redact("Bearer first-piece-abc") == "Bearer ***"


def echoed_detail(authorization: str) -> dict:
    return {
        "title": "Forbidden",
        "detail": f"the header {authorization!r} is not allowed",
        "errors": [{"message": f"you sent {authorization}"}],
    }


@pytest.mark.parametrize("status", [400, 403, 409, 503])
def test_an_x_api_that_echoes_the_token_never_shows_it(tmp_path, monkeypatch, status):
    """X's tokens hold %-escapes: a server may echo them decoded as well."""
    token = "AAAA%2Bx-test%3Dtoken-7c1e"
    monkeypatch.setenv("X_BEARER_TOKEN", token)
    platform = Platform("x")
    platform.server.token = token
    with platform.server:
        platform.server.fail(
            "/tweets",
            None,
            *[echo_token(status, lambda auth: echoed_detail(unquote(auth)))] * 3,
            echo_token(status, echoed_detail),
        )
        result = platform.collect(tmp_path, retries=2, fails=True)
        seen = platform.server.seen("/tweets")[-1].headers["authorization"]
    assert seen == f"Bearer {token}"
    for form in (token, unquote(token), quote(token, safe="")):
        assert form not in result.everything()
        assert files_hold(tmp_path, form) == []
    if status < 500:  # a 5xx's body is not shown at all
        assert "***" in result.everything()


def test_an_x_api_that_echoes_the_token_when_looking_up_the_account(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        platform.server.fail(
            "/by/username/",
            echo_token(200, lambda auth: {"errors": [{"detail": f"refused: {auth}"}]}),
        )
        result = platform.collect(tmp_path, fails=True)
    assert result.error == "the X API did not return @romeo: refused: Bearer ***"


def test_a_mastodon_instance_that_echoes_the_token_never_shows_it(tmp_path, monkeypatch):
    token = "masto-echo-token-91f3"
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", token)
    monkeypatch.setenv("MASTODON_INSTANCE", "social.example")
    platform = Platform("mastodon")
    with platform.server:
        platform.server.fail(
            "/statuses",
            echo_token(503, lambda auth: {"error": f"overloaded; you are {auth}"}),
            echo_token(422, lambda auth: {"error": f"unprocessable: {auth}"}),
        )
        result = platform.collect(tmp_path, fails=True)
        assert platform.server.requests[-1].headers["authorization"] == f"Bearer {token}"
    assert result.error.endswith("answered 422: unprocessable: Bearer ***")
    assert token not in result.everything() and files_hold(tmp_path, token) == []


def test_secrets_a_server_slips_into_posts_are_not_written(tmp_path, monkeypatch):
    """A post's text is trained on, and a model may be published: a server that puts the
    token (or any configured secret, here a Hugging Face one) into a post gets it masked."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("HF_TOKEN", "hf_publishing_secret_123")
    platform = Platform("x")
    with platform.server:
        first = platform.server.timelines["1000"][0]
        first["text"] = f"my tokens are {TOKEN} and hf_publishing_secret_123"
        platform.collect(tmp_path)
    assert posts_in(tmp_path, "romeo")[0]["text"] == "my tokens are *** and ***"
    assert files_hold(tmp_path, TOKEN) == files_hold(tmp_path, "hf_publishing") == []


def test_any_configured_secret_a_bluesky_appview_echoes_is_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_appview_echo_456")
    platform = Platform("bsky")
    with platform.server:
        platform.server.fail(
            "getAuthorFeed",
            Fault(200, {}, b"<html>proxy error, HF_TOKEN=hf_appview_echo_456</html>"),
            Fault(400, {}, b'{"error": "X", "message": "hf_appview_echo_456 \\u001b[2J"}'),
        )
        result = platform.collect(tmp_path, fails=True)
    assert "hf_appview_echo_456" not in result.everything()
    # (the escape character is gone: what is left of the sequence is plain text)
    assert result.error == "Bluesky refused the request for juliet.test: X *** [2J"


def test_a_servers_error_text_is_one_bounded_line_without_escapes(platform, tmp_path):
    hostile = "\x1b[2J\x1b[31mwiped\r\nSecond line\u202e" + "x" * 100_000
    body = json.dumps({"error": hostile, "message": hostile, "detail": hostile})
    platform.server.fail(platform.pages, Fault(400, {}, body.encode()))
    result = platform.collect(tmp_path, fails=True)
    assert "wiped Second line" in result.error
    assert not any(c in result.error for c in "\x1b\r\n\u202e")
    assert len(result.error) < 1000
    assert server_text("a\x00b\x9bc") == "a b c"


# -- what a server may send ------------------------------------------------------------


@pytest.fixture
def one_megabyte(monkeypatch):
    monkeypatch.setattr(live_http, "MAX_ANSWER_BYTES", 2**20)


@pytest.mark.parametrize(
    ("fault", "words"),
    [(endless, "an answer of more than 1 MB"), (lambda: gzip_bomb(64), "more than 1 MB")],
    ids=["endless-body", "gzip-bomb"],
)
def test_a_200_with_a_huge_body_is_cut_short_and_retried(
    platform, tmp_path, one_megabyte, fault, words
):
    platform.server.fail(platform.pages, None, fault())
    result = platform.collect(tmp_path)
    # Cut short by the size (the words say which bound ended it: not the request's
    # deadline, ~2 minutes at the default time-out); uncut, the endless body never ends.
    (warning,) = result.of("warning")
    assert "malformed answer" in warning.message and words in warning.message
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_a_body_that_trickles_in_forever_is_given_up_at_the_deadline(platform, tmp_path):
    """Each byte arrives within the time-out, so no read ever times out: the request as a
    whole has a deadline (4 time-outs), after which the collection goes on without it."""
    trickled = threading.Event()

    def trickle():
        for _ in range(200):  # ten seconds, then the server gives up too
            time.sleep(0.05)
            yield b" "
        trickled.set()

    platform.server.fail(platform.pages, None, Fault(200, {}, trickle))
    result = platform.collect(tmp_path, timeout=0.15)
    # Given up at the 0.6 s deadline, not waited out: the collection ended (every page
    # in) before the trickle's 10 s did.
    assert not trickled.is_set()
    (warning,) = result.of("warning")
    assert "within 0.6s" in warning.message or "still arriving after 0.6s" in warning.message
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "-5"},
        {"Retry-After": "nan"},
        {"Retry-After": "inf"},
        {"Retry-After": "soon"},
        {"x-rate-limit-reset": "-1e300", "ratelimit-reset": "-1e300"},
        {"x-rate-limit-reset": "abc", "ratelimit-reset": "abc", "x-ratelimit-reset": "abc"},
        {"x-ratelimit-reset": "9999-99-99T99:99:99Z"},
    ],
    ids=["negative", "nan", "inf", "words", "negative-reset", "reset-words", "bad-date"],
)
def test_rate_limit_headers_that_make_no_sense_back_off_and_go_on(platform, tmp_path, headers):
    platform.server.fail(platform.pages, None, Fault(429, headers, b'{"error": "slow down"}'))
    result = platform.collect(tmp_path)
    (warning,) = result.of("warning")
    assert "(429): waiting 1s" in warning.message  # the back-off delay, rounded up
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "100000000000"},  # 3,000 years
        {"Retry-After": "1e13"},  # past the calendar's end
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"x-rate-limit-reset": "99999999999999", "ratelimit-reset": "99999999999999"},
        {"x-ratelimit-reset": "9999-12-31T23:59:59Z"},
    ],
    ids=["3000-years", "1e13", "http-date-9999", "unix-time", "iso-9999"],
)
def test_a_reset_far_in_the_future_stops_at_once_to_be_continued_later(platform, tmp_path, headers):
    platform.server.fail(platform.pages, None, Fault(429, headers, b"{}"))
    result = platform.collect(tmp_path, fails=True)
    # Stopped at once: no wait began (a wait says so first, then counts down).
    assert not result.of("warning") and not [e for e in result.events if "waiting" in e.data]
    assert "stopped (longer than 1h00m) with the limit resetting in " in result.error
    assert "the 10 posts fetched so far are saved" in result.error
    assert len(posts_in(tmp_path, platform.handle)) == 10
    platform.collect(tmp_path)
    assert [p["id"] for p in posts_in(tmp_path, platform.handle)] == platform.ids()


def test_reset_times_and_clocks_for_any_header():
    now = 1_700_000_000.0
    assert seconds_until_reset({"Retry-After": "-5"}, now) == 0
    assert seconds_until_reset({"Retry-After": "nan"}, now) is None
    assert seconds_until_reset({"Retry-After": "Mon, 32 Foo 20x"}, now) is None
    assert seconds_until_reset({"X-Rate-Limit-Reset": str(now + 60)}, now) == 61
    assert seconds_until_reset({"ratelimit-reset": "30"}, now) == 30
    assert seconds_until_reset({"x-ratelimit-reset": "not a time"}, now) is None
    assert [clock(s) for s in (0.2, 61, 3600, 90000, 1e13, float("inf"))] == [
        "1s",
        "1m01s",
        "1h00m",
        "1d01h",
        "more than a century",
        "more than a century",
    ]


# -- pages that lie ----------------------------------------------------------------------


def test_cursors_that_go_round_in_a_loop_end_the_walk(platform: Platform, tmp_path):
    """Page 3 points back to page 2, which points to page 3 again: without a check this
    never ends (each page adds nothing new, and the cursor always moves)."""
    platform.server.fail(platform.pages, None, None)

    def back_to_page_two(seen):
        second = platform.cursor_of(platform.page_requests()[1])
        if platform.cursor_of(seen) == second:
            return platform.server.handle(seen)  # page 2, pointing to page 3
        return platform.page(seen, onward=second)

    platform.server.fail(platform.pages, *[Fault(respond=back_to_page_two)] * 40)
    result = platform.collect(tmp_path)
    assert len(platform.page_requests()) == 3
    (warning,) = result.of("warning")
    assert "sent a page cursor it had sent before" in warning.message
    assert len(posts_in(tmp_path, platform.handle)) == 30
    state = json.loads((tmp_path / "posts" / f"{platform.handle}.state.json").read_text())
    assert state["backfill"] == {"cursor": None, "done": True}


def test_endless_empty_pages_end_the_walk(platform: Platform, tmp_path):
    count = iter(range(10**6))

    def empty(seen):
        return platform.page(seen, onward=f"9{next(count):06d}", keep=False)

    platform.server.fail(platform.pages, None, *[Fault(respond=empty)] * 100)
    result = platform.collect(tmp_path)
    assert len(platform.page_requests()) == 1 + live_module.MAX_EMPTY_PAGES
    (warning,) = result.of("warning")
    assert f"sent {live_module.MAX_EMPTY_PAGES} empty pages in a row" in warning.message
    assert len(posts_in(tmp_path, platform.handle)) == 10


def test_posts_repeated_across_and_within_pages_are_kept_once(platform: Platform, tmp_path):
    first_page: list = []

    def remember(seen):
        answer = platform.server.handle(seen)
        first_page.extend(platform.items_of(answer))
        return answer

    def repeat(seen):
        answer = platform.server.handle(seen)
        own = platform.items_of(answer)
        return platform.page(seen, items=[*first_page[:3], own[0], own[0]])

    platform.server.fail(platform.pages, Fault(respond=remember), *[Fault(respond=repeat)] * 5)
    result = platform.collect(tmp_path)
    ids = [p["id"] for p in posts_in(tmp_path, platform.handle)]
    assert ids == platform.ids() and len(ids) == 55
    assert result.of("end")[0].data["fetched"] == 55


# -- fields of another type and handles no file can take -------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda user, post: user.update(public_metrics=[]),
        lambda user, post: user["public_metrics"].update(tweet_count="many"),
        lambda user, post: user["public_metrics"].update(tweet_count=-3),
        lambda user, post: user.update(name=5, description=["a"], profile_image_url={}),
        lambda user, post: post.update(note_tweet="a note"),
        lambda user, post: post.update(referenced_tweets=["retweeted"]),
        lambda user, post: post.update(lang=7, created_at="yesterday"),
    ],
    ids=["metrics-list", "count-text", "count-negative", "names", "note", "refs", "lang"],
)
def test_x_fields_of_another_type_are_read_without_a_traceback(tmp_path, monkeypatch, change):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        change(platform.server.users["romeo"], platform.server.timelines["1000"][0])
        result = platform.collect(tmp_path)
    assert len(posts_in(tmp_path, "romeo")) == 55
    assert result.of("start")[0].total in (55, None)


@pytest.mark.parametrize(
    "page",
    [
        {"data": [{"id": "1", "text": 5}], "meta": {}},
        {"data": [{"id": "../2", "text": "x"}], "meta": {}},
        {"data": [], "meta": {"next_token": 12345}},
        {"data": {"id": "1"}, "meta": {}},
    ],
    ids=["text-number", "id-path", "token-number", "data-object"],
)
def test_an_x_page_of_another_shape_is_retried(tmp_path, monkeypatch, page):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        platform.server.fail("/tweets", None, Fault(200, {}, json.dumps(page).encode()))
        result = platform.collect(tmp_path)
    (warning,) = result.of("warning")
    assert "the X API sent a malformed answer" in warning.message
    assert [p["id"] for p in posts_in(tmp_path, "romeo")] == platform.ids()


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (429, b"[]", "rate limited by the X API (429): waiting"),
        (503, b'"busy"', "the X API failed (503)"),
        (429, b'{"errors": 5}', "rate limited by the X API (429): waiting"),
    ],
)
def test_x_error_answers_tweepy_cannot_read_keep_their_meaning(
    tmp_path, monkeypatch, status, body, words
):
    """tweepy fails while reading these (a body that is JSON but not an object, or a
    reset header that is not a whole number): the status still decides what happens."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        headers = {"x-rate-limit-reset": "soon"} if status == 429 else {}
        platform.server.fail("/tweets", None, Fault(status, headers, body))
        result = platform.collect(tmp_path)
    (warning,) = result.of("warning")
    assert words in warning.message
    assert [p["id"] for p in posts_in(tmp_path, "romeo")] == platform.ids()


def test_a_403_tweepy_cannot_read_still_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        platform.server.fail("/tweets", Fault(403, {}, b"[]"))
        result = platform.collect(tmp_path, fails=True)
    assert "the X API forbade the request (403: Forbidden)" in result.error


@pytest.mark.parametrize("handle", ["../../evil", "evil/x", "a" * 150, "x\x1b[2J"])
def test_a_handle_from_a_mastodon_instance_that_no_file_can_take(tmp_path, monkeypatch, handle):
    platform = Platform("mastodon")
    with platform.server:
        platform.server.accounts["mercutio"]["acct"] = handle
        result = platform.collect(tmp_path, fails=True)
        assert "by a handle that cannot name a file" in result.error
        assert result.error.endswith("give one with --handle")
        assert "\x1b" not in result.error
        assert not (tmp_path / "posts").exists() and list(tmp_path.parent.glob("evil*")) == []
        platform.collect(tmp_path, handle="mercutio")  # as the message says
    assert len(posts_in(tmp_path, "mercutio")) == 55


@pytest.mark.parametrize("username", ["../../evil", "evil/x", "x" * 40])
def test_an_x_user_with_a_handle_x_does_not_allow_is_a_malformed_answer(
    tmp_path, monkeypatch, username
):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    platform = Platform("x")
    with platform.server:
        platform.server.users["romeo"]["username"] = username
        result = platform.collect(tmp_path, retries=1, fails=True)
    assert "a user with a numeric id and a handle" in result.error
    assert not (tmp_path / "posts").exists()


def test_a_bluesky_profile_with_a_handle_no_file_can_take(tmp_path):
    platform = Platform("bsky")
    with platform.server:
        did = platform.server.did("juliet.test")
        platform.server.profiles[did]["handle"] = "../../evil"
        result = collect_live(f"bsky:{did}", tmp_path, platform.extra, retries=1, fails=True)
    assert result.error == (
        f"Bluesky calls 'bsky:{did}' by a handle that cannot name a file ('../../evil'); "
        "give one with --handle"
    )
    assert not (tmp_path / "posts").exists()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("x:" + "a" * 10_000, "an X handle is 1 to 15"),
        ("bsky:" + "a." * 3000 + "com", "expected bsky:HANDLE"),
        ("mastodon:@a@b.c/../x", "expected mastodon:@USER@INSTANCE"),
        ("x:rom\x00eo", "an X handle is 1 to 15"),
        ("x:\u202eromeo", "an X handle is 1 to 15"),
        ("bsky:jüliet.test", "expected bsky:HANDLE"),
    ],
    ids=["x-long", "bsky-long", "mastodon-path", "nul", "bidi", "non-ascii"],
)
def test_account_specs_with_odd_characters_are_refused_in_one_short_line(spec, words):
    with pytest.raises(HuggingtweetsError) as error:
        resolve(spec)
    assert words in str(error.value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 200
