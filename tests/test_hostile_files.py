"""Hostile files (issue 7): inputs that hung, exhausted memory, corrupted data silently or
raised a traceback. Each test failed on the code before its fix; interrupts are real
signals sent to real subprocesses, with bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from exports import (
    boost,
    deflated,
    deflated_run,
    sentences,
    status,
    tweet,
    write_mastodon_export,
    write_raw_zip,
    write_x_export,
    ytd,
    zip_folder,
)

from huggingtweets import read_source
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError


def stats(run: Path) -> dict:
    return json.loads((run / "dataset/stats.json").read_text())["accounts"][0]


def last_error(result) -> str:
    """The error line of a command that failed cleanly: exit 2, no traceback."""
    assert "Traceback" not in result.output, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: "), result.stderr
    return line


def cli_process(*args: object, **kwargs) -> subprocess.Popen:
    command = [sys.executable, "-m", "huggingtweets", *map(str, args)]
    return subprocess.Popen(command, **kwargs)


# -- 1. interrupting prepare: every process ends, none is orphaned ------------------


def _processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, session id), from /proc."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            found[int(name)] = (fields[0].decode(), int(fields[1]), int(fields[3]))
    return found


def _alive(session: int) -> list[int]:
    """Processes of ``session`` that still live (a zombie is dead, awaiting its reaper)."""
    return [
        p for p, (state, _, sid) in _processes().items() if sid == session and state not in "ZX"
    ]


def _maps(pid: int, name: str) -> bool:
    """Whether process ``pid`` has a file called ``name`` mapped (tweets.js is read so)."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as handle:
            return f"/{name}\n".encode() in handle.read()
    except OSError:  # gone meanwhile
        return False


@pytest.fixture(scope="module")
def large_export(tmp_path_factory) -> Path:
    """30,000 posts (12 MB of tweets.js): reading and cleaning take a moment each."""
    root = tmp_path_factory.mktemp("large") / "export"
    texts = sentences(30_000, words=20)
    return write_x_export(
        root, [tweet(str(10**15 + i), t) for i, t in enumerate(texts)], account={"username": "bob"}
    )


# When: 0.3 s after the start (importing), while tweets.js is mapped (reading), once it is
# not any more (cleaning), and 0.1 s after that (writing).
MOMENTS = {
    "starting": ((), 0.3),
    "reading": ((True,), 0.0),
    "cleaning": ((True, False), 0.0),
    "writing": ((True, False), 0.1),
}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize(
    ("moment", "signum"),
    [(m, signal.SIGINT) for m in MOMENTS]
    + [(m, signal.SIGKILL) for m in ("reading", "cleaning", "writing")],
)
def test_an_interrupted_prepare_ends_every_process(large_export, tmp_path, moment, signum):
    mapped_states, delay = MOMENTS[moment]
    log = (tmp_path / "output.txt").open("wb")  # never a pipe a survivor could hold open
    cli = cli_process(
        "prepare", large_export, "--out", tmp_path / "run",
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        for mapped in mapped_states:  # tweets.js mapped, then unmapped again
            while _maps(cli.pid, "tweets.js") != mapped:
                assert cli.poll() is None, f"prepare ended before {moment}"
                assert time.monotonic() < deadline, f"prepare never reached {moment}"
                time.sleep(0.001)
        time.sleep(delay)
        os.kill(cli.pid, signum)
        try:
            cli.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"prepare hung after {signum.name} ({moment})")
        deadline = time.monotonic() + 5
        while _alive(cli.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(cli.pid), f"processes left after {signum.name} ({moment})"
    finally:
        log.close()
        with contextlib.suppress(ProcessLookupError):  # our own session's leftovers
            os.killpg(cli.pid, signal.SIGKILL)
        cli.wait()


# -- 2. a CSV with a stray quote is an error naming the line -------------------------


def csv_of(texts: list[str]) -> str:
    return "id,created_at,text\n" + "".join(
        f"{i},2023-01-01,{t}\n" for i, t in enumerate(texts, start=1)
    )


@pytest.mark.parametrize(
    ("stray", "line"),
    [
        ('"an opening quote that never closes', 101),  # then no quote: to the end
        ('he said "yes" and "no', None),  # in an unquoted field a quote is a quote
        ('"he said "yes" then left"', 101),  # inner quotes not doubled
        ('"two quotes at the end""', 101),  # "" is a quote: the field goes on
    ],
)
def test_a_stray_quote_is_an_error_naming_its_line(tmp_path, stray, line):
    texts = sentences(600)
    texts[99] = stray  # line 101: the header is line 1
    texts[300] = '"a well-quoted post, with a comma"'
    path = tmp_path / "posts.csv"
    path.write_text(csv_of(texts), "utf-8")
    if line is None:  # not malformed: read as written
        run_cli("prepare", path, "--out", tmp_path / "run")
        assert stats(tmp_path / "run")["downloaded"] == 600
        return
    result = run_cli("prepare", path, "--out", tmp_path / "run", expect=2)
    error = last_error(result)
    assert "malformed CSV" in error and f"starting at line {line} " in error, error
    assert not (tmp_path / "run").exists()


def test_a_record_swallowing_a_thousand_lines_is_an_error(tmp_path):
    # Two stray quotes, each where a quoted field may start or end: well-formed CSV, but
    # the 1,200 short rows between them (under csv's own limit of 128 KiB a field) would
    # become one post.
    texts = [f"post number {i} here" for i in range(2000)]
    texts[9] = '"opens here'
    texts[1209] = 'closes here"'
    path = tmp_path / "posts.csv"
    path.write_text(csv_of(texts), "utf-8")
    error = last_error(run_cli("prepare", path, "--out", tmp_path / "run", expect=2))
    assert "starting at line 11 " in error and "spans 1,201 lines" in error, error


def test_quoted_fields_may_hold_line_breaks(tmp_path):
    poem = "\n".join(f"line {i} of a long poem" for i in range(300))
    texts = sentences(600)
    texts[5] = f'"{poem}"'
    texts[6] = '"first line\r\nsecond line, with ""quotes"""'
    path = tmp_path / "posts.csv"
    path.write_text(csv_of(texts), "utf-8")
    collected = read_source(str(path))
    assert len(collected.posts) == 600
    assert collected.posts[5].text == poem
    assert collected.posts[6].text == 'first line\r\nsecond line, with "quotes"'
    assert collected.posts[7].id == "8"


# -- 3. zip bombs and files of blanks: refused unread, skipped by chunks, little memory --


_opened: list[list[str]] = []  # the paths opened, while files_opened() watches
_audit_hook: list[bool] = []  # added yet (an audit hook cannot be removed)


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened:
        _opened[-1].append(str(args[0]))


@contextlib.contextmanager
def files_opened():
    """The files this process opens inside the block: Python's "open" audit event, which
    open(), Path.open and os.open raise (a stat does not)."""
    if not _audit_hook:
        sys.addaudithook(_audit)
        _audit_hook.append(True)
    _opened.append([])
    try:
        yield _opened[-1]
    finally:
        _opened.pop()


def python_lines_run(work, budget: int):
    """``work()``, run while counting the lines of Python it runs in this thread: the work
    done, where a clock would also measure the machine's load (other test runs share its
    two cores). Past ``budget`` lines it stops with an AssertionError."""
    lines = 0

    def count(frame, event, arg):
        nonlocal lines
        if event == "line":
            lines += 1
            if lines > budget:
                raise AssertionError(f"more than {budget:,} lines of Python run: a byte loop?")
        return count

    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: count)
    try:
        return work()
    finally:
        sys.settrace(previous)
        assert lines <= budget, f"{lines:,} lines of Python run"  # had work() caught it


# A Python loop over the bytes of 48 MiB of blanks runs ~50 million lines (3 s here when
# idle, so no clock bound parts it from the right answer on a loaded machine); skipped by
# chunks, reading the whole export runs ~4,000.
BLANKS_BUDGET = 100_000


# Runs the CLI and reports its exit code and peak memory. A launcher of its own, because a
# process forked straight from this (large) test process counts the test process's pages
# in its peak until it execs: the measure would be of pytest, not of the CLI.
_MEASURE = """
import json, os, subprocess, sys
with open(sys.argv[1], "wb") as log:
    cli = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=log)
    _, status, usage = os.wait4(cli.pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))
"""


def run_measured(tmp_path: Path, *args: object, timeout: float = 60) -> tuple[int, str, float]:
    """(exit code, stderr, peak memory in MiB) of the CLI in a subprocess."""
    command = [sys.executable, "-m", "huggingtweets", *map(str, args)]
    log = tmp_path / "stderr.txt"
    try:
        measured = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(log), *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"no answer in {timeout} s")
    code, peak_kib = json.loads(measured.stdout)
    stderr = log.read_text("utf-8", "replace")
    return code, stderr, peak_kib / 1024


def test_a_zip_bomb_is_refused_at_once(tmp_path):
    # 1 MB of archive declaring (truthfully) 1 GiB of blanks as tweets.js.
    account = ytd("account", [{"account": {"username": "a"}}]).encode()
    bomb = write_raw_zip(
        tmp_path / "bomb.zip",
        [("data/account.js", *deflated(account)), ("data/tweets.js", *deflated_run(b" ", 1024))],
    )
    assert bomb.stat().st_size < 1_200_000
    code, stderr, peak = run_measured(tmp_path, "prepare", bomb, "--out", tmp_path / "run")
    assert code == 2, stderr
    # "zip bomb" is said only by the check of the sizes the archive declares, made before
    # anything is inflated; inflating the 1 GiB would also need more than 600 MiB. (The
    # clock, which counted Python starting under whatever load, told nothing more.)
    assert "Traceback" not in stderr and "zip bomb" in stderr.strip().splitlines()[-1], stderr
    assert peak < 600, peak


def test_an_entry_inflating_past_its_declared_size_stops_there(tmp_path):
    data, crc, _ = deflated_run(b"x", 256)
    archive = write_raw_zip(tmp_path / "liar.zip", [("data/tweets.js", data, crc, 1 << 20)])
    with pytest.raises(HuggingtweetsError, match="corrupt or truncated"):
        read_source(str(archive), handle="a")


def test_a_huge_account_file_is_refused_without_reading_it(tmp_path):
    export = write_x_export(tmp_path / "export", [tweet("1", "hello there my friends")])
    with (export / "data/account.js").open("wb") as handle:
        handle.write(b" " * (48 << 20))
    with (
        files_opened() as opened,
        pytest.raises(HuggingtweetsError, match=r"account\.js is 48 MiB, more than"),
    ):
        read_source(str(export))
    assert not [path for path in opened if path.endswith("account.js")], opened  # its size only


def test_trailing_blanks_are_skipped_by_chunks(tmp_path):
    export = write_x_export(
        tmp_path / "export",
        [tweet(str(i), t) for i, t in enumerate(sentences(50))],
        account={"username": "bob"},
    )
    with (export / "data/tweets.js").open("ab") as handle:
        handle.write(b";" + b" \n" * (24 << 20))
    collected = python_lines_run(lambda: read_source(str(export)), BLANKS_BUDGET)
    assert len(collected.posts) == 50


def test_a_file_of_blanks_is_an_error_skipped_by_chunks(tmp_path):
    export = write_x_export(tmp_path / "export", [], account={"username": "bob"})
    (export / "data/tweets.js").write_bytes(b" " * (48 << 20))
    with pytest.raises(HuggingtweetsError, match="invalid JSON"):
        python_lines_run(lambda: read_source(str(export)), BLANKS_BUDGET)


def test_a_real_export_as_a_zip_is_within_the_limits(smithjd, tmp_path):
    archive = zip_folder(smithjd, tmp_path / "export.zip")
    assert len(read_source(str(archive), handle="smithjd").posts) == 1758


# -- 4. hostile values in export files: one clear line, never a traceback ------------


def mastodon_export_with(tmp_path: Path, **actor_values) -> Path:
    root = write_mastodon_export(
        tmp_path / "m", [status(str(i), f"<p>{t}</p>") for i, t in enumerate(sentences(600))]
    )
    actor = json.loads((root / "actor.json").read_text())
    for key, value in actor_values.items():
        if value is ...:
            del actor[key]
        else:
            actor[key] = value
    (root / "actor.json").write_text(json.dumps(actor), "utf-8")
    return root


@pytest.mark.parametrize(
    "values",
    [
        {"url": "http://[::1"},
        {"url": ..., "id": "https://[::1/users/alice"},
        {"url": 5},
        {"url": ["http://[::1"]},
        {"url": {"type": "Link", "href": "http://[::1"}},
        {"preferredUsername": ["alice"]},
        {"preferredUsername": 5, "url": ...},
    ],
)
def test_a_malformed_actor_is_one_clear_line(tmp_path, values):
    root = mastodon_export_with(tmp_path, **values)
    error = last_error(run_cli("prepare", root, "--out", tmp_path / "run", expect=2))
    assert "actor.json" in error and "--handle" in error, error
    run_cli("prepare", root, "--handle", "alice@example.social", "--out", tmp_path / "run")


@pytest.mark.parametrize(
    "url",
    [
        {"type": "Link", "href": "https://example.social/@alice"},
        ["https://example.social/@alice", "https://other.example/alice"],
    ],
)
def test_an_actor_url_as_activitypub_links_it(tmp_path, url):
    collected = read_source(str(mastodon_export_with(tmp_path, url=url)))
    assert collected.account.handle == "alice@example.social"


HOSTILE_VALUES = [None, 0, -1, 10**30, 1.5e308, True, "", [], {}, ["x"], {"a": 1}, "http://[::1"]


def _x_export_with(root: Path, where: str, key: str, value) -> Path:
    account = {"username": "bob", "accountDisplayName": "Bob"}
    profile = {"avatarMediaUrl": "https://x/a.png", "description": {"bio": "hi"}}
    post = tweet("1", "hello there my friends")
    {"account": account, "profile": profile, "tweet": post}[where][key] = value
    return write_x_export(root, [post], account=account, profile=profile)


def _mastodon_export_with(root: Path, where: str, key: str, value) -> Path:
    post, shared = status("1", "<p>hello there my friends</p>"), boost("2")
    target = {"activity": post, "object": post["object"], "boost": shared}.get(where)
    if target is not None:
        target[key] = value
    root = write_mastodon_export(root, [post, shared])
    if where in ("actor", "outbox"):
        name = f"{where}.json"
        data = json.loads((root / name).read_text())
        data[key] = value
        (root / name).write_text(json.dumps(data), "utf-8")
    return root


HOSTILE_FIELDS = [
    ("x", "account", key) for key in ("username", "accountDisplayName")
] + [("x", "profile", key) for key in ("avatarMediaUrl", "description")] + [
    ("x", "tweet", key)
    for key in ("id_str", "full_text", "created_at", "lang", "in_reply_to_status_id_str",
                "entities")
] + [
    ("mastodon", "actor", key)
    for key in ("id", "preferredUsername", "name", "url", "followers", "summary", "icon")
] + [("mastodon", "outbox", "orderedItems")] + [
    ("mastodon", where, key)
    for where in ("activity", "object", "boost")
    for key in ("id", "type", "published", "to", "cc", "object", "content", "contentMap", "url")
]  # fmt: skip


@pytest.mark.parametrize(("kind", "where", "key"), HOSTILE_FIELDS)
def test_hostile_values_read_or_fail_cleanly(tmp_path, kind, where, key):
    build = _x_export_with if kind == "x" else _mastodon_export_with
    for n, value in enumerate(HOSTILE_VALUES):
        root = build(tmp_path / str(n), where, key, value)
        try:
            read_source(str(root))
        except HuggingtweetsError as exc:
            assert "\n" not in str(exc)


@pytest.mark.parametrize("where", ["tweets.js", "account.js", "posts.jsonl"])
def test_json_nested_too_deep_is_one_line(tmp_path, where):
    deep = "[" * 100_000 + "]" * 100_000
    if where == "posts.jsonl":
        source = tmp_path / where
        source.write_text(f'{{"text": "hello there my friends", "x": {deep}}}\n', "utf-8")
    else:
        post = '{"tweet": {"id_str": "1", "full_text": "hello there", "extra": DEEP}}'
        account = '{"account": {"username": "bob", "extra": DEEP}}'
        source = write_x_export(tmp_path / "export", [], account={"username": "bob"})
        text = {"tweets.js": post, "account.js": account}[where].replace("DEEP", deep)
        kind = where.removesuffix(".js")
        (source / "data" / where).write_text(f"window.YTD.{kind}.part0 = [{text}]", "utf-8")
    with pytest.raises(HuggingtweetsError, match="depth limit exceeded"):
        read_source(str(source))


# -- 5. a BOM before window.YTD ------------------------------------------------------


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_bom_before_window_ytd_is_allowed(tmp_path, as_zip):
    export = write_x_export(
        tmp_path / "export",
        [tweet(str(i), t) for i, t in enumerate(sentences(600))],
        account={"username": "bob", "accountDisplayName": "Bob"},
    )
    for name in ("tweets.js", "account.js"):
        path = export / "data" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    source = zip_folder(export, tmp_path / "export.zip") if as_zip else export
    collected = read_source(str(source))
    assert collected.account.handle == "bob" and len(collected.posts) == 600


# -- 6. named pipes, devices, and an empty --text-column -----------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("name", ["posts.csv", "tweets.js", "export.zip"])
def test_a_named_pipe_is_refused_not_waited_on(tmp_path, name):
    os.mkfifo(tmp_path / name)
    cli = cli_process(
        "prepare", tmp_path / name, "--out", tmp_path / "run",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = cli.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        cli.kill()
        cli.communicate()
        pytest.fail("prepare waited on a named pipe")
    assert cli.returncode == 2, stderr
    assert "not a regular file" in stderr.decode().strip().splitlines()[-1]


def test_a_device_is_refused(tmp_path):
    (tmp_path / "posts.txt").symlink_to(os.devnull)
    error = last_error(
        run_cli("prepare", tmp_path / "posts.txt", "--out", tmp_path / "r", expect=2)
    )
    assert "not a regular file" in error


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_empty_text_column_is_refused(tmp_path, suffix):
    path = tmp_path / f"posts{suffix}"
    if suffix == ".csv":
        path.write_text("text\n" + "\n".join(sentences(600)), "utf-8")
    else:
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in sentences(600)), "utf-8")
    for empty in ("", "  "):
        result = run_cli("prepare", path, "--text-column", empty, "--out", tmp_path / "r", expect=2)
        error = last_error(result)
        assert "text" in error and "empty" in error, error
        with pytest.raises(OptionError, match="empty"):  # the Python API refuses it too
            read_source(str(path), text_column=empty)
    assert not (tmp_path / "r").exists()


# -- HTML that made the parser rescan the rest of the post at every "<" --------------


def test_html_full_of_unclosed_tags_is_read_in_linear_time():
    from huggingtweets.collect.htmltext import html_to_text

    # 200 KB of "<a": 0.04 s here, and 44 s (when idle) where each "<" made the parser
    # rescan the rest of the input. 10 s leaves the right answer 250 times its time on a
    # loaded machine, and the quadratic one still 4 times over.
    start = time.monotonic()
    assert html_to_text("<a" * 100_000) == "<a" * 100_000
    assert html_to_text("<p>" + "<" * 100_000 + "</p>") == "<" * 100_000
    assert time.monotonic() - start < 10
    # A "<" that no ">" closes is text; tags around it are still tags.
    assert html_to_text("<p>1 < 2 and 3 > 2 <3</p><p>x<br>y</p>") == "1 < 2 and 3 > 2 <3\n\nx\ny"


def test_a_huge_folder_is_refused_instead_of_walking_the_disk(tmp_path, monkeypatch):
    """`prepare /` or a home folder: one line at the bound, not an hour of walking."""
    from huggingtweets.collect import tree

    monkeypatch.setattr(tree, "MAX_TREE_ENTRIES", 30)
    folder = tmp_path / "home"
    for i in range(4):
        sub = folder / f"d{i}"
        sub.mkdir(parents=True)
        for j in range(10):
            (sub / f"f{j}.txt").write_text("hello world\n")
    result = run_cli("prepare", folder, "--out", tmp_path / "run", expect=2)
    assert "more than 30 files and folders" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "dataset").exists()
    # under the bound, the same walk lists every file of the nested folders
    monkeypatch.setattr(tree, "MAX_TREE_ENTRIES", 100)
    names = tree.DirTree(folder).names()
    assert len(names) == 40 and "d3/f9.txt" in names
    assert tree.DirTree(folder / "d0", recursive=False).names() == [f"f{j}.txt" for j in range(10)]
