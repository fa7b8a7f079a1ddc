"""`--config FILE`: only a small regular file is read, and its numbers are read as YAML 1.2
(and JSON) read them."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import run_cli

from huggingtweets import TrainOptions
from huggingtweets.cli.train import NOT_IN_CONFIG, train_command
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import MAX_CONFIG_BYTES, load_config_file
from huggingtweets.sweep import load_sweep_config


def _limit_memory() -> None:
    # Should the file be read after all, /dev/zero fills 1 GiB, not the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def _train_with_config(config: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`train --config` in a child process: a config read for ever times out, not the suite."""
    return subprocess.run(
        [sys.executable, "-m", "huggingtweets", "train", str(tmp_path / "run"),
         "--config", str(config)],
        capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["device link", "fifo"])
def test_a_config_that_is_no_regular_file_is_one_line(tmp_path, kind):
    config = tmp_path / "train.yaml"
    if kind == "fifo":
        os.mkfifo(config)
    else:
        config.symlink_to("/dev/zero")
    result = _train_with_config(config, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"Error: the config file {config} is not a regular file (a named pipe, socket or "
        "device cannot be read as options); save its content to a file and give that"
    )


def test_a_config_over_the_size_bound_is_refused_unread(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("seed: 3\n" + "#" * MAX_CONFIG_BYTES)
    result = run_cli("train", tmp_path / "run", "--config", config, expect=2)
    assert result.stderr.strip() == (
        f"Error: the config file {config} is more than 1 MiB, far more than a config of "
        "options ever holds; is this the right file?"
    )
    config.write_text("seed: 3\n")  # a config of the usual size is read
    assert load_config_file(config) == {"seed": 3}


def test_a_missing_config_names_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(HuggingtweetsError) as error:
        load_config_file(missing)
    assert str(error.value) == f"cannot read the config file {missing}: No such file or directory"


@pytest.mark.parametrize(
    "written, number",
    [("1e-3", 1e-3), ("5e-5", 5e-5), ("5E-05", 5e-5), ("+2.5e-1", 0.25), (".5", 0.5)],
)
def test_numbers_are_read_as_yaml_1_2_and_json_read_them(tmp_path, written, number):
    """PyYAML (YAML 1.1) reads `1e-3` as the string "1e-3": "must be a number"."""
    config = tmp_path / "train.yaml"
    config.write_text(f"learning_rate: {written}\nnum_train_epochs: {written}\n")
    data = load_config_file(config)
    assert data == {"learning_rate": number, "num_train_epochs": number}
    options = TrainOptions(**data)
    assert options.learning_rate == number and isinstance(options.learning_rate, float)


def test_what_stays_text_or_a_whole_number(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text('seed: 3\nbase_model: "1e3"\nlr_scheduler_type: 1e3x\n')
    assert load_config_file(config) == {"seed": 3, "base_model": "1e3", "lr_scheduler_type": "1e3x"}


def test_a_sweep_space_in_yaml_1_2_numbers(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("base_model: tiny\nparameters:\n  learning_rate: {min: 1e-5, max: 1e-3}\n")
    _, space = load_sweep_config(config)
    assert space == {"learning_rate": {"min": 1e-5, "max": 1e-3}}


def _config_key(param: click.Parameter) -> str:
    """The name a config file gives an option of `train`: a derived option's field name
    (its parameter is opt_<field>), else its long flag's (--keep-base-dropout)."""
    if param.name.startswith("opt_"):
        return param.name.removeprefix("opt_")
    return max(param.opts, key=len).lstrip("-").replace("-", "_")


TRAIN_OPTIONS = [p for p in train_command.params if isinstance(p, click.Option)]


@pytest.mark.parametrize("param", TRAIN_OPTIONS, ids=_config_key)
def test_every_option_of_train_is_read_from_a_config_or_refused_with_its_reason(tmp_path, param):
    """A new option of `train` is read from --config, or added to NOT_IN_CONFIG with why:
    never "unknown option" for an option the command has."""
    key = _config_key(param)
    config = tmp_path / "c.yaml"
    config.write_text(f"{key}: null\n")
    result = run_cli("train", tmp_path / "missing", "--config", config, expect=2)
    assert "Traceback" not in result.output
    if key in NOT_IN_CONFIG:
        assert result.stderr == (
            f"Error: {config}: {key!r} is not read from a config file: {NOT_IN_CONFIG[key]}\n"
        )
    else:  # read: checked as the option's value, or the run is looked for
        assert "unknown option" not in result.stderr
        assert "not read from a config file" not in result.stderr


def test_the_flow_options_and_text_column_come_from_the_config(tmp_path, monkeypatch):
    """evaluate, card (the flow's options) and text_column, as their flags would: the
    config's `evaluate: never` wins over $HUGGINGTWEETS_EVALUATE as --evaluate does."""
    monkeypatch.setenv("HUGGINGTWEETS_EVALUATE", "always")
    posts = tmp_path / "posts.csv"
    rows = [f"{i},post number {i} about the sea and the stars tonight" for i in range(200)]
    posts.write_text("id,body\n" + "\n".join(rows) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "base_model: tiny\nmax_steps: 2\nevaluate: never\ncard: false\ntext_column: body\n"
    )
    run = tmp_path / "run"
    run_cli("train", posts, "--handle", "me", "--out", run, "--config", config)
    assert (run / "model" / "model.safetensors").is_file()
    assert not (run / "evaluation.json").exists()
    assert not (run / "model" / "README.md").exists()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('card: "no"', "card must be true or false (got 'no')"),  # not "--no-card must be"
        ("card: null", "card must be true or false (got nothing)"),
        ("evaluate: sometimes", "evaluate must be one of auto, always, never (got 'sometimes')"),
        ("max_steps: [1, 2]", "max_steps must be a whole number (<=100000000) (got [1, 2])"),
        ("lora: {r: 8}", "lora must be true or false (got {'r': 8})"),
        ("text_column: 5", "text_column must be text, a field's name (got 5)"),
    ],
)
def test_a_bad_value_in_a_config_names_the_file_and_its_key_not_a_flag(tmp_path, line, says):
    """The user wrote a key of the file, not a flag: the file and the key are named (a
    `card: "no"` said as "--no-card must be true or false" reads backwards)."""
    config = tmp_path / "c.yaml"
    config.write_text(line + "\n")
    result = run_cli("train", tmp_path / "missing", "--config", config, expect=2)
    assert result.stderr == f"Error: {config}: {says}\n"
    # The same value given as a flag is still said as the flag.
    result = run_cli("train", tmp_path / "missing", "--max-steps", "x", expect=2)
    assert "--max-steps" in result.stderr


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("max_steps: 1\nmax-steps: 3\n", "'max_steps' and 'max-steps'"),
        ("max_steps: 1\nmax_steps: 3\n", "'max_steps' twice"),
        ('{"seed": 1, "seed": 2}\n', "'seed' twice"),
    ],
)
def test_a_key_given_twice_in_a_config_is_refused_not_one_silently_dropped(tmp_path, text, key):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(HuggingtweetsError) as caught:
        load_config_file(config)
    assert key in str(caught.value) and str(caught.value).startswith(f"{config}: ")
    anchors = tmp_path / "a.yaml"  # a YAML merge key (<<) overriding is not a repeat
    anchors.write_text("base: &b {min: 1, max: 2}\nparameters:\n  lr: {<<: *b, max: 3}\n")
    assert load_config_file(anchors)["parameters"] == {"lr": {"min": 1, "max": 3}}
