"""``huggingtweets update``: only the new posts are added and trained on, the previous model
is kept in history/ byte for byte, nothing new changes nothing, a stopped update leaves the
previous model, and bad input is one line (exit 2). Tiny models, one epoch each."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from fakes import live_env  # noqa: F401 (autouse fixture)
from fakes.x_api import FakeX

from huggingtweets.collect.sample import speeches
from huggingtweets.core.events import Reporter
from huggingtweets.core.options import OptionError
from huggingtweets.train.recipe import TrainingInterrupted
from huggingtweets.update.bot import UpdateOptions, update_bot

TINY = ("--base-model", "tiny", "--num-train-epochs", "1")
OLD, NEW = 130, 160  # posts in the first export and in the newer one


def _write_export(path: Path, count: int) -> Path:
    """ROMEO's speeches as a JSON Lines export, one post an hour from 2024-01-01."""
    texts = [" ".join(body.split()) for who, body in speeches() if who == "ROMEO"]
    rows = [
        {
            "id": str(1000 + i),
            "created_at": f"2024-01-{1 + i // 10:02d}T{i % 10:02d}:00:00Z",
            "text": texts[i],
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ids(run: Path, split: str) -> set[str]:
    lines = (run / "dataset" / f"{split}.jsonl").read_text().splitlines()
    return {json.loads(line)["id"] for line in lines if line}


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: its modification time and content hash."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, _sha(p) if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def file_run(tmp_path_factory):
    """A bot made from an export and evaluated; then updated from a newer export.
    Returns (folder, the run before the update (a copy), what it held, the update's CLI
    result)."""
    folder = tmp_path_factory.mktemp("update")
    old, new = _write_export(folder / "old.jsonl", OLD), _write_export(folder / "new.jsonl", NEW)
    run = folder / "run"
    split = ("--validation-split-percentage", "20")  # 25 held out: enough to evaluate
    run_cli("train", old, "--handle", "romeo", "--out", run, *TINY, *split)
    run_cli("evaluate", run, "--samples", "20")
    before = {
        "weights": _sha(run / "model" / "model.safetensors"),
        "metrics": (run / "metrics.json").read_bytes(),
        "evaluation": (run / "evaluation.json").read_bytes(),
        "card": (run / "model" / "README.md").read_bytes(),
        "train": _ids(run, "train"),
        "valid": _ids(run, "valid"),
    }
    pristine = folder / "pristine"
    shutil.copytree(run, pristine)
    result = run_cli("update", run, new, "--epochs", "1")
    return folder, pristine, before, result


def test_update_adds_only_the_new_posts_and_keeps_the_previous_model(file_run):
    folder, _, before, result = file_run
    run = folder / "run"
    stats = json.loads((run / "dataset" / "stats.json").read_text())
    (account,) = stats["accounts"]
    assert account["downloaded"] == NEW
    train, valid = _ids(run, "train"), _ids(run, "valid")
    added = (train | valid) - (before["train"] | before["valid"])
    assert added and {int(i) for i in added} <= set(range(1000 + OLD, 1000 + NEW))
    # Each earlier post kept its side: the held-out ones were never trained on.
    assert before["valid"] <= valid and before["train"] <= train
    assert account["split"]["train"] == len(train) and account["split"]["valid"] == len(valid)
    (update,) = json.loads((run / "metrics.json").read_text())["updates"]
    assert update["new_train"] == len(added & train) and update["new_valid"] == len(added & valid)
    assert update["new_posts"] == len(added)
    assert update["replayed"] == round(0.5 * update["new_train"])
    assert f"{len(added)} new posts" in result.stdout

    (kept,) = (run / "history").iterdir()
    assert _sha(kept / "model" / "model.safetensors") == before["weights"]
    assert (kept / "metrics.json").read_bytes() == before["metrics"]
    assert (kept / "evaluation.json").read_bytes() == before["evaluation"]
    assert (kept / "model" / "README.md").read_bytes() == before["card"]
    assert _sha(run / "model" / "model.safetensors") != before["weights"]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporaries left

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["base_model"] == "tiny"  # the original base, not the folder trained from
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["samples"] == 20 and evaluation["held_out"] == len(valid)
    # Against the original base (the run's tiny one), not the previous version.
    assert evaluation["groups"][0]["perplexity"]["base_source"] == "recomputed"
    card = (run / "model" / "README.md").read_text()
    assert "posted from 2024-01-01 to 2024-01-16" in card
    assert "Kept up to date (once" in card and "Does it sound like them?" in card


def test_a_second_update_with_the_same_file_says_so_and_changes_nothing(file_run):
    folder, _, _, _ = file_run
    run = folder / "run"
    snapshot = _snapshot(run)
    result = run_cli("update", run, folder / "new.jsonl")
    assert "No new posts since 2024-01-16 09:00 UTC" in result.stdout
    assert _snapshot(run) == snapshot


def test_a_stopped_update_leaves_the_previous_model_in_place(file_run, tmp_path):
    _, pristine, before, _ = file_run
    run = shutil.copytree(pristine, tmp_path / "run")
    reporter = Reporter()

    def stop_at_the_first_step(event) -> None:
        if event.stage == "train" and event.kind == "progress" and event.step:
            reporter.cancel()

    reporter.listeners.append(stop_at_the_first_step)
    with pytest.raises(TrainingInterrupted):
        update_bot(run, [pristine.parent / "new.jsonl"], reporter=reporter)
    assert _sha(run / "model" / "model.safetensors") == before["weights"]
    assert (run / "metrics.json").read_bytes() == before["metrics"]
    assert _ids(run, "train") == before["train"] and not (run / "history").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    # The new posts were kept: the next update, with no file given, trains on them.
    assert len((run / "posts" / "romeo.jsonl").read_text().splitlines()) == NEW
    done = update_bot(run, options=UpdateOptions(num_train_epochs=1, evaluate="never"))
    assert done.updated and done.new_posts == len(_ids(run, "train") | _ids(run, "valid")) - len(
        before["train"] | before["valid"]
    )
    assert _sha(done.history / "model" / "model.safetensors") == before["weights"]
    assert not (run / "evaluation.json").exists()  # the previous model's is in history/ only
    assert (done.history / "evaluation.json").read_bytes() == before["evaluation"]


def test_a_file_named_for_another_account_is_said_to_be_read_as_the_run_s(file_run):
    """new.jsonl (its name says @new) given to @romeo's one-account run is merged as
    @romeo's posts, and the output says so once, with how to say otherwise."""
    _, _, _, result = file_run
    said = " ".join((result.stdout + result.stderr).split())
    assert "new.jsonl read as @romeo's posts (its name says @new; give --handle" in said
    assert said.count("read as @romeo's posts") == 1


_STOP_BEFORE_TRAINING = """
import pathlib, sys, time
import huggingtweets.train.recipe
recipe = sys.modules["huggingtweets.train.recipe"]  # huggingtweets.train is the function
ready = pathlib.Path(sys.argv[1])
def train(*args, **kwargs):
    ready.write_text("training")
    time.sleep(120)  # the test's SIGINT comes here, before any training
recipe.train = train
from huggingtweets.cli.main import main
sys.argv = ["huggingtweets", *sys.argv[2:]]
main()
"""


def test_a_ctrl_c_before_training_says_the_new_posts_were_kept(file_run, tmp_path):
    """A real Ctrl-C (SIGINT) after posts/ took the new posts, before training: exit 130,
    said so (not 'nothing half-written was kept'), the model as it was, and the next
    update with no file given trains on the posts kept."""
    _, pristine, before, _ = file_run
    run = shutil.copytree(pristine, tmp_path / "run")
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", _STOP_BEFORE_TRAINING, ready, "update", run,
         pristine.parent / "new.jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    said = " ".join(err.split())
    assert "nothing half-written" not in said
    assert f"the new posts are kept (the files in {run / 'posts'} were updated)" in said
    assert f"{run / 'model'} is the previous model, unchanged" in said
    assert f"run `huggingtweets update {run}` again to train on them" in said
    assert _sha(run / "model" / "model.safetensors") == before["weights"]
    assert len((run / "posts" / "romeo.jsonl").read_text().splitlines()) == NEW
    assert not (run / "history").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


def test_a_run_from_a_file_needs_the_newer_export(file_run):
    folder, _, _, _ = file_run
    result = run_cli("update", folder / "run", expect=2)
    assert result.stderr.strip().splitlines() == [
        f"Error: {folder / 'run'} was made from a file: give the newer export: "
        f"huggingtweets update {folder / 'run'} NEW.zip"
    ]
    other = _write_export(folder / "juliet.jsonl", 50)
    result = run_cli("update", folder / "run", other, "--handle", "juliet", expect=2)
    assert "holds @juliet's posts" in result.stderr and len(result.stderr.splitlines()) == 1


def test_an_older_export_is_not_taken_for_the_run_s_newest_post(file_run):
    """The run holds posts up to the newer export's last; an older export given names
    the run's newest post, and says it ends before it."""
    folder, _, _, _ = file_run
    run = folder / "run"
    snapshot = _snapshot(run)
    result = run_cli("update", run, folder / "old.jsonl")
    assert result.stdout == (
        "No new posts since 2024-01-16 09:00 UTC, the run's newest post "
        f"({folder / 'old.jsonl'} ends at 2024-01-13 09:00 UTC: an older export than the "
        "run's? give one made after it): nothing changed\n"
    )
    assert _snapshot(run) == snapshot


def test_an_older_export_with_a_post_the_run_lacks_loses_none_of_the_run_s_posts(
    file_run, tmp_path
):
    """An export older than the run's data, with one post the run lacks: that post is
    added, and every post the run had stays in posts/ and in the dataset, on its side of
    the split (the export is not taken for all the account's posts)."""
    folder, _, _, _ = file_run
    run = shutil.copytree(folder / "run", tmp_path / "run")
    had = {json.loads(line)["id"] for line in (run / "posts" / "romeo.jsonl").open()}
    train, valid = _ids(run, "train"), _ids(run, "valid")
    extra = {
        "id": "999",
        "created_at": "2024-01-05T12:30:00Z",
        "text": "A post the run never saw, found again in an older export of the account.",
    }
    older = tmp_path / "older.jsonl"
    older.write_text((folder / "old.jsonl").read_text() + json.dumps(extra) + "\n")
    result = run_cli("update", run, older, "--epochs", "1", "--evaluate", "never")
    assert "1 new post (" in result.stdout
    posts = {json.loads(line)["id"] for line in (run / "posts" / "romeo.jsonl").open()}
    assert len(had) == NEW and posts == had | {"999"}
    assert train <= _ids(run, "train") and valid <= _ids(run, "valid")
    assert _ids(run, "train") | _ids(run, "valid") == train | valid | {"999"}
    stats = json.loads((run / "dataset" / "stats.json").read_text())
    assert stats["accounts"][0]["downloaded"] == NEW + 1
    assert stats["dates"]["last"] == "2024-01-16T09:00:00Z"
    assert f"@romeo: {NEW - OLD} of the run's posts" in result.stderr  # kept, and said


@pytest.mark.parametrize("damage", ["truncated", "missing", "emptied"])
def test_a_damaged_posts_file_is_refused_not_taken_for_the_account_s_posts(
    file_run, tmp_path, damage
):
    """posts/<handle>.jsonl cut at a line, removed or emptied: the dataset is rebuilt from
    posts/ plus the export, so the dataset's posts the file lost would leave the dataset
    (an export of the new posts only given). Refused in one line, nothing changed."""
    folder, pristine, _, _ = file_run
    run = shutil.copytree(pristine, tmp_path / "run")
    posts = run / "posts" / "romeo.jsonl"
    if damage == "truncated":  # at a line's end: it still reads
        posts.write_text("".join(posts.read_text().splitlines(keepends=True)[:60]))
    elif damage == "missing":
        posts.unlink()
    else:
        posts.write_text("")
    lines = (folder / "new.jsonl").read_text().splitlines(keepends=True)
    newer = tmp_path / "newer.jsonl"
    newer.write_text("".join(lines[100:]))  # an export of the account's later posts only
    snapshot = _snapshot(run)
    result = run_cli("update", run, newer, "--epochs", "1", "--evaluate", "never", expect=2)
    kept = 1060 if damage == "truncated" else 1000  # posts/ holds the ids before it
    dataset = _ids(pristine, "train") | _ids(pristine, "valid")
    lost = len([i for i in dataset if kept <= int(i) < 1100])
    assert result.stderr.splitlines()[-1] == (
        f"Error: {posts} lacks {lost} of @romeo's posts that the run's dataset holds "
        "(cut short, removed or replaced?): the update rebuilds the dataset from posts/ and "
        "the export, and would drop them; restore the file from a copy, or give an export "
        "that holds them too; nothing changed"
    )
    assert "Traceback" not in result.stderr and lost > 0
    assert _snapshot(run) == snapshot


def test_posts_the_newer_export_says_are_private_leave_the_dataset(file_run, tmp_path):
    """The run holds posts as public that the newer export marks followers-only (made
    private since, or marked so by hand): kept in posts/ as the export says, never again
    in the dataset (nor replayed into training)."""
    folder, pristine, _, _ = file_run
    run = shutil.copytree(pristine, tmp_path / "run")
    rows = [json.loads(line) for line in (folder / "new.jsonl").open()]
    hidden = {row["id"] for row in rows[:20]}
    for row in rows[:20]:
        row["visibility"] = "followers"
    newer = tmp_path / "newer.jsonl"
    newer.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert hidden & (_ids(pristine, "train") | _ids(pristine, "valid"))
    run_cli("update", run, newer, "--epochs", "1", "--evaluate", "never")
    assert not hidden & (_ids(run, "train") | _ids(run, "valid"))
    posts = {p["id"]: p for p in map(json.loads, (run / "posts" / "romeo.jsonl").open())}
    assert {i for i, p in posts.items() if p["visibility"] == "followers"} == hidden
    assert len(posts) == NEW  # none removed from posts/


def test_posts_made_private_leave_the_dataset_with_nothing_new(file_run, tmp_path):
    """The newer export has no new posts but marks some of the run's as followers-only or
    direct: they leave the dataset now (not at the next update that trains), stay in
    posts/ as the export says, and the model is untouched: the update says the model was
    trained on them and that only training again removes that."""
    folder, pristine, _, _ = file_run
    run = shutil.copytree(pristine, tmp_path / "run")
    rows = [json.loads(line) for line in (folder / "old.jsonl").open()]
    for row, audience in zip(rows[:20], ["followers", "direct"] * 10, strict=True):
        row["visibility"] = audience
    hidden = {row["id"]: row["visibility"] for row in rows[:20]}
    newer = tmp_path / "newer.jsonl"
    newer.write_text("".join(json.dumps(row) + "\n" for row in rows))
    train, valid = _ids(pristine, "train"), _ids(pristine, "valid")
    assert hidden.keys() & train and hidden.keys() & valid
    model = _snapshot(run / "model")
    result = run_cli("update", run, newer, "--epochs", "1", "--evaluate", "never")
    left = len(hidden.keys() & (train | valid))
    assert f"{left} posts the export marks followers-only or direct left the dataset" in " ".join(
        result.stdout.split()
    )
    # the run's own base named: train's default (gpt2) would retrain another bot
    assert f"huggingtweets train {run} --base-model tiny" in " ".join(result.stdout.split())
    assert not hidden.keys() & (_ids(run, "train") | _ids(run, "valid"))
    assert _ids(run, "train") == train - hidden.keys()  # the others on their side
    assert _ids(run, "valid") == valid - hidden.keys()
    posts = {p["id"]: p for p in map(json.loads, (run / "posts" / "romeo.jsonl").open())}
    assert {i: p["visibility"] for i, p in posts.items() if i in hidden} == hidden
    assert len(posts) == OLD
    assert _snapshot(run / "model") == model
    assert not (run / "history").exists()


def test_a_newer_plain_text_file_adds_its_new_lines_whatever_their_place(file_run, tmp_path):
    """A .txt (or a CSV/JSONL without ids) numbers its posts by line: a newer file with
    its new posts on top gives the run's posts other numbers. Its posts are told apart by
    their text: the new lines are added (numbered after the run's), none twice."""
    texts = [" ".join(body.split()) for who, body in speeches() if who == "ROMEO"]
    old, new = texts[:OLD], texts[OLD:NEW]
    first = tmp_path / "romeo.txt"
    first.write_text("\n".join(old) + "\n")
    run = tmp_path / "run"
    run_cli("train", first, "--out", run, *TINY, "--max-steps", "1", "--evaluate", "never")
    newer = tmp_path / "romeo-2.txt"
    newer.write_text("\n".join(new + old) + "\n")  # newest first, as a feed is
    result = run_cli("update", run, newer, "--epochs", "1", "--evaluate", "never")
    posts = [json.loads(line) for line in (run / "posts" / "romeo.jsonl").open()]
    assert [p["text"] for p in posts] == old + new
    assert [p["id"] for p in posts] == [str(i) for i in range(1, NEW + 1)]
    rows = [
        json.loads(line)
        for split in ("train", "valid")
        for line in (run / "dataset" / f"{split}.jsonl").open()
    ]
    assert len({r["text"] for r in rows}) == len(rows)  # no post twice
    added = {r["text"] for r in rows} - set(old)
    assert added and added <= set(new)
    assert f"{len(added)} new posts (" in result.stdout


@pytest.mark.parametrize(
    ("file", "setting", "value", "says"),
    [
        ("dataset/stats.json", "min_words", -2, "which must be >=0, <=10000 (got -2)"),
        ("metrics.json", "block_size", "big", "which must be a whole number"),
    ],
)
def test_a_run_s_refused_setting_is_named_as_the_run_s_not_as_a_flag(
    file_run, tmp_path, file, setting, value, says
):
    """A value this version refuses in the run's own files (edited by hand): the file and
    the run's setting are named, not --min-words, which the user of update never gave."""
    _, pristine, _, _ = file_run
    run = shutil.copytree(pristine, tmp_path / "run")
    saved = json.loads((run / file).read_text())
    saved["options"][setting] = value
    (run / file).write_text(json.dumps(saved))
    snapshot = _snapshot(run)
    result = run_cli("update", run, pristine.parent / "new.jsonl", expect=2)
    assert result.stderr.startswith(
        f"Error: {run / file} records the run's setting {setting}, {says}"
    )
    assert "--" not in result.stderr.split(";")[0] and len(result.stderr.splitlines()) == 1
    assert _snapshot(run) == snapshot


def test_a_sample_run_is_not_called_a_file(tmp_path):
    run = tmp_path / "run"
    run_cli("train", "sample:romeo", "--out", run, "--base-model", "tiny", "--max-steps", "1")
    result = run_cli("update", run, expect=2)
    assert result.stderr == (
        f"Error: {run} was made from the bundled sample (sample:romeo), which never has new "
        "posts: there is nothing to update it with (update is for a bot made from an "
        "account's own posts: a live account, or a newer export of it)\n"
    )


def test_new_posts_all_dropped_name_the_run_s_own_setting(tmp_path):
    """Dropped by the run's --min-words 6: said as the run's setting, with its value."""
    run = tmp_path / "run"
    export = _write_export(tmp_path / "posts.jsonl", OLD)
    run_cli("train", export, "--handle", "romeo", "--out", run, *TINY, "--min-words", "6",
            "--max-steps", "1")  # fmt: skip
    short = [
        {
            "id": str(5000 + i),
            "created_at": f"2024-02-01T0{i}:00:00Z",
            "text": "four words post here",
        }
        for i in range(3)
    ]
    newer = tmp_path / "newer.jsonl"
    newer.write_text(export.read_text() + "".join(json.dumps(row) + "\n" for row in short))
    result = run_cli("update", run, newer)
    assert result.stdout == (
        "No new posts since 2024-01-13 09:00 UTC (3 new ones were all dropped by the rules "
        "the run was prepared with: 3 under the run's min_words of 6): nothing changed\n"
    )


@pytest.mark.parametrize("what", ["missing", "empty", "a file", "untrained"])
def test_a_bad_run_dir_is_one_line(tmp_path, what):
    run = tmp_path / "run"
    if what == "empty":
        run.mkdir()
    elif what == "a file":
        run.write_text("not a run")
    elif what == "untrained":
        run_cli("prepare", "sample:romeo", "--out", run)
    result = run_cli("update", run, expect=2)
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_update_options_take_their_bounds_and_help_from_train_options():
    from huggingtweets.core.options import option_specs
    from huggingtweets.train.recipe import TrainOptions

    train = {spec.name: spec for spec in option_specs(TrainOptions)}
    for spec in option_specs(UpdateOptions):
        if spec.name in ("num_train_epochs", "learning_rate"):
            mine = (spec.min, spec.max, spec.min_open, spec.max_open, spec.kind)
            theirs = train[spec.name]
            assert mine == (theirs.min, theirs.max, theirs.min_open, theirs.max_open, theirs.kind)
    (learning_rate,) = (s for s in option_specs(UpdateOptions) if s.name == "learning_rate")
    assert learning_rate.help == train["learning_rate"].help
    assert UpdateOptions().num_train_epochs == 2.0  # an update's own default


def test_options_are_checked_before_anything_is_read():
    with pytest.raises(OptionError) as caught:
        UpdateOptions(replay=-1)
    assert caught.value.name == "replay"  # the field, which the CLI turns into its flag
    assert caught.value.problem == "must be >=0, <=100 (got -1)"
    result = run_cli("update", "nowhere", "--epochs", "0", expect=2)
    assert "--num-train-epochs must be >0" in result.stderr


# -- a live account ----------------------------------------------------------------------

TOKEN = "x-test-token-update"


def test_a_live_account_fetches_only_the_newer_posts(tmp_path, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeX(TOKEN) as server:
        server.add_user("romeo", 120)
        url = ("--x-api-url", server.url)
        run = tmp_path / "run"
        run_cli("train", "x:romeo", "--out", run, *url, *TINY, "--no-card")
        weights = _sha(run / "model" / "model.safetensors")
        newest = max(server.all_ids("romeo"), key=int)
        asked = len(server.seen("/tweets"))
        new = server.add_posts("romeo", 20)

        result = run_cli("update", run, *url, "--epochs", "1")
        requests = server.seen("/tweets")[asked:]
        assert requests and all(r.query.get("since_id") == newest for r in requests)
        posts = [json.loads(line) for line in (run / "posts" / "romeo.jsonl").open()]
        assert len(posts) == 140 and {p["id"] for p in posts} == set(server.all_ids("romeo"))
        (update,) = json.loads((run / "metrics.json").read_text())["updates"]
        added = (_ids(run, "train") | _ids(run, "valid")) & {p["id"] for p in new}
        assert update["new_posts"] == len(added) > 10
        assert "new posts" in result.stdout
        (kept,) = (run / "history").iterdir()
        assert _sha(kept / "model" / "model.safetensors") == weights

        snapshot = _snapshot(run)
        result = run_cli("update", run, *url)
        assert "No new posts since" in result.stdout
        assert _snapshot(run) == snapshot  # the state file and profile included
