"""Shared test helpers: the real data beside the project, and the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from huggingtweets.cli import cli

# Trainings in tests skip the evaluation that `train` runs by default (about 30 s each on
# a tiny model); tests/test_evaluate.py checks that default with the variable removed.
os.environ["HUGGINGTWEETS_EVALUATE"] = "never"

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data (real exports); skips, with the reason, when absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    return path


def run_cli(*args: object, expect: int | None = 0) -> Result:
    """Run the real ``huggingtweets`` command in-process; check its exit code."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, (
            f"exit {result.exit_code} != {expect}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def smithjd() -> Path:
    return shared_data("x-archive-smithjd")


@pytest.fixture
def dealingwith() -> Path:
    return shared_data("mastodon-dealingwith")
