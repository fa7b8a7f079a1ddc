"""Bad input gets one clear line and exit code 2; nothing half-written, nothing outside RUN_DIR."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from conftest import run_cli
from exports import sentences, status, tweet, write_mastodon_export, write_x_export, ytd, zip_folder

from huggingtweets.core.runs import atomic_open


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def fails_cleanly(tmp_path: Path, *args: object, says: str) -> None:
    """Run prepare; check one line, exit 2, no traceback, nothing written anywhere."""
    before = files_under(tmp_path)
    result = run_cli("prepare", *args, "--out", tmp_path / "run", expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and says in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert files_under(tmp_path) == before  # no run dir, no temporary file, nothing else


@pytest.fixture
def export(tmp_path) -> Path:
    return write_x_export(
        tmp_path / "export", [tweet(str(i), t) for i, t in enumerate(sentences(600))]
    )


def test_missing_file(tmp_path):
    fails_cleanly(tmp_path, tmp_path / "nope.zip", says="file not found")


def test_unknown_format(tmp_path):
    (tmp_path / "posts.docx").write_bytes(b"PK\x03\x04 not really")
    fails_cleanly(tmp_path, tmp_path / "posts.docx", says="unknown format")


def test_folder_that_is_no_export(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder/readme.md").write_text("hi")
    fails_cleanly(tmp_path, tmp_path / "folder", says="not an X/Twitter export")


def test_unrecognised_spec_lists_accepted_forms(tmp_path):
    fails_cleanly(tmp_path, "notasource", says="accepted:")


def test_truncated_zip(tmp_path, export):
    whole = zip_folder(export, tmp_path / "whole.zip").read_bytes()
    (tmp_path / "whole.zip").unlink()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    fails_cleanly(tmp_path, tmp_path / "cut.zip", says="not a readable zip archive")


def test_corrupt_zip_member(tmp_path, export):
    path = zip_folder(export, tmp_path / "bad.zip")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("data/tweets.js")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    data[start : start + 50] = bytes(50)  # damage the compressed data, not the directory
    path.write_bytes(bytes(data))
    fails_cleanly(tmp_path, path, "--handle", "me", says="corrupt or truncated")


def test_password_protected_zip(tmp_path, export):
    path = zip_folder(export, tmp_path / "locked.zip")
    data = bytearray(path.read_bytes())
    # Mark every entry encrypted (general-purpose flag bit 0), in the local headers and in
    # the central directory, as a zip tool does when it encrypts.
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at >= 0:
            data[at + flag_at] |= 1
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    fails_cleanly(tmp_path, path, "--handle", "me", says="password-protected")


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("account.js", ytd("account", [{"account": "me"}]), "unexpected content in"),
        ("profile.js", ytd("profile", [{"profile": {"description": "bio"}}]), "data/profile.js"),
        (
            "note-tweet.js",
            ytd("note_tweet", [{"noteTweet": {"createdAt": 5, "core": {"text": "t"}}}]),
            "$[0].noteTweet.createdAt",
        ),
        (
            "protected-history.js",
            ytd("protected_history", [{"protectedHistory": {"protectedAt": "01/06/2022"}}]),
            "unexpected date '01/06/2022'",
        ),
    ],
)
def test_damaged_export_files_name_what_is_wrong(tmp_path, export, name, content, says):
    (export / "data" / name).write_text(content, "utf-8")
    fails_cleanly(tmp_path, export, "--handle", "me", says=says)


@pytest.mark.parametrize(
    "date",
    [
        "yesterday",
        "Wed Oct 19 20:07:25 +0000 20X2",  # the right length and zone, no year
        "Wed Feb 30 20:07:25 +0000 2022",
        "Wed Oct 19 24:07:25 +0000 2022",
    ],
)
def test_a_date_that_is_no_date(tmp_path, date):
    export = write_x_export(
        tmp_path / "export",
        [tweet(str(i), t) for i, t in enumerate(sentences(600))] + [tweet("x", "hi", date)],
    )
    fails_cleanly(tmp_path, export, "--handle", "me", says="data/tweets.js: unexpected date")


def test_zip_entry_pointing_outside_the_archive(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data/tweets.js", "window.YTD.tweets.part0 = []")
        archive.writestr("../x", "escaped")
    fails_cleanly(tmp_path, path, says="pointing outside the archive ('../x')")
    assert not (tmp_path.parent / "x").exists()


def test_invalid_json_names_file_and_position(tmp_path, export):
    path = export / "data/tweets.js"
    lines = path.read_text().splitlines()
    lines[7] = lines[7] + ",,"
    path.write_text("\n".join(lines))
    fails_cleanly(tmp_path, export, "--handle", "x", says="invalid JSON in")
    result = run_cli("prepare", export, "--handle", "x", "--out", tmp_path / "r", expect=2)
    assert "data/tweets.js at line 8, column" in result.stderr


# Text with characters of two, three and four bytes in UTF-8, before the error.
WIDE = "Café ☕ 日本語 🙂"
MISSING_COLON = '"note" "x"'  # a key without its ':'


def _break_line(lines: list[str], at: int) -> tuple[int, int]:
    """Put a key without its ':' at the end of ``lines[at]`` (a JSON field or object);
    return the line and column (1-based, in characters) of the error."""
    line = lines[at]
    comma = line.endswith(",")
    body = line.removesuffix(",")
    if body.endswith("}"):
        lines[at] = body[:-1] + ", " + MISSING_COLON + "}" + "," * comma
    else:
        lines[at] = body + ", " + MISSING_COLON + "," * comma
    return at + 1, lines[at].index(MISSING_COLON) + len('"note" ') + 1


def _broken_x_export(root: Path) -> tuple[Path, str, int, int]:
    export = write_x_export(
        root, [tweet(str(i), f"{WIDE} {t}") for i, t in enumerate(sentences(600))]
    )
    path = export / "data/tweets.js"
    lines = path.read_text("utf-8").splitlines()
    line, column = _break_line(lines, [i for i, s in enumerate(lines) if "full_text" in s][40])
    path.write_text("\n".join(lines), "utf-8")
    return export, "data/tweets.js", line, column


def _broken_mastodon_export(root: Path) -> tuple[Path, str, int, int]:
    export = write_mastodon_export(
        root, [status(str(i), f"<p>{WIDE} {t}</p>") for i, t in enumerate(sentences(600))]
    )
    outbox = json.loads((export / "outbox.json").read_text("utf-8"))
    lines = json.dumps(outbox, indent=2, ensure_ascii=False).splitlines()
    line, column = _break_line(lines, [i for i, s in enumerate(lines) if '"content"' in s][40])
    (export / "outbox.json").write_text("\n".join(lines), "utf-8")
    return export, "outbox.json", line, column


def _broken_jsonl(root: Path) -> tuple[Path, str, int, int]:
    root.mkdir()
    lines = [json.dumps({"text": f"{WIDE} {t}"}, ensure_ascii=False) for t in sentences(600)]
    line, column = _break_line(lines, 40)
    (root / "posts.jsonl").write_text("\n".join(lines), "utf-8")
    return root / "posts.jsonl", "posts.jsonl", line, column


@pytest.mark.parametrize("build", [_broken_x_export, _broken_mastodon_export, _broken_jsonl])
def test_invalid_json_position_in_characters_and_the_whole_reason(tmp_path, build):
    """Line and column count characters, not bytes (non-ASCII text precedes the error),
    and orjson's reason is not cut at its own ':'."""
    source, name, line, column = build(tmp_path / "source")
    fails_cleanly(tmp_path, source, "--handle", "me", says=f"{name} at line {line}, ")
    result = run_cli("prepare", source, "--handle", "me", "--out", tmp_path / "r", expect=2)
    assert (
        f"{name} at line {line}, column {column}: unexpected character, expected ':' after key"
    ) in result.stderr


def test_account_with_no_posts(tmp_path):
    export = write_x_export(tmp_path / "empty", [])
    fails_cleanly(tmp_path, export, "--handle", "me", says="no posts found")


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl"])
def test_bytes_that_are_not_utf8(tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    text = (
        '{"text": "caf\xe9 au lait and more words"}'
        if suffix == ".jsonl"
        else ("text\ncaf\xe9 au lait and more words\n")
    )
    path.write_bytes(text.encode("latin-1"))
    fails_cleanly(tmp_path, path, says="is not UTF-8")


def test_non_utf8_inside_an_export(tmp_path, export):
    path = export / "data/tweets.js"
    path.write_bytes(path.read_bytes().replace(b"post 3 ", b"post \xff3 "))
    fails_cleanly(tmp_path, export, "--handle", "me", says="byte 0xff")


@pytest.mark.parametrize("handle", ["../../etc", "a/b", "..", ".hidden", ""])
def test_handle_with_path_characters(tmp_path, export, handle):
    fails_cleanly(tmp_path, export, "--handle", handle, says="invalid handle")


def test_more_handles_than_sources(tmp_path, export):
    fails_cleanly(tmp_path, export, "--handle", "a", "--handle", "b", says="--handle values")


def test_the_same_account_twice(tmp_path):
    fails_cleanly(tmp_path, "sample:romeo", "sample:romeo", says="given twice")


def test_prepare_without_source_or_posts(tmp_path):
    fails_cleanly(tmp_path, says="no collected posts")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "stats.json"
    target.write_text("old")
    with pytest.raises(OSError), atomic_open(target) as handle:
        handle.write(b"new, half")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["stats.json"]


def test_a_failed_prepare_keeps_the_previous_dataset(tmp_path):
    run = tmp_path / "run"
    run_cli("prepare", "sample:romeo", "--out", run)
    before = {p: p.read_bytes() for p in (run / "dataset").iterdir()}
    (tmp_path / "tiny.txt").write_text("a few words only here\n" * 3)
    run_cli("prepare", tmp_path / "tiny.txt", "--out", run, expect=2)
    assert {p: p.read_bytes() for p in (run / "dataset").iterdir()} == before
    assert sorted(os.listdir(run)) == ["dataset", "posts"]


def test_a_failed_prepare_leaves_posts_as_they_were(tmp_path):
    """The files' checks come before posts/ is written: a prepare that fails (too little
    text here) keeps the posts of the previous, good one byte for byte."""
    export = write_x_export(
        tmp_path / "export",
        [tweet(str(i), t) for i, t in enumerate(sentences(600))],
        account={"username": "jane", "accountDisplayName": "Jane"},
    )
    run = tmp_path / "run"
    run_cli("prepare", export, "--out", run)
    before = {p.name: p.read_bytes() for p in (run / "posts").iterdir()}
    assert set(before) == {"jane.jsonl", "jane.account.json"}
    small = tmp_path / "small.txt"
    small.write_text("".join(f"a short line {i}\n" for i in range(100)), "utf-8")
    result = run_cli("prepare", small, "--handle", "jane", "--out", run, expect=2)
    assert "fewer than the 6,000 characters" in result.stderr
    assert {p.name: p.read_bytes() for p in (run / "posts").iterdir()} == before
    # Into a fresh run directory, nothing at all.
    (tmp_path / "fresh").mkdir()
    fails_cleanly(tmp_path / "fresh", small, says="fewer than the 6,000 characters")


def test_files_written_safely_get_the_permissions_of_a_plain_write(tmp_path):
    """Temporary names (0600 files, 0700 folders) must not make a run unreadable to
    others once renamed into place: the umask decides, as for any other file."""
    umask = os.umask(0o022)
    try:
        run = tmp_path / "run"
        run_cli("prepare", "sample:romeo", "--out", run)
    finally:
        os.umask(umask)
    assert (run / "dataset").stat().st_mode & 0o777 == 0o755
    written = [*(run / "dataset").iterdir(), *(run / "posts").iterdir()]
    assert written and {p.stat().st_mode & 0o777 for p in written} == {0o644}


@pytest.mark.parametrize(
    "command", ["collect", "prepare", "samples", "train", "generate", "card", "demo"]
)
def test_commands_have_help_with_examples(command):
    result = run_cli(command, "--help")
    assert result.stdout.startswith("Usage: ") and "Examples:" in result.stdout
    takes_sources = command in ("collect", "prepare", "train")
    assert ("SOURCE is one of:" in result.stdout) == takes_sources


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--dedupe",), "prepare options apply to SOURCEs: give them with --out RUN_DIR"),
        (("--handle", "me"), "--handle, --text-column and the live options apply to SOURCEs"),
        (("--revision", "dev"), "--private and --revision apply with --push-to-hub"),
        (("--push-to-hub", "--no-card"), "publishes the model with its card: drop --no-card"),
        (("--output-dir", "a-file"), "--output-dir a-file is a file: give a folder"),
    ],
)
def test_train_refuses_options_that_do_not_apply_before_any_work(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    Path("a-file").write_text("not a folder")
    Path("run").mkdir()
    result = run_cli("train", "run", *args, expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert files_under(tmp_path / "run") == []


def test_train_bot_names_the_fields_from_python(tmp_path):
    from huggingtweets.core.options import OptionError
    from huggingtweets.pipeline import train_bot
    from huggingtweets.publish.hub import PushOptions

    with pytest.raises(OptionError, match="hub_private_repo and hub_revision apply with"):
        train_bot([tmp_path], push_options=PushOptions(hub_private_repo=True))
