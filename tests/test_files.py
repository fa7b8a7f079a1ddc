"""Plain-file sources: CSV, JSON Lines, text; and the bundled sample."""

from __future__ import annotations

import json

from conftest import run_cli
from exports import sentences

from huggingtweets import read_source


def stats(run) -> dict:
    return json.loads((run / "dataset/stats.json").read_text())["accounts"][0]


def test_csv_text_column_found_among_common_names(tmp_path):
    path = tmp_path / "posts.csv"
    rows = ["id,created_at,full_text"] + [
        f'{i},2023-01-01,"{t}"' for i, t in enumerate(sentences(600))
    ]
    rows.append('999,2023-01-01,"RT @bob: a retweet of bob, with words"')
    path.write_text("\n".join(rows) + "\n", "utf-8")
    run = tmp_path / "run"
    run_cli("prepare", path, "--handle", "writer", "--out", run)
    account = stats(run)
    assert account["handle"] == "writer"
    assert account["downloaded"] == 601 and account["retweets"] == 1 and account["kept"] == 600


def test_csv_text_column_option_and_missing_column(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("body,when\n" + "\n".join(f'"{t}",x' for t in sentences(600)), "utf-8")
    result = run_cli("prepare", path, "--out", tmp_path / "bad", expect=2)
    assert "no text column" in result.stderr and "--text-column" in result.stderr
    run_cli("prepare", path, "--text-column", "body", "--out", tmp_path / "run")
    assert stats(tmp_path / "run")["kept"] == 600
    assert stats(tmp_path / "run")["handle"] == "posts"  # the file name when no --handle


def test_jsonl_objects_and_our_own_records_round_trip(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"content": t}) + "\n" for t in sentences(600)), "utf-8")
    run = tmp_path / "run"
    run_cli("prepare", path, "--out", run)
    first = stats(run)
    # The collected records are themselves a source (and keep their account).
    run_cli("prepare", run / "posts/mine.jsonl", "--out", tmp_path / "again")
    assert stats(tmp_path / "again")["kept"] == first["kept"] == 600
    # Without a SOURCE, prepare re-uses what RUN_DIR/posts holds.
    run_cli("prepare", "--out", run, "--dedupe")
    assert stats(run)["kept"] == 600


def test_text_file_one_post_a_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(sentences(600)) + "\n\nshort one\n", "utf-8")
    run = tmp_path / "run"
    run_cli("prepare", path, "--out", run)
    account = stats(run)
    assert account["downloaded"] == 601 and account["short"] == 1 and account["kept"] == 600


def test_bundled_sample_speakers_as_accounts(tmp_path):
    romeo = read_source("sample:romeo")
    assert romeo.account.display_name == "Romeo" and romeo.account.platform == "sample"
    assert len(romeo.posts) > 150
    assert romeo.posts[0].text.startswith("Is the day so young?")
    result = run_cli("samples", "--top", "3")
    assert result.stdout.count("sample:") == 3
    bad = run_cli("prepare", "sample:nobody", "--out", tmp_path / "x", expect=2)
    assert "no speaker 'nobody'" in bad.stderr


def test_collect_alone_writes_posts_and_account_only(tmp_path):
    run = tmp_path / "run"
    result = run_cli("collect", "sample:romeo", "sample:juliet", "--out", run)
    assert "@romeo: 160 posts" in result.stdout
    assert sorted(p.name for p in (run / "posts").iterdir()) == [
        "juliet.account.json",
        "juliet.jsonl",
        "romeo.account.json",
        "romeo.jsonl",
    ]
    assert not (run / "dataset").exists()
    account = json.loads((run / "posts/romeo.account.json").read_text())
    assert account == {
        "platform": "sample",
        "handle": "romeo",
        "display_name": "Romeo",
        "avatar_url": None,
        "description": None,
    }
    # prepare then works on what collect wrote.
    run_cli("prepare", "--out", run)
    accounts = json.loads((run / "dataset/stats.json").read_text())["accounts"]
    assert {a["handle"]: a["display_name"] for a in accounts} == {
        "romeo": "Romeo",
        "juliet": "Juliet",
    }


def test_visibility_saved_with_posts_is_respected(tmp_path):
    """Statuses saved from Mastodon's API say "private" for followers-only: such posts, and
    any of an audience we do not know, are private and never reach the dataset."""
    secret = ["for my followers only", "a direct message", "an audience we do not know"]
    rows = [{"content": t, "visibility": "public"} for t in sentences(600)]
    rows += [{"content": t, "visibility": "unlisted"} for t in sentences(5, tag="quiet ")]
    rows += [
        {"content": f"{text}, with enough words", "visibility": visibility}
        for text, visibility in zip(secret, ["private", "direct", "limited"], strict=True)
    ]
    path = tmp_path / "statuses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    csv_path = tmp_path / "statuses.csv"
    csv_path.write_text(
        "text,visibility\n" + "".join(f'"{r["content"]}",{r["visibility"]}\n' for r in rows),
        "utf-8",
    )
    for source in (path, csv_path):
        run = tmp_path / f"run-{source.suffix}"
        run_cli("prepare", source, "--out", run)
        account = stats(run)
        assert (account["private"], account["kept"]) == (3, 605)
        dataset = (run / "dataset/train.jsonl").read_text() + (
            run / "dataset/valid.jsonl"
        ).read_text()
        assert "quiet post" in dataset
        assert not any(text in dataset for text in secret)
