"""Share links (share.py): within each platform's length, correctly encoded, signed as an
AI bot's, the right Mastodon instance; and `generate --share` through the real CLI."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import run_cli
from demo_run import demo_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huggingtweets.core.options import OptionError
from huggingtweets.generate.share import (
    BLUESKY_LIMIT,
    ELLIPSIS,
    MASTODON_LIMIT,
    SEPARATOR,
    X_LIMIT,
    ShareAccount,
    ShareOptions,
    attribution,
    bluesky_length,
    mastodon_length,
    sample_links,
    share_links,
    share_texts,
    x_length,
)

MODEL_URL = "https://huggingface.co/alice/romeo-juliet"
LIMITS = {
    "x": (X_LIMIT, lambda t, links: x_length(t, links)),
    "bluesky": (BLUESKY_LIMIT, lambda t, links: bluesky_length(t)),
    "mastodon": (MASTODON_LIMIT, lambda t, links: mastodon_length(t, links)),
}
ENCODED = re.compile(r"[A-Za-z0-9%._~-]*")  # what quote(safe="") leaves: nothing to escape

handles = st.from_regex(r"[\w.@-]{1,100}", fullmatch=True)
accounts = st.lists(
    st.builds(ShareAccount, handles, st.sampled_from(["x", "bsky", "mastodon", "file", "sample"])),
    max_size=3,
)


def _query_text(url: str) -> str:
    query = urlsplit(url).query
    assert query.startswith("text=") and ENCODED.fullmatch(query[len("text=") :]), url
    return parse_qs(query, keep_blank_values=True)["text"][0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=1500), people=accounts, url=st.sampled_from([None, MODEL_URL]))
def test_every_link_is_within_its_platform_limit_and_signed(text, people, url):
    texts = share_texts(text, people, url)
    links = share_links(text, people, model_url=url).to_dict()
    known = (url,) if url else ()
    for platform, (limit, length) in LIMITS.items():
        shared = texts[platform]
        assert length(shared, known) <= limit, (platform, shared)
        assert "🤖 AI bot" in shared and "made with huggingtweets" in shared
        # The link carries exactly that text, percent-encoded (spaces, newlines, &, # too).
        assert _query_text(links[platform]) == shared
        body = shared.rsplit(SEPARATOR, 1)[0] if SEPARATOR in shared else ""
        # The post is cut, never changed: what is kept is the start of the text.
        if body.endswith(ELLIPSIS):
            assert text.strip().startswith(body[: -len(ELLIPSIS)].rstrip())
        elif body:
            assert body == text.strip()


def test_x_counts_as_x_does():
    assert x_length("hello world") == 11
    assert x_length("今日は良い天気ですね") == 20  # CJK: 2 each
    assert x_length("café “quoted” — ok") == len("café “quoted” — ok")  # light ranges
    assert x_length(MODEL_URL, (MODEL_URL,)) == 23  # a link: 23 whatever its length
    assert x_length("see example.com") >= 4 + 23  # a possible link: never less than X
    assert x_length("e.g. U.S.A.") == 11  # abbreviations are no links
    assert x_length("👍") == 2


def test_bluesky_counts_graphemes():
    assert bluesky_length("👍🏽") == 1
    assert bluesky_length("🏳️‍🌈") == 1
    assert bluesky_length("e\u0301") == 1  # e + combining acute: one character seen
    assert bluesky_length("日本語") == 3


def test_a_long_post_is_cut_with_an_ellipsis_at_each_limit():
    text = "word " * 400
    texts = share_texts(text, [ShareAccount("romeo", "sample")])
    for platform, (limit, length) in LIMITS.items():
        shared = texts[platform]
        body, signature = shared.split(SEPARATOR)
        assert body.endswith("word" + ELLIPSIS)  # cut at a space, not inside a word
        assert signature == "🤖 AI bot of romeo, made with huggingtweets"
        assert limit - 10 <= length(shared, ()) <= limit, platform
    cjk = share_texts("日本" * 400)["x"]
    assert x_length(cjk) <= X_LIMIT and cjk.split(SEPARATOR)[0].endswith(ELLIPSIS)


def test_the_signature_names_the_accounts_without_pinging_them():
    people = [
        ShareAccount("dril", "x"),
        ShareAccount("jay.bsky.team", "bsky"),
        ShareAccount("gargron@mastodon.social", "mastodon"),
    ]
    signature = attribution(people, MODEL_URL)
    assert signature == (
        "🤖 AI bot of dril on X & jay.bsky.team on Bluesky & gargron@mastodon.social, "
        f"made with huggingtweets {MODEL_URL}"
    )
    assert not re.search(r"(^|\s)@", signature)  # no mention: nobody is notified
    assert attribution() == "🤖 AI bot, made with huggingtweets"
    # Three handles of 100 characters still leave room for the post.
    long = [ShareAccount("h" * 100, "x") for _ in range(3)]
    texts = share_texts("My dream is to fly", long)
    assert all(t.startswith("My dream is to fly") for t in texts.values())


def test_the_mastodon_link_opens_the_right_instance():
    fosstodon = [ShareAccount("romeo", "x"), ShareAccount("juliet@Fosstodon.org", "mastodon")]
    assert share_links("hi there", fosstodon).mastodon.startswith("https://fosstodon.org/share?")
    given = ShareOptions(instance="https://Mastodon.Online/").instance
    assert given == "mastodon.online"
    assert share_links("hi", fosstodon, instance=given).mastodon.startswith(
        "https://mastodon.online/share?text="
    )
    assert share_links("hi").mastodon.startswith("https://mastodon.social/share?text=")
    assert ShareOptions(instance="bücher.example").instance == "xn--bcher-kva.example"
    links = share_links("hi")
    assert links.x.startswith("https://x.com/intent/post?text=")
    assert links.bluesky.startswith("https://bsky.app/intent/compose?text=")
    for bad in ("not a host", "mastodon.social/@me", "javascript:alert(1)", "", "localhost"):
        with pytest.raises(OptionError) as error:
            ShareOptions(instance=bad)
        assert error.value.name == "instance"


def test_text_a_url_cannot_carry_is_made_safe():
    links = share_links("bad \udcff bytes & #tags\n? =")
    assert _query_text(links.x).startswith("bad \ufffd bytes & #tags\n? =")


@dataclass
class _Sample:
    text: str
    flagged: bool


def test_a_copy_of_a_training_post_gets_no_links(tmp_path):
    links = sample_links(
        "someone/bot", [_Sample("My dream is new", False), _Sample("a copy", True)], ShareOptions()
    )
    assert links[1] is None
    assert MODEL_URL.replace("alice/romeo-juliet", "someone/bot") in _query_text(links[0].x)


def test_generate_share_through_the_cli(tmp_path_factory):
    demo = demo_run(tmp_path_factory)
    args = ("generate", demo.run_dir, "O Romeo", "-n", "2", "--seed", "3", "--share")
    out = json.loads(run_cli(*args, "--instance", "mastodon.online", "--json").stdout)
    for sample in out["samples"]:
        links = sample["share"]
        assert set(links) == {"x", "bluesky", "mastodon"}
        assert links["mastodon"].startswith("https://mastodon.online/share?text=")
        text = _query_text(links["x"])
        assert text.startswith(sample["text"].strip()[:20])
        assert text.endswith("🤖 AI bot of romeo & juliet, made with huggingtweets")
    printed = run_cli(*args).stdout
    assert printed.count("x: https://x.com/intent/post?text=") == 2
    assert "share" not in json.loads(run_cli(*args[:-1], "--json").stdout)["samples"][0]
    result = run_cli("generate", demo.run_dir, "--instance", "no host", expect=2)
    assert "--instance must be a host name" in result.stderr


def test_lengths_agree_with_twitter_text_where_installed():
    """Our X length is never below the reference implementation's (twitter-text v3).
    Skipped unless twitter-text-parser is installed (it is not a dependency)."""
    parse_tweet = pytest.importorskip("twitter_text").parse_tweet

    @settings(max_examples=200, deadline=None)
    @given(text=st.text(max_size=400))
    def check(text):
        assert x_length(text) >= parse_tweet(text).weightedLength

    check()
    for text in ("word " * 400, "日本" * 300, "©®" * 300, "see example.com " * 40):
        shared = share_texts(text, [ShareAccount("romeo", "x")], MODEL_URL)["x"]
        assert parse_tweet(shared).weightedLength <= X_LIMIT
