"""The shape: one pipeline API, progress as events with cancellation, options defined
once (flags, config files, checks), per-trial outputs, and the run directory's safety."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from huggingtweets import (
    Event,
    PrepareOptions,
    Reporter,
    TrainingInterrupted,
    TrainOptions,
    make_bot,
    prepare,
    train,
)
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import MAX_SEED, OptionError, option_specs

SRC = ROOT / "src" / "huggingtweets"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pipeline") / "romeo"
    prepare(run, ["sample:romeo"])
    return run


def _copy_dataset(prepared: Path, to: Path) -> Path:
    shutil.copytree(prepared / "dataset", to / "dataset")
    return to


# -- no module below the CLI prints -----------------------------------------------------


def test_no_library_module_prints_or_uses_the_console():
    """Progress and warnings travel as events: only the CLI layer writes to a terminal."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.parent.name == "cli" or path.name == "__main__.py":  # the CLI layer
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.name}:{node.lineno} print()")
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("console"):
                offenders.append(f"{path.name}:{node.lineno} imports console")
    assert offenders == []


# -- events and cancellation ------------------------------------------------------------


def test_reporter_estimates_the_time_left_from_the_pace():
    events: list[Event] = []
    reporter = Reporter(events.append)
    reporter.start("x", total=10)
    reporter._started["x"] = (reporter._started["x"][0] - 2.0, 0)  # 2 s ago
    reporter.progress("x", 4, 10, loss=1.5)
    (progress,) = [e for e in events if e.kind == "progress"]
    assert progress.loss == 1.5 and progress.total == 10
    assert progress.eta == pytest.approx(3.0, rel=0.05)  # 6 steps left at 0.5 s a step
    assert progress.to_dict()["stage"] == "x"


def test_make_bot_reports_every_stage_and_a_listener_can_cancel_training(prepared, tmp_path):
    """A web app's stop button: cancel() from a listener ends training after the step,
    with a checkpoint; the same call with resume=True completes it."""
    run = _copy_dataset(prepared, tmp_path / "romeo")
    events: list[Event] = []
    reporter = Reporter(events.append)

    def stop_after_six_steps(event: Event) -> None:
        if event.stage == "train" and event.kind == "progress" and (event.step or 0) >= 6:
            reporter.cancel()

    reporter.listeners.append(stop_after_six_steps)
    options = TrainOptions(base_model="tiny", num_train_epochs=2)
    with pytest.raises(TrainingInterrupted) as stop:
        make_bot(run, train=options, card=False, reporter=reporter)
    assert stop.value.checkpoint is not None
    assert stop.value.checkpoint.name == "checkpoint-6"  # the step of the request
    assert not (run / "model").exists()
    steps = [e.step for e in events if e.stage == "train" and e.kind == "progress"]
    assert steps[0] == 0 and max(steps) == 6
    assert all(e.eta is not None for e in events if e.kind == "progress" and e.step)

    events.clear()
    resumed = make_bot(
        run,
        train=TrainOptions(base_model="tiny", num_train_epochs=2, resume=True),
        reporter=Reporter(events.append),
    )
    assert resumed.trained.metrics["resumed_from"] == "checkpoint-6"
    assert resumed.card == run / "model" / "README.md" and resumed.card.is_file()
    kinds = [(e.stage, e.kind) for e in events if e.kind in ("start", "end")]
    assert ("train", "end") in kinds and ("card", "start") in kinds and ("card", "end") in kinds
    (ended,) = [e for e in events if e.stage == "train" and e.kind == "end"]
    assert ended.data["metrics"]["global_steps"] == resumed.trained.metrics["global_steps"]


def test_training_changes_nothing_process_wide(prepared, tmp_path):
    """A server that trains in-process keeps its own signal handler and library settings."""
    from transformers.utils import logging as hf_logging

    run = _copy_dataset(prepared, tmp_path / "romeo")
    handler_before = signal.getsignal(signal.SIGINT)
    bars_before = hf_logging.is_progress_bar_enabled()
    train(run, TrainOptions(base_model="tiny", max_steps=2))
    assert signal.getsignal(signal.SIGINT) is handler_before
    assert hf_logging.is_progress_bar_enabled() == bars_before


# -- options: defined once ---------------------------------------------------------------


def test_every_option_field_is_a_flag_with_its_help(tmp_path):
    """The flags are derived from the dataclasses: each field appears with its help."""
    help_text = " ".join(run_cli("train", "--help").stdout.split())
    for cls in (TrainOptions, PrepareOptions):
        for spec in option_specs(cls):
            if spec.name == "seed" and cls is PrepareOptions:
                continue  # train's --seed seeds both
            assert spec.flags[-1] in help_text, spec.name
            assert " ".join(spec.help.split())[:40] in help_text, spec.name
    assert "--config FILE" in help_text and "[default: 4.0; >0" in help_text


def test_config_file_values_and_flags_that_win_over_them(prepared, tmp_path):
    run = _copy_dataset(prepared, tmp_path / "romeo")
    config = tmp_path / "trial.yaml"
    # 2e-3: a number in YAML 1.2 and JSON, a string to PyYAML's YAML 1.1 unless taught
    config.write_text("base_model: tiny\nmax_steps: 3\nlearning_rate: 2e-3\nseed: 5\n")
    run_cli("train", run, "--config", config, "--seed", 9, "--no-card")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_steps"] == 3 and metrics["seed"] == 9  # the flag won
    assert metrics["hyperparameters"]["learning_rate"] == 0.002
    assert metrics["options"]["max_steps"] == 3

    json_config = tmp_path / "trial.json"
    json_config.write_text('{"base_model": "tiny", "num_train_epochs": "four"}')
    result = run_cli("train", run, "--config", json_config, expect=2)
    # the config's own key and file, not a flag the user never wrote
    assert result.stderr == (
        f"Error: {json_config}: num_train_epochs must be a number (>0, <=100000) (got 'four')\n"
    )
    config.write_text("base_model: tiny\nepochs: 3\n")
    result = run_cli("train", run, "--config", config, expect=2)
    assert "unknown option 'epochs'; known:" in result.stderr
    assert "num_train_epochs" in result.stderr
    config.write_text("base_model: [tiny\n")
    result = run_cli("train", run, "--config", config, expect=2)
    assert "not valid YAML or JSON (line 2" in result.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["--num-train-epochs", "inf"], "--num-train-epochs must be a finite number (got inf)"),
        (["--num-train-epochs", "nan"], "--num-train-epochs must be a finite number (got nan)"),
        (["--seed", str(2**64)], f"--seed must be >=0, <={MAX_SEED} (got"),
        (["--learning-rate", "-1"], "--learning-rate must be >0"),
        (["--max-steps", "0"], "--max-steps must be 1 or more"),
    ],
)
def test_train_option_values_are_refused_in_one_line(prepared, args, says):
    result = run_cli("train", prepared, "--base-model", "tiny", *args, expect=2)
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_prepare_seed_above_the_largest_is_refused(tmp_path):
    result = run_cli("prepare", "sample:romeo", "--out", tmp_path / "r", "--seed", 2**63, expect=2)
    assert "--seed must be" in result.stderr and not (tmp_path / "r").exists()


def test_library_errors_name_fields_and_the_cli_names_flags():
    with pytest.raises(OptionError) as error:
        TrainOptions(num_train_epochs=float("inf"))
    assert error.value.name == "num_train_epochs" and "--" not in str(error.value)


# -- train SOURCE --out: the whole flow, options kept ------------------------------------


def test_train_sources_keeps_the_prepare_filters_given_with_it(tmp_path):
    run = tmp_path / "rj"
    run_cli(
        "train", "sample:romeo", "sample:juliet", "--out", run, "--base-model", "tiny",
        "--max-steps", 1, "--no-card", "--dedupe", "--min-words", 5, "--no-balance",
    )  # fmt: skip
    stats = json.loads((run / "dataset" / "stats.json").read_text())
    assert stats["options"]["dedupe"] is True and stats["options"]["min_words"] == 5
    assert stats["options"]["balance"] is False
    assert all(a["below_min_words"] > 0 for a in stats["accounts"])


def test_a_bad_option_is_refused_before_sources_are_prepared(tmp_path):
    run = tmp_path / "rj"
    result = run_cli(
        "train", "sample:romeo", "--out", run, "--lr-scheduler-type", "sideways", expect=2
    )
    assert "sideways" in result.stderr and not run.exists()


def test_tiny_tokenizer_sees_training_posts_only(prepared, tmp_path, monkeypatch):
    import huggingtweets.model.tiny as tiny

    seen: list[str] = []
    build = tiny.build_tiny_base

    def spy(texts, folder, seed):
        seen.extend(texts)
        return build(texts, folder, seed=seed)

    monkeypatch.setattr(tiny, "build_tiny_base", spy)
    run = _copy_dataset(prepared, tmp_path / "romeo")
    train(run, TrainOptions(base_model="tiny", max_steps=1))
    valid = [json.loads(line)["text"] for line in (run / "dataset/valid.jsonl").open()]
    trained = [json.loads(line)["text"] for line in (run / "dataset/train.jsonl").open()]
    assert seen == trained and not set(valid) & set(seen) - set(trained)


# -- outputs per trial -------------------------------------------------------------------


def test_trials_write_their_own_model_metrics_and_card(prepared, tmp_path):
    run = _copy_dataset(prepared, tmp_path / "romeo")
    for trial, lr in (("1", "0.001"), ("2", "0.003")):
        out = run / "trials" / trial
        run_cli(
            "train", run, "--output-dir", out, "--base-model", "tiny", "--max-steps", 2,
            "--learning-rate", lr,
        )  # fmt: skip
        assert (out / "model" / "model.safetensors").is_file()
        assert (out / "model" / "README.md").is_file()
        assert json.loads((out / "metrics.json").read_text())["hyperparameters"][
            "learning_rate"
        ] == float(lr)
    assert not (run / "model").exists() and not (run / "metrics.json").exists()


def test_model_files_are_readable_by_others(prepared, tmp_path):
    run = _copy_dataset(prepared, tmp_path / "romeo")
    previous = os.umask(0o022)
    try:
        train(run, TrainOptions(base_model="tiny", max_steps=1))
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (run / "model").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


# -- the run directory: bad rows, bad paths, accounts, stale temporaries -------------------


@pytest.mark.parametrize("row", ['{"id": "1"}', '{"text": 5}', '["a"]'])
def test_a_dataset_row_without_text_is_one_clear_line(prepared, tmp_path, row):
    run = _copy_dataset(prepared, tmp_path / "romeo")
    with (run / "dataset" / "train.jsonl").open("a") as rows:
        rows.write(row + "\n")
    result = run_cli("train", run, "--base-model", "tiny", expect=2)
    assert "train.jsonl" in result.stderr and "Traceback" not in result.stderr


def test_output_paths_that_cannot_be_written_exit_2(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = run_cli("prepare", "sample:romeo", "--out", a_file / "run", expect=2)
    assert "a part of that path is a file" in result.stderr
    result = run_cli("prepare", "sample:romeo", "--out", "/proc/huggingtweets-run", expect=2)
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: cannot write into /proc/huggingtweets-run: No such file or directory; "
        "choose another --out"
    )
    result = run_cli("collect", "sample:romeo", "--out", a_file, expect=2)
    assert "is a file" in result.stderr and "Traceback" not in result.stderr


def test_more_than_three_accounts_are_refused(tmp_path):
    sources = ["sample:romeo", "sample:juliet", "sample:gloucester", "sample:menenius"]
    result = run_cli("prepare", *sources, "--out", tmp_path / "r", expect=2)
    assert "4 sources given: a bot is made of 1 to 3 accounts" in result.stderr
    assert not (tmp_path / "r").exists()
    # Collected one by one into one run: prepare still refuses the fourth.
    for source in sources:
        run_cli("collect", source, "--out", tmp_path / "r")
    result = run_cli("prepare", "--out", tmp_path / "r", expect=2)
    assert "4 accounts in" in result.stderr


def test_update_applies_to_live_accounts_only(tmp_path):
    result = run_cli("collect", "sample:romeo", "--update", "--out", tmp_path / "r", expect=2)
    assert "--update applies to live accounts only; sample:romeo" in result.stderr


def test_empty_text_column_is_refused(tmp_path):
    posts = tmp_path / "p.csv"
    posts.write_text("text\nhello there my friend\n")
    result = run_cli("collect", posts, "--text-column", "", "--out", tmp_path / "r", expect=2)
    assert "--text-column is empty" in result.stderr


def test_re_prepare_does_not_trust_the_handle_in_account_json(tmp_path):
    run = tmp_path / "r"
    run_cli("collect", "sample:romeo", "--out", run)
    account = run / "posts" / "romeo.account.json"
    data = json.loads(account.read_text())
    account.write_text(json.dumps({**data, "handle": "../../etc"}))
    result = run_cli("prepare", "--out", run, expect=2)
    assert "names the account '../../etc'" in result.stderr


def test_a_failed_prepare_changes_neither_posts_nor_dataset(tmp_path, monkeypatch):
    """The dataset's write fails (a full disk) after the posts were staged: both stay."""
    import errno

    prepare_module = sys.modules["huggingtweets.prepare.dataset"]
    run = tmp_path / "r"
    first = tmp_path / "a.txt"
    first.write_text("\n".join(f"the first file says hello number {i} again" for i in range(300)))
    prepare(run, [str(first)], handles=["me"])
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}

    second = tmp_path / "b.txt"
    second.write_text("\n".join(f"the second file says bye number {i} again" for i in range(300)))
    real_dump = prepare_module.dump_jsonl

    def full_disk(rows):
        data = real_dump(rows)
        if any("second" in str(getattr(r, "get", lambda k: "")("text")) for r in rows):
            raise OSError(errno.ENOSPC, "No space left on device")
        return data

    monkeypatch.setattr(prepare_module, "dump_jsonl", full_disk)
    with pytest.raises(OSError):
        prepare(run, [str(second)], handles=["me"])
    after = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    assert after == before


def test_temporaries_left_by_a_killed_process_are_cleaned_by_the_next_run(tmp_path):
    run = tmp_path / "r"
    run_cli("collect", "sample:romeo", "--out", run)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    stale_file = run / "posts" / f".romeo.jsonl.{dead_pid}.abcd1234.tmp"
    stale_dir = run / f".model.{dead_pid}.abcd1234"
    alive_file = run / "posts" / f".romeo.jsonl.{os.getppid()}.abcd1234.tmp"
    for path in (stale_file, alive_file):
        path.write_text("half")
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"half")
    run_cli("prepare", "--out", run)
    assert not stale_file.exists() and not stale_dir.exists()
    assert alive_file.exists()  # its process is still running: not ours to delete


def _hidden(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*")] if run.exists() else []


def _kill_while_writing(command: list[str], run: Path, attempts: int = 5) -> list[Path]:
    """Start ``command`` and kill -9 it as soon as a temporary file (a hidden name) exists
    in ``run``; return what the kill left behind. A kill that comes after the process
    renamed its files into place leaves nothing to clean: then try again (bounded)."""
    for _ in range(attempts):
        shutil.rmtree(run, ignore_errors=True)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        try:
            while proc.poll() is None and time.monotonic() < deadline and not _hidden(run):
                time.sleep(0.001)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        left = _hidden(run)
        if left:
            return left
    pytest.fail(f"no temporary file seen in {run} while prepare ran ({attempts} tries)")


def test_killing_prepare_leaves_only_what_the_next_run_cleans(tmp_path):
    """kill -9 while a temporary file exists (not after a fixed time, which may come before
    prepare wrote anything): the re-run removes what was left behind."""
    run = tmp_path / "r"
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"post number {i} says something long enough" for i in range(200_000)))
    command = [sys.executable, "-m", "huggingtweets", "prepare", str(big), "--handle", "me",
               "--out", str(run)]  # fmt: skip
    left = _kill_while_writing(command, run)
    assert left, "the kill left nothing for the next run to clean"
    run_cli("prepare", str(big), "--handle", "me", "--out", run)
    assert _hidden(run) == []


def test_errors_from_the_library_are_user_errors():
    assert issubclass(OptionError, HuggingtweetsError)


# -- every command's --help, and its examples parse ----------------------------------------


def _commands() -> list[str]:
    from huggingtweets.cli.main import cli

    return sorted(cli.commands)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_examples_that_parse(command, tmp_path, monkeypatch):
    """Each example in --help is a command line the CLI accepts as written: parsed by the
    real click command (options, choices, argument counts), not run. (A config file an
    example names is read while parsing: an empty one stands in for it.)"""
    import shlex

    import click

    from huggingtweets.cli.main import cli

    text = run_cli(command, "--help").stdout
    assert text.startswith("Usage: ") and "Examples:" in text
    examples = [
        line.strip() for line in text.split("Examples:", 1)[1].splitlines()
        if line.strip().startswith(("huggingtweets ", "X_BEARER_TOKEN=", "accelerate "))
    ]  # fmt: skip
    assert examples, f"no examples under {command} --help"
    for example in examples:
        words = shlex.split(example.split("  #")[0], comments=False)
        words = words[words.index("huggingtweets") + 1 :] if "huggingtweets" in words else words
        if words[:2] == ["-m", "huggingtweets"]:
            words = words[2:]
        name, *args = words
        monkeypatch.chdir(tmp_path)
        for arg in args:
            if arg.endswith((".yaml", ".json")):
                (tmp_path / arg).write_text("{}")
        sub = cli.commands[name]
        try:
            sub.make_context(name, list(args))
        except click.UsageError as error:  # pragma: no cover - the failure message
            pytest.fail(f"{example!r}: {error}")
