"""The X/Twitter data export reader, on the real export and on focused format variants."""

from __future__ import annotations

import json
import re

import orjson
import pytest
from conftest import run_cli
from exports import sentences, tweet, write_x_export, ytd, zip_folder

from huggingtweets import read_source

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def original_is_short(text: str) -> bool:
    """The original huggingtweets' rule, written independently of our code."""
    boring = ("http", "@", "#")
    return len([w for w in text.split() if all(b not in w.lower() for b in boring)]) < 3


def test_real_export_statistics_follow_the_original_rules(smithjd, tmp_path):
    run = tmp_path / "run"
    result = run_cli("prepare", smithjd, "--handle", "smithjd", "--out", run)
    stats = json.loads((run / "dataset/stats.json").read_text())
    (account,) = stats["accounts"]

    raw = (smithjd / "data/tweets.js").read_text("utf-8")
    import html

    texts = [html.unescape(e["tweet"]["full_text"]) for e in json.loads(raw[raw.index("=") + 1 :])]
    retweets = sum(t.startswith("RT @") for t in texts)
    short = sum(original_is_short(t) for t in texts if not t.startswith("RT @"))
    assert account["downloaded"] == len(texts) == 1758
    assert account["retweets"] == retweets == 128
    assert account["short"] == short
    assert account["kept"] == len(texts) - retweets - short
    assert account["private"] == 0
    assert account["platform"] == "x" and account["handle"] == "smithjd"
    assert sum(account[c] for c in stats["categories"]) == account["downloaded"]
    # The table is printed in the platform's words, as the seed cards have it.
    for label in ("Tweets downloaded", "Retweets", "Short tweets", "Tweets kept", "1,758"):
        assert label in result.stdout


def test_real_export_records_and_dataset(smithjd, tmp_path):
    run = tmp_path / "run"
    run_cli("prepare", smithjd, "--handle", "smithjd", "--out", run)
    posts = [orjson.loads(line) for line in (run / "posts/smithjd.jsonl").read_bytes().splitlines()]
    assert len(posts) == 1758 and len({p["id"] for p in posts}) == 1758
    for post in posts:
        assert ISO_UTC.fullmatch(post["created_at"])
        assert post["url"] == f"https://x.com/smithjd/status/{post['id']}"
        assert post["visibility"] == "public"
    assert any(p["is_reply"] for p in posts) and any(p["is_quote"] for p in posts)
    assert {p["lang"] for p in posts} >= {"en", "es"}

    rows = [
        orjson.loads(line)
        for name in ("train", "valid")
        for line in (run / f"dataset/{name}.jsonl").read_bytes().splitlines()
    ]
    assert len(rows) == 1587
    for row in rows:
        text = row["text"]
        assert "http://" not in text and "https://" not in text
        assert "\n" not in text and "  " not in text and text == text.strip()
        assert "&amp;" not in text and "&gt;" not in text


def test_zip_folder_and_tweets_js_read_the_same(smithjd, tmp_path):
    archive = zip_folder(smithjd, tmp_path / "export.zip")
    nested = zip_folder(smithjd, tmp_path / "nested.zip", prefix="twitter-2022-11-01/")
    from_folder = read_source(str(smithjd), handle="smithjd")
    for source in (archive, nested, smithjd / "data/tweets.js"):
        other = read_source(str(source), handle="smithjd")
        assert other.posts == from_folder.posts


def test_missing_handle_is_a_clear_error_and_writes_nothing(smithjd, tmp_path):
    result = run_cli("prepare", smithjd, "--out", tmp_path / "run", expect=2)
    assert "--handle" in result.stderr and "account.js" in result.stderr
    assert not (tmp_path / "run").exists()


def test_account_and_profile_name_the_account(tmp_path):
    export = write_x_export(
        tmp_path / "export",
        [tweet("1", "Hello there, this is a post")],
        account={"username": "janedoe", "accountDisplayName": "Jane Doe", "accountId": "9"},
        profile={
            "avatarMediaUrl": "https://pbs.twimg.com/profile_images/1/a.jpg",
            "description": {"bio": "Writes things"},
        },
    )
    collected = read_source(str(export))
    assert collected.account.handle == "janedoe"
    assert collected.account.display_name == "Jane Doe"
    assert collected.account.avatar_url == "https://pbs.twimg.com/profile_images/1/a.jpg"
    assert collected.account.description == "Writes things"
    assert collected.posts[0].url == "https://x.com/janedoe/status/1"
    # An explicit --handle wins over the export's.
    assert read_source(str(export), handle="other").account.handle == "other"


def test_a_single_tweets_js_reads_only_the_files_beside_it(tmp_path):
    """Named alone (say, in Downloads), tweets.js is read with its neighbours, not with
    whatever other export lies in a folder below."""
    write_x_export(tmp_path / "downloads", [tweet("1", "Hello there, this is a post")])
    write_x_export(
        tmp_path / "downloads/data/other-export",
        [tweet("2", "Someone else's post")],
        account={"username": "someone_else"},
    )
    single = tmp_path / "downloads/data/tweets.js"
    assert [p.id for p in read_source(str(single), handle="me").posts] == ["1"]
    result = run_cli("collect", single, "--out", tmp_path / "run", expect=2)
    assert "pass --handle" in result.stderr


def test_older_tweet_js_without_wrapper(tmp_path):
    export = write_x_export(
        tmp_path / "old",
        [tweet("1", "An old style export entry here"), tweet("2", "RT @a: hi")],
        kind="tweet",
        wrapped=False,
    )
    posts = read_source(str(export), handle="old").posts
    assert [p.id for p in posts] == ["1", "2"]
    assert [p.is_repost for p in posts] == [False, True]


def test_multi_part_export_reads_every_part(tmp_path):
    tweets = [tweet(str(i), f"post number {i} has enough words") for i in range(10)]
    export = write_x_export(tmp_path / "parts", tweets, parts=3)
    assert sorted(p.id for p in read_source(str(export), handle="me").posts) == sorted(
        str(i) for i in range(10)
    )


def test_long_posts_come_from_note_tweet(tmp_path):
    long_text = "This is a long post " + "that keeps going " * 30 + "and ends here."
    truncated = long_text[:270] + "… https://t.co/abc"
    export = write_x_export(
        tmp_path / "notes",
        [
            tweet("1", truncated, "Thu Jan 05 12:34:56 +0000 2023"),
            tweet("2", "A short post written the same second", "Thu Jan 05 12:34:56 +0000 2023"),
        ],
        notes=[
            {
                "noteTweetId": "77",
                "createdAt": "2023-01-05T12:34:56.000Z",
                "core": {"text": long_text, "urls": []},
            }
        ],
    )
    posts = {p.id: p for p in read_source(str(export), handle="me").posts}
    assert posts["1"].text == long_text
    assert posts["2"].text == "A short post written the same second"


def test_deleted_tweets_are_left_out(tmp_path):
    export = write_x_export(
        tmp_path / "del",
        [tweet("1", "A post that stayed published")],
        extra_files={"deleted-tweets.js": ytd("deleted_tweets", [{"tweet": tweet("2", "gone")}])},
    )
    assert [p.id for p in read_source(str(export), handle="me").posts] == ["1"]


def test_replies_quotes_and_protected_periods(tmp_path):
    export = write_x_export(
        tmp_path / "flags",
        [
            tweet("1", "@bob I do agree with you", reply_to="5"),
            tweet(
                "2", "Look at this one https://t.co/q", urls=("https://twitter.com/bob/status/99",)
            ),
            tweet("3", "Written while protected, for followers", "Sun Jun 05 10:00:00 +0000 2022"),
        ],
        extra_files={
            "protected-history.js": ytd(
                "protected_history",
                [
                    {
                        "protectedHistory": {
                            "protectedAt": "2022-06-01T00:00:00.000Z",
                            "action": "Protect",
                        }
                    },
                    {
                        "protectedHistory": {
                            "protectedAt": "2022-07-01T00:00:00.000Z",
                            "action": "Unprotect",
                        }
                    },
                ],
            )
        },
    )
    posts = {p.id: p for p in read_source(str(export), handle="me").posts}
    assert posts["1"].is_reply and not posts["1"].is_quote
    assert posts["2"].is_quote and not posts["2"].is_reply
    assert posts["3"].visibility == "followers" and posts["1"].visibility == "public"


@pytest.mark.parametrize(
    "created", ["Wed Oct 19 20:07:25 +0000 2022", "Wed Oct 19 22:07:25 +0200 2022"]
)
def test_created_at_is_utc_iso(tmp_path, created):
    export = write_x_export(tmp_path / "t", [tweet("1", "some words here", created)])
    assert read_source(str(export), handle="me").posts[0].created_at == "2022-10-19T20:07:25Z"


@pytest.mark.parametrize("name", ["Jane [/she]", "Jane [she/her]", "Jane [bold]D[/bold] :fire:"])
def test_a_display_name_is_shown_as_written(tmp_path, name):
    """A display name is anyone's text: brackets are not markup (which crashed on
    "[/she]" and hid "[she/her]"), ":fire:" not an emoji code."""
    export = write_x_export(
        tmp_path / "export",
        [tweet(str(i), t) for i, t in enumerate(sentences(600))],
        account={"username": "jane", "accountDisplayName": name},
    )
    result = run_cli("prepare", export, "--out", tmp_path / "run")
    header = next(line for line in result.stdout.splitlines() if "Data" in line)
    assert name in header
