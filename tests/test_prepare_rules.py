"""The rules of prepare, one by one, and the properties of the dataset it writes."""

from __future__ import annotations

import json

import orjson
import pytest
from conftest import run_cli
from exports import sentences
from hypothesis import given
from hypothesis import strategies as st

from huggingtweets import Account, Collected, Post, PrepareOptions, prepare, prepare_collected
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.textrules import clean_text, count_words, is_short
from huggingtweets.prepare.dataset import MAX_POST_CHARS, clean_posts


def original_is_short(text: str) -> bool:
    boring = ("http", "@", "#")
    return len([w for w in text.split() if all(b not in w.lower() for b in boring)]) < 3


def account(handle: str, texts: list[str], **flags) -> Collected:
    posts = [Post("x", str(i), handle, None, t, **flags) for i, t in enumerate(texts)]
    return Collected(Account("x", handle), posts)


def stats_of(run) -> dict:
    return json.loads((run / "dataset/stats.json").read_text())


def rows(run, name: str) -> list[dict]:
    return [
        orjson.loads(line) for line in (run / f"dataset/{name}.jsonl").read_bytes().splitlines()
    ]


# -- cleaning -------------------------------------------------------------------


def test_clean_text_decodes_removes_urls_and_collapses_whitespace():
    assert clean_text("a  b\n\nc\t d ") == "a b c d"
    assert clean_text("see https://t.co/abc and http://x.y/z?q=1 now") == "see and now"
    assert clean_text("https://t.co/abc starts") == "starts"
    # The original's ALLOW_NEW_LINES: only runs of spaces collapse, line breaks stay.
    assert clean_text("line one\n  line   two\n\n\n\nthree", allow_newlines=True) == (
        "line one\n line two\n\n\n\nthree"
    )


def test_prepare_decodes_html_entities(tmp_path):
    texts = ["Fish &amp; chips &lt;3 tonight, with friends", *sentences(600)]
    prepare_collected(
        [account("me", texts)], tmp_path, PrepareOptions(validation_split_percentage=0)
    )
    assert "Fish & chips <3 tonight, with friends" in {r["text"] for r in rows(tmp_path, "train")}


@pytest.mark.parametrize(
    ("platform", "decoded"),
    [("x", True), ("file", True), ("mastodon", False), ("bsky", False), ("sample", False)],
)
def test_entities_are_decoded_only_where_the_platform_sends_them(tmp_path, platform, decoded):
    """X and plain files send "&amp;" for "&"; Mastodon's sources already turned its HTML
    into text, and Bluesky and the sample send text as written: decoding those again
    would change what was written."""
    written = "Write &amp;lt; to show &lt; in HTML, or &amp; for &"
    posts = [Post(platform, str(i), "me", None, t) for i, t in enumerate(sentences(600))]
    posts.append(Post(platform, "entities", "me", None, written))
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"".join(orjson.dumps(p.to_dict()) + b"\n" for p in posts))
    run_cli("prepare", path, "--validation-split-percentage", "0", "--out", tmp_path / "run")
    (text,) = [r["text"] for r in rows(tmp_path / "run", "train") if r["id"] == "entities"]
    expected = "Write &lt; to show < in HTML, or & for &" if decoded else written
    assert text == expected


def test_reprepare_keeps_the_order_of_the_accounts(tmp_path):
    """``prepare --out RUN`` without SOURCE keeps the previous dataset's order (it names
    the run, the card's columns and the Hub id), then adds any others by name."""
    run = tmp_path / "run"
    run_cli("prepare", "sample:romeo", "sample:juliet", "--out", run)
    run_cli("prepare", "--out", run)
    assert [a["handle"] for a in stats_of(run)["accounts"]] == ["romeo", "juliet"]
    run_cli("collect", "sample:nurse", "--out", run)
    run_cli("prepare", "--out", run, "--dedupe")
    handles = [a["handle"] for a in stats_of(run)["accounts"]]
    assert handles == ["romeo", "juliet", "nurse"]


@given(
    st.lists(
        st.sampled_from(
            [
                "word",
                "Word",
                "@bob",
                "#tag",
                "http://x",
                "HTTPS://y",
                "xhttpy",
                "a@b",
                "c#",
                "é",
                "🙂",
                "",
                " ",
                "\n",
                "two words",
            ]
        ),
        max_size=12,
    ).map(" ".join)
)
def test_short_rule_is_exactly_the_original_for_text_with_spaces(text):
    assert is_short(text) == original_is_short(text)


@given(
    st.lists(
        st.sampled_from(
            ["word", "@bob", "#tag", "http://x", "xhttp://t.co/a", "https:", "a.http:b", " ", "\n"]
        ),
        max_size=10,
    ).map(" ".join)
)
def test_a_post_is_judged_after_its_urls_are_removed_as_the_original_judged_it(text):
    """The original called boring_tweet on clean_tweet's output: "one xhttp://t.co/a two"
    is "one x two" by then, three words, kept."""
    cleaned = clean_posts([Post("x", "1", "h", None, text)], PrepareOptions())
    assert (cleaned.counts["short"] == 1) == original_is_short(clean_text(text))
    if cleaned.kept:
        assert cleaned.kept[0][1] == clean_text(text)


@pytest.mark.parametrize(
    ("text", "words", "short"),
    [
        ("今日は良い天気ですね", 5, False),  # Japanese, 10 characters: a real sentence
        ("ありがとう", 2, True),  # "thank you": short, like its English counterpart
        ("我今天很高兴见到你们大家", 6, False),  # Chinese, 12 characters
        ("สวัสดีครับ", 2, True),  # Thai "hello"
        ("วันนี้อากาศดีมากเลยครับผม", 6, False),  # Thai sentence
        ("@友達 #タグ ありがとう", 2, True),  # mentions and hashtags still do not count
        ("iPhone最高です", 2, True),
    ],
)
def test_scripts_without_spaces_count_words_by_characters(text, words, short):
    assert count_words(text) == words
    assert is_short(text) is short


def test_japanese_posts_are_not_dropped_as_short(tmp_path):
    texts = [f"今日は良い天気ですね、公園で{i}回散歩しました。" * 3 for i in range(200)]
    result = prepare_collected([account("jp", texts)], tmp_path)
    assert result.stats["accounts"][0]["short"] == 0


# -- categories -----------------------------------------------------------------


def test_every_post_lands_in_exactly_one_category(tmp_path):
    texts = sentences(700)
    posts = [Post("x", str(i), "me", None, t) for i, t in enumerate(texts)]
    posts[0].visibility = "followers"
    posts[1].visibility = "direct"
    posts[2].is_repost = True
    posts[3].is_reply = True
    posts[4].text = "too short"
    posts[5].text = posts[6].text = "The same words are posted twice here"
    posts[7].text = "only four words here"
    posts[8].text = "@bob #tag mention and tag"
    posts[9].visibility = "unlisted"
    posts[10].text = "words " * 20_001  # 120,006 characters
    options = PrepareOptions(
        drop_replies=True, dedupe=True, min_words=5, strip_mentions=True, strip_hashtags=True
    )
    stats = prepare_collected([Collected(Account("x", "me"), posts)], tmp_path, options).stats
    (acc,) = stats["accounts"]
    assert (acc["private"], acc["retweets"], acc["replies"], acc["short"]) == (2, 1, 1, 1)
    assert (acc["below_min_words"], acc["duplicates"]) == (2, 1)  # posts 7 and 8; post 6
    assert acc["too_long"] == 1
    assert acc["kept"] == 700 - 9
    assert sum(acc[c] for c in stats["categories"]) == acc["downloaded"] == 700
    assert acc["edits"] == {"mentions_stripped": 0, "hashtags_stripped": 0}


def test_a_post_longer_than_any_platform_allows_is_dropped_as_too_long(tmp_path):
    """One 20 MB "post" (a damaged or hostile file) never reaches the dataset; X's longest
    real posts (25,000 characters) and the bound itself are kept."""
    texts = sentences(600)
    longest_x_post = ("a long post " * 2_100)[:25_000]
    at_the_bound = ("word " * 20_000)[:MAX_POST_CHARS]
    huge = "spam " * 4_000_000  # 20 MB
    collected = account("me", [*texts, longest_x_post, at_the_bound, huge])
    stats = prepare_collected([collected], tmp_path).stats
    (acc,) = stats["accounts"]
    assert (acc["too_long"], acc["kept"]) == (1, 602)
    assert "too_long" in stats["categories"]
    assert sum(acc[c] for c in stats["categories"]) == acc["downloaded"] == 603
    lengths = [len(r["text"]) for name in ("train", "valid") for r in rows(tmp_path, name)]
    assert max(lengths) == MAX_POST_CHARS - 1  # the bound, its last space trimmed


def test_too_long_posts_show_in_the_cli_table(tmp_path):
    source = tmp_path / "posts.txt"
    source.write_text("\n".join([*sentences(600), "spam " * 4_000_000]))
    result = run_cli("prepare", source, "--handle", "me", "--out", tmp_path / "run")
    assert "Too long" in result.stdout
    assert stats_of(tmp_path / "run")["accounts"][0]["too_long"] == 1


def test_strip_mentions_and_hashtags_edit_the_text(tmp_path):
    texts = ["@bob thanks for the lovely dinner #grateful #food", *sentences(600)]
    options = PrepareOptions(
        strip_mentions=True, strip_hashtags=True, validation_split_percentage=0
    )
    result = prepare_collected([account("me", texts)], tmp_path, options)
    assert "thanks for the lovely dinner" in {r["text"] for r in rows(tmp_path, "train")}
    assert result.stats["accounts"][0]["edits"] == {"mentions_stripped": 1, "hashtags_stripped": 1}


def test_private_posts_never_reach_the_dataset_under_any_option(tmp_path):
    secret = "This secret message is only for my followers, please keep it"
    posts = [Post("x", str(i), "me", None, t) for i, t in enumerate(sentences(600))]
    posts += [
        Post("x", "s1", "me", None, secret, visibility="followers"),
        Post("x", "s2", "me", None, secret + " too", visibility="direct"),
        # A value no source writes (a hand-made record): of unknown audience, so private.
        Post("x", "s3", "me", None, secret + " three", visibility="limited"),
    ]
    for options in (PrepareOptions(), PrepareOptions(dedupe=True, allow_newlines=True)):
        result = prepare_collected([Collected(Account("x", "me"), posts)], tmp_path, options)
        assert result.stats["accounts"][0]["private"] == 3
        dataset = (tmp_path / "dataset/train.jsonl").read_text() + (
            tmp_path / "dataset/valid.jsonl"
        ).read_text()
        assert "secret" not in dataset


# -- split and balance ------------------------------------------------------------


def test_split_is_90_10_deterministic_under_seed_and_disjoint(tmp_path):
    texts = sentences(1000)
    ids = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        prepare_collected([account("me", texts)], tmp_path / name, PrepareOptions(seed=seed))
        ids[name] = (
            {r["id"] for r in rows(tmp_path / name, "train")},
            {r["id"] for r in rows(tmp_path / name, "valid")},
        )
    train, valid = ids["a"]
    assert len(valid) == 100 and len(train) == 900 and not train & valid
    assert train | valid == {str(i) for i in range(1000)}
    assert ids["a"] == ids["b"] and ids["a"] != ids["c"]


def test_several_accounts_are_balanced_by_characters(tmp_path):
    big = account("big", sentences(2000, words=15, tag="big "))
    small = account("small", sentences(300, words=12, tag="small "))
    stats = prepare_collected([big, small], tmp_path).stats
    train = rows(tmp_path, "train")
    chars = {h: sum(len(r["text"]) for r in train if r["handle"] == h) for h in ("big", "small")}
    longest_post = max(len(r["text"]) for r in train)
    assert chars["big"] <= chars["small"] < chars["big"] + longest_post
    # The statistics keep each account's true counts; the split records the oversampling.
    small_stats = stats["accounts"][1]
    assert small_stats["kept"] == 300
    assert small_stats["split"]["train_rows"] > small_stats["split"]["train"] == 270
    assert len({r["id"] for r in train if r["handle"] == "small"}) == 270
    # Training rows are shuffled so that packed blocks mix the voices.
    first = [r["handle"] for r in train[:50]]
    assert "big" in first and "small" in first
    prepare_collected([big, small], tmp_path / "nobal", PrepareOptions(balance=False))
    assert len(rows(tmp_path / "nobal", "train")) == 1800 + 270


# -- too little text --------------------------------------------------------------


def test_too_little_text_is_an_error_with_counts(tmp_path):
    with pytest.raises(
        HuggingtweetsError, match=r"@tiny: 20 posts kept of 20 \([\d,]+ characters\)"
    ):
        prepare_collected([account("tiny", sentences(20))], tmp_path)
    assert not (tmp_path / "dataset").exists()


def test_little_text_is_a_warning(tmp_path):
    path = tmp_path / "few.txt"
    path.write_text("\n".join(sentences(200)), "utf-8")  # ~17,000 characters
    result = run_cli("prepare", path, "--out", tmp_path / "run")
    assert "Warning" in result.stderr and "under 40,000 characters" in result.stderr
    assert "200 posts kept" in result.stderr


# -- the CLI and the Python API agree ---------------------------------------------


def test_cli_and_python_api_write_the_same_dataset(tmp_path):
    result = run_cli(
        "prepare", "sample:romeo", "sample:juliet", "--dedupe", "--out", tmp_path / "cli"
    )
    api = prepare(
        tmp_path / "api", ["sample:romeo", "sample:juliet"], options=PrepareOptions(dedupe=True)
    )
    for name in ("train.jsonl", "valid.jsonl", "stats.json"):
        assert (tmp_path / "cli/dataset" / name).read_bytes() == (
            tmp_path / "api/dataset" / name
        ).read_bytes()
    assert api.stats["accounts"][0]["display_name"] == "Romeo"
    # The CLI prints the table and eight kept posts from both voices.
    assert "Posts kept" in result.stdout
    shown = [
        line for line in result.stdout.splitlines() if line.startswith(("  @romeo:", "  @juliet:"))
    ]
    assert len(shown) == 8 and any("@juliet" in s for s in shown)
    stats = json.loads((tmp_path / "cli/dataset/stats.json").read_text())
    assert [a["handle"] for a in stats["accounts"]] == ["romeo", "juliet"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["public", "unlisted", "followers", "direct"]),
            st.booleans(),
            st.booleans(),
            st.sampled_from(["a b", "one two three", "x @y #z w", "RT @a: b c d", "dup dup dup"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
    st.booleans(),
    st.integers(0, 5),
)
def test_downloaded_is_always_the_sum_of_the_categories(posts, drop_replies, dedupe, min_words):
    collected = Collected(
        Account("x", "me"),
        [
            Post("x", str(i), "me", None, t, is_repost=r, is_reply=p, visibility=v)
            for i, (v, r, p, t) in enumerate(posts)
        ],
    )
    options = PrepareOptions(drop_replies=drop_replies, dedupe=dedupe, min_words=min_words)
    from huggingtweets.prepare.dataset import clean_account

    data = clean_account(collected, options)
    assert sum(data.counts.values()) == len(posts)
    private = sum(v in ("followers", "direct") for v, *_ in posts)
    assert data.counts["private"] == private
