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


# What a file may hold as a post's time, and the record's created_at (UTC ISO-8601).
DATES = [
    ("2022-10-19T20:07:25Z", "2022-10-19T20:07:25Z"),
    ("2023-01-01", "2023-01-01T00:00:00Z"),  # a date alone: midnight UTC
    ("2023-01-01 12:34", "2023-01-01T12:34:00Z"),  # no zone: UTC
    ("2022-10-19T22:07:25.123+02:00", "2022-10-19T20:07:25Z"),
    ("2022-10-19T15:07:25-0500", "2022-10-19T20:07:25Z"),
    ("Wed Oct 19 20:07:25 +0200 2022", "2022-10-19T18:07:25Z"),  # X's own form
    ("Wed, 19 Oct 2022 20:07:25 GMT", "2022-10-19T20:07:25Z"),  # RFC 2822
    ("Wed, 19 Oct 2022 16:07:25 -0400", "2022-10-19T20:07:25Z"),
    ("1666210045", "2022-10-19T20:07:25Z"),  # Unix seconds
    ("1666210045123", "2022-10-19T20:07:25Z"),  # Unix milliseconds
    ("01/02/2023", None),  # January 2 or February 1: not guessed
    ("2023-02-30", None),
    ("20230101", None),  # not a Unix time of 1970
    ("yesterday", None),
    ("", None),
]


def test_created_at_is_utc_iso_or_none_in_csv_and_jsonl(tmp_path):
    texts = sentences(len(DATES))
    csv_path = tmp_path / "dated.csv"
    csv_path.write_text(
        "id,date,text\n"
        + "".join(
            f'{i},"{d}","{t}"\n' for i, ((d, _), t) in enumerate(zip(DATES, texts, strict=True))
        ),
        "utf-8",
    )
    jsonl_path = tmp_path / "dated.jsonl"
    rows = [
        {"id": i, "created_at": d, "text": t}
        for i, ((d, _), t) in enumerate(zip(DATES, texts, strict=True))
    ]
    rows += [{"id": "n1", "created_at": 1666210045, "text": "a number of seconds"}]
    rows += [{"id": "n2", "created_at": 1666210045123, "text": "a number of milliseconds"}]
    rows += [{"id": "n3", "created_at": True, "text": "not a time"}]
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    wanted = {str(i): iso for i, (_, iso) in enumerate(DATES)}
    for path, extra in (
        (csv_path, {}),
        (jsonl_path, {"n1": DATES[0][1], "n2": DATES[0][1], "n3": None}),
    ):
        run = tmp_path / f"run-{path.suffix}"
        run_cli("collect", path, "--out", run)
        records = [
            json.loads(line) for line in (run / "posts/dated.jsonl").read_text().splitlines()
        ]
        assert {r["id"]: r["created_at"] for r in records} == {**wanted, **extra}


def test_our_own_records_with_another_time_form_are_normalized(tmp_path):
    path = tmp_path / "records.jsonl"
    rows = [
        {"platform": "file", "id": str(i), "author": "me", "created_at": "2023-01-01", "text": t}
        for i, t in enumerate(sentences(3))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    run_cli("collect", path, "--out", tmp_path / "run")
    records = (tmp_path / "run/posts/me.jsonl").read_text().splitlines()
    assert {json.loads(line)["created_at"] for line in records} == {"2023-01-01T00:00:00Z"}


def test_a_handle_is_made_from_the_file_name(tmp_path):
    path = tmp_path / "my posts (2023).csv"
    path.write_text("text\n" + "\n".join(f'"{t}"' for t in sentences(600)), "utf-8")
    run = tmp_path / "run"
    run_cli("prepare", path, "--out", run)
    assert stats(run)["handle"] == "my_posts_2023_"
    assert (run / "posts/my_posts_2023_.jsonl").exists()
    # Nothing usable in the name: the error says where the handle came from.
    unusable = tmp_path / "¿¡!.txt"
    unusable.write_text("\n".join(sentences(600)), "utf-8")
    result = run_cli("prepare", unusable, "--out", tmp_path / "other", expect=2)
    (line,) = result.stderr.strip().splitlines()
    assert "file name '¿¡!.txt'" in line and "--handle" in line
    assert not (tmp_path / "other").exists()
    # --handle still wins, and is still checked as given.
    run_cli("prepare", unusable, "--handle", "mine", "--out", tmp_path / "other")
    result = run_cli("prepare", path, "--handle", "my posts", "--out", tmp_path / "x", expect=2)
    assert "invalid handle 'my posts'" in result.stderr


def test_every_speaker_the_sample_lists_can_be_collected(tmp_path):
    """`huggingtweets samples` lists handles made from the speakers' names ("SENATORS, &C"
    included): each is a valid handle, and collecting it works."""
    from huggingtweets.collect.sample import speakers
    from huggingtweets.core.records import check_handle

    for handle in speakers():
        assert check_handle(handle) == handle
    run_cli("collect", "sample:senators_c", "--out", tmp_path)
    assert (tmp_path / "posts" / "senators_c.jsonl").read_text("utf-8").count("\n") == 2


def test_a_new_file_format_is_one_registration(tmp_path, monkeypatch):
    """A format module registers itself; detection, the accepted forms and the missing-file
    hint all follow, with no edit elsewhere."""
    from huggingtweets.collect import registry as sources
    from huggingtweets.core.records import Account, Collected, Post

    def read_tsv(given, options):
        handle = options.handle or "tabs"
        lines = given.path.read_text("utf-8").splitlines()[1:]
        posts = [
            Post("file", str(i), handle, None, line.split("\t")[1]) for i, line in enumerate(lines)
        ]
        return Collected(Account("file", handle), posts)

    monkeypatch.setattr(sources, "_FILE_FORMATS", list(sources._FILE_FORMATS))
    monkeypatch.setattr(sources, "_FILE_SUFFIXES", sources._FILE_SUFFIXES)
    sources.register_file_format(
        "tsv", lambda given: given.name.endswith(".tsv"), read_tsv, ".tsv", suffixes=(".tsv",)
    )
    path = tmp_path / "posts.tsv"
    path.write_text("id\ttext\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(sentences(600))))
    run_cli("prepare", path, "--out", tmp_path / "run")
    assert stats(tmp_path / "run")["kept"] == 600
    assert sources.accepted_forms()[0].endswith(".csv, .jsonl, .txt, .tsv")
    missing = run_cli("prepare", "gone.tsv", "--out", tmp_path / "x", expect=2)
    assert "file not found: gone.tsv" in missing.stderr
    other = tmp_path / "posts.doc"
    other.write_text("text")
    unknown = run_cli("prepare", other, "--out", tmp_path / "y", expect=2)
    assert "unknown format" in unknown.stderr and ".txt or .tsv" in unknown.stderr
