"""The Mastodon account export reader, on the real export and on focused cases."""

from __future__ import annotations

import json

import orjson
from conftest import run_cli
from exports import PUBLIC, boost, sentences, status, write_mastodon_export

from huggingtweets import read_source
from huggingtweets.collect.htmltext import html_to_text
from huggingtweets.core.textrules import clean_text


def dataset_texts(run) -> list[str]:
    return [
        orjson.loads(line)["text"]
        for name in ("train", "valid")
        for line in (run / f"dataset/{name}.jsonl").read_bytes().splitlines()
    ]


def test_real_export_statistics_and_privacy(dealingwith, tmp_path):
    run = tmp_path / "run"
    result = run_cli("prepare", dealingwith, "--out", run)
    stats = json.loads((run / "dataset/stats.json").read_text())
    (account,) = stats["accounts"]
    assert account["handle"] == "dealingwith@indieweb.social"
    assert account["platform"] == "mastodon"
    assert account["downloaded"] == 1586
    assert account["retweets"] == 326  # Announce activities (boosts)
    assert account["private"] == 75  # 40 followers-only + 35 direct messages
    assert sum(account[c] for c in stats["categories"]) == account["downloaded"]
    assert "Boosts" in result.stdout and "Private posts" in result.stdout

    # Independently of our reader: the private posts of the export never reach the dataset,
    # while unlisted ones (public, just not on timelines) do.
    outbox = json.loads((dealingwith / "outbox.json").read_text())["orderedItems"]
    creates = [a for a in outbox if a["type"] == "Create"]
    private = [a for a in creates if PUBLIC not in a["to"] and PUBLIC not in a["cc"]]
    unlisted = [a for a in creates if PUBLIC not in a["to"] and PUBLIC in a["cc"]]
    assert len(private) == 75 and len(unlisted) == 16
    texts = set(dataset_texts(run))
    assert texts
    for activity in private:
        cleaned = clean_text(html_to_text(activity["object"]["content"]))
        assert cleaned not in texts, cleaned
    # Nor anywhere else in the run directory: posts/ keeps their records, not their words.
    written = "".join(p.read_text("utf-8") for p in run.rglob("*") if p.is_file())
    for activity in private:
        words = html_to_text(activity["object"]["content"])
        assert not words or words not in written, words
    assert any(clean_text(html_to_text(a["object"]["content"])) in texts for a in unlisted)


def test_visibility_boosts_questions_and_account(tmp_path):
    followers = "https://example.social/users/alice/followers"
    export = write_mastodon_export(
        tmp_path / "m",
        [
            status("1", "<p>A public post with several words</p>"),
            status("2", "<p>An unlisted post with several words</p>", to=[followers], cc=[PUBLIC]),
            status("3", "<p>For my followers only, several words</p>", to=[followers], cc=[]),
            status(
                "4",
                "<p>A direct message to bob, secret</p>",
                to=["https://other.social/users/bob"],
                cc=[],
            ),
            status("5", "<p>Which option do you like best?</p>", kind="Question"),
            status("6", "<p>Replying to you with words</p>", reply_to="https://x.social/1"),
            boost("7"),
        ],
    )
    collected = read_source(str(export))
    assert collected.account.handle == "alice@example.social"
    assert collected.account.display_name == "Alice"
    assert collected.account.description == "I write & read."
    posts = {p.id: p for p in collected.posts}
    assert [posts[i].visibility for i in "1234"] == ["public", "unlisted", "followers", "direct"]
    assert posts["5"].text == "Which option do you like best?"
    assert posts["6"].is_reply and posts["7"].is_repost
    assert posts["1"].url == "https://example.social/@alice/1"


def test_html_to_text_keeps_what_a_reader_sees():
    html = (
        '<p><span class="h-card"><a href="https://x.social/@bob" class="u-url mention">@<span>bob'
        '</span></a></span> see <a href="https://ex.com/a/b" rel="nofollow">'
        '<span class="invisible">https://</span><span class="ellipsis">ex.com/a</span>'
        '<span class="invisible">/b</span>'
        '</a> &amp; <a href="https://x.social/tags/tea" class="mention hashtag">#<span>tea</span>'
        "</a></p><p>line one<br>line two</p>"
    )
    assert html_to_text(html) == "@bob see https://ex.com/a/b & #tea\n\nline one\nline two"


def test_zip_and_outbox_json_read_the_same(dealingwith, tmp_path):
    from exports import zip_folder

    archive = zip_folder(dealingwith, tmp_path / "archive.zip")
    folder = read_source(str(dealingwith))
    assert read_source(str(archive)).posts == folder.posts
    assert read_source(str(dealingwith / "outbox.json")).account == folder.account


def test_html_entities_are_decoded_once(tmp_path):
    """The post reads "&amp;lt;" (its HTML: "&amp;amp;lt;"); decoding it a second time in
    prepare made it "&lt;"."""
    written = "To show &lt; in HTML, write &amp;lt; and more words"
    export = write_mastodon_export(
        tmp_path / "m",
        [status(str(i), f"<p>{t}</p>") for i, t in enumerate(sentences(600))]
        + [status("html", "<p>" + written.replace("&", "&amp;") + "</p>")],
    )
    run = tmp_path / "run"
    run_cli("prepare", export, "--validation-split-percentage", "0", "--out", run)
    assert written in dataset_texts(run)


def test_times_are_utc(tmp_path):
    activity = status("1", "<p>A post written at night in Paris</p>")
    activity["object"]["published"] = "2023-01-02T03:04:05+01:00"
    export = write_mastodon_export(tmp_path / "m", [activity, boost("2")])
    run_cli("collect", export, "--out", tmp_path / "run")
    records = (tmp_path / "run/posts/alice@example.social.jsonl").read_text().splitlines()
    times = [json.loads(line)["created_at"] for line in records]
    assert times == ["2023-01-02T02:04:05Z", "2023-01-02T03:04:05Z"]


def test_the_stricter_of_a_create_and_its_post_audience_wins(tmp_path):
    """A Create addressed publicly whose post is followers-only (or the other way round)
    counts as private: its words reach neither the dataset nor posts/."""
    followers = "https://example.social/users/alice/followers"

    def post(status_id: str, text: str, outer: tuple, inner: tuple | None) -> dict:
        activity = status(status_id, f"<p>{text}</p>", to=list(outer[0]), cc=list(outer[1]))
        if inner is None:
            del activity["object"]["to"], activity["object"]["cc"]
        else:
            activity["object"]["to"], activity["object"]["cc"] = list(inner[0]), list(inner[1])
        return activity

    public, unlisted = ([PUBLIC], [followers]), ([followers], [PUBLIC])
    only_followers, direct = ([followers], []), (["https://other.social/users/bob"], [])
    export = write_mastodon_export(
        tmp_path / "m",
        [status(str(i), f"<p>{t}</p>") for i, t in enumerate(sentences(600))]
        + [
            post("a", "secret words for my followers alone", public, only_followers),
            post("b", "secret words the post itself gives bob", unlisted, direct),
            post("c", "secret words the activity keeps to followers", only_followers, public),
            post("d", "public words without an audience of their own", public, None),
            post("e", "unlisted words of an unlisted post inside", public, unlisted),
        ],
    )
    posts = {p.id: p for p in read_source(str(export)).posts}
    assert [posts[i].visibility for i in "abcde"] == [
        "followers", "direct", "followers", "public", "unlisted",
    ]  # fmt: skip
    run = tmp_path / "run"
    run_cli("prepare", export, "--out", run)
    assert json.loads((run / "dataset/stats.json").read_text())["accounts"][0]["private"] == 3
    written = "".join(p.read_text("utf-8") for p in run.rglob("*") if p.is_file())
    assert "secret words" not in written
    assert "public words without an audience" in " ".join(dataset_texts(run))
