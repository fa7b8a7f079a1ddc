"""One trained tiny run shared by the generate, card and demo tests.

It is ``huggingtweets demo`` itself (prepare → train → card → generate on the bundled
ROMEO & JULIET sample), in its quick form, run once per test session through the real
CLI; the tests then read, copy and sample from its run directory.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_cli

QUICK = ("--epochs", "1")


@dataclass(frozen=True)
class DemoRun:
    run_dir: Path
    stdout: str
    stderr: str

    @property
    def model_dir(self) -> Path:
        return self.run_dir / "model"


_cache: dict[str, DemoRun] = {}


def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    if "run" not in _cache:
        out = tmp_path_factory.mktemp("demo") / "romeo-juliet"
        result = run_cli("demo", "--out", out, *QUICK)
        _cache["run"] = DemoRun(out, result.stdout, result.stderr)
    return _cache["run"]


def copy_model(demo: DemoRun, run_dir: Path) -> Path:
    """The demo's trained model copied into another run directory (``run_dir/model``)."""
    target = run_dir / "model"
    shutil.copytree(demo.model_dir, target, ignore=shutil.ignore_patterns("README.md", "*.png"))
    return target
