"""Tracking (--report-to wandb / tensorboard / mlflow), read back with each tool's reader.

One tiny training logs to all three at once (W&B offline, MLflow in a local SQLite store,
TensorBoard event files); the tests then read what each tool wrote with its own reader:
``wandb leet inspect`` (wandb-core's reader of the offline runs' logs), MlflowClient,
tensorboard's EventAccumulator.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from conftest import run_cli

pytest.importorskip("wandb")
pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

SECRETS = {
    "HF_TOKEN": "hf_trackingTestFakeToken0123456789",
    "X_BEARER_TOKEN": "AAAAtrackingTestFakeBearer%2B0123456789",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
}
PRIVATE_MARKER = "zebraprivatemarker"  # only in followers-only / direct posts
WORDS = (
    "river morning garden letter window candle harbor meadow silver thunder orchard "
    "lantern journey whisper velvet compass"
).split()


def _posts_file(path: Path) -> Path:
    """An account of 60 public posts (about 9,000 characters) and 3 private ones."""
    rows = []
    for i in range(60):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(22)]
        rows.append({"id": f"p{i}", "text": f"post {i}: " + " ".join(words)})
    for i, visibility in enumerate(("followers", "direct", "private")):
        text = f"{PRIVATE_MARKER} secret plans number {i} for my closest friends only"
        rows.append({"id": f"secret{i}", "text": text, "visibility": visibility})
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """`train SOURCE... --out RUN --report-to wandb --report-to tensorboard --report-to
    mlflow` on a tiny model, every tool writing under one temporary folder."""
    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # MLflow's artifacts and anything else relative go here
        for name, value in {
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(root),
            "WANDB_DATA_DIR": str(root / "wandb-data"),
            "WANDB_CACHE_DIR": str(root / "wandb-cache"),
            "WANDB_CONFIG_DIR": str(root / "wandb-config"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            **SECRETS,
        }.items():
            mp.setenv(name, value)
        mp.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
        mp.delenv("WANDB_DISABLE_WEAVE", raising=False)
        # As in the web app's process (Gradio imports it): W&B then suggests Weave, on
        # the terminal, unless told not to (tracking.wandb_tracker._weave_left_alone).
        import huggingface_hub.inference  # noqa: F401

        run = root / "run"
        source = _posts_file(root / "mine.jsonl")
        cli = run_cli(
            "train", "sample:romeo", source, "--out", run, "--base-model", "tiny",
            "--max-steps", "2", "--block-size", "64",
            "--report-to", "wandb", "--report-to", "tensorboard", "--report-to", "mlflow",
        )  # fmt: skip
        metrics = orjson.loads((run / "metrics.json").read_bytes())
        yield SimpleNamespace(
            root=root, run=run, metrics=metrics, wandb_files=_wandb_files(root), cli=cli
        )


# -- W&B: the offline runs, read back by wandb's own reader -------------------------------


def _leet(path: Path, *flags: str) -> bytes:
    """``wandb leet inspect --json``: wandb-core's own reader of a run's ``.wandb`` log
    (its records as JSON lines; with ``--summary``, the run's state, merged config and
    summary as one object). Offline (WANDB_MODE), it sends nothing anywhere."""
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(path)]
    return subprocess.run(command, capture_output=True, check=True, timeout=120).stdout


@dataclass(frozen=True)
class WandbRun:
    path: Path
    records: tuple[dict, ...]

    def of(self, kind: str) -> list[dict]:
        return [r[kind] for r in self.records if r["type"] == kind]

    def artifacts(self) -> dict[str, dict]:
        """type → artifact record (W&B also stores each logged table as a "run_table")."""
        return {a["type"]: a for a in self.of("artifact") if a["type"] != "run_table"}

    def history_keys(self) -> set[str]:
        """What was logged: a metric's key, a table's name (the reader writes its fields
        as ``name.field``)."""
        return {key.split(".")[0] for h in self.of("history") for key in h["item"]}

    def summary(self) -> dict:
        return orjson.loads(_leet(self.path, "--summary"))


def _used(artifact: dict) -> bool:
    """Recorded as used by the run, not produced (the JSON leaves out a false flag)."""
    return artifact.get("use_after_commit", False)


@functools.cache
def _wandb_run(path: Path) -> WandbRun:
    lines = _leet(path).splitlines()
    return WandbRun(path, tuple(orjson.loads(line) for line in lines if line.strip()))


def _wandb_files(root: Path) -> list[Path]:
    return sorted(root.glob("wandb/offline-run-*/run-*.wandb"))


def _wandb_runs(paths: list[Path]) -> dict[str, WandbRun]:
    """job type → that offline run."""
    runs = {}
    for path in paths:
        run = _wandb_run(path)
        (record,) = run.of("run")
        runs[record["job_type"]] = run
    return runs


def test_wandb_lineage_preprocess_then_train(tracked):
    """The original's lineage: preprocess logs raw-dataset and train-dataset; train uses
    train-dataset (the same version: the same digest) and pretrained-model, and logs
    finetuned-model."""
    metrics, wandb_files = tracked.metrics, tracked.wandb_files
    runs = _wandb_runs(wandb_files)
    assert set(runs) == {"preprocess", "train"}
    logged = runs["preprocess"].artifacts()
    assert set(logged) == {"raw-dataset", "train-dataset"}
    assert not any(_used(a) for a in logged.values())
    train = runs["train"].artifacts()
    assert set(train) == {"train-dataset", "pretrained-model", "finetuned-model"}
    assert _used(train["train-dataset"])  # used, not produced
    assert _used(train["pretrained-model"])
    assert not _used(train["finetuned-model"])  # produced
    assert train["train-dataset"]["digest"] == logged["train-dataset"]["digest"]  # use → log
    assert train["train-dataset"]["name"] == logged["train-dataset"]["name"]
    model_files = {entry["path"] for entry in train["finetuned-model"]["manifest"]["contents"]}
    assert {"model.safetensors", "config.json", "README.md"} <= model_files
    assert {"stats"} <= runs["preprocess"].history_keys()
    assert {"predictions", "train/loss", "eval/loss"} <= runs["train"].history_keys()
    summary = runs["train"].summary()
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    assert {"train_options", "hyperparameters", "learning_rate"} <= set(summary["config"])
    assert summary["summary"]["eval_loss_after"] == pytest.approx(metrics["eval_loss_after"])
    # metrics.json names the runs and artifacts (no URL offline: nothing to link to yet)
    wandb = metrics["tracking"]["wandb"]
    assert wandb["mode"] == "offline" and wandb["run_url"] is None
    assert {a["type"] for a in wandb["artifacts"]} == {
        "raw-dataset",
        "train-dataset",
        "pretrained-model",
        "finetuned-model",
    }
    assert metrics["options"]["report_to"] == ["wandb", "tensorboard", "mlflow"]


def test_the_trackers_keep_off_the_terminal(tracked):
    """Progress is our events; W&B's and MLflow's own notices are not printed."""
    err = tracked.cli.stderr
    assert "wandb:" not in err and "Creating initial MLflow database" not in err
    assert "W&B runs kept offline; upload with: wandb sync" in err  # said once, by us


def test_raw_dataset_holds_public_posts_only(tracked):
    run, wandb_files = tracked.run, tracked.wandb_files
    raw = _wandb_runs(wandb_files)["preprocess"].artifacts()["raw-dataset"]
    files = {entry["path"]: Path(entry["local_path"]) for entry in raw["manifest"]["contents"]}
    assert {"mine.jsonl", "romeo.jsonl", "romeo.account.json"} <= set(files)
    mine = [orjson.loads(line) for line in files["mine.jsonl"].read_bytes().splitlines()]
    assert len(mine) == 60 and all(p["visibility"] == "public" for p in mine)
    # posts/ keeps the private posts' records (counted), without their text
    posts = (run / "posts" / "mine.jsonl").read_bytes().splitlines()
    kept = [orjson.loads(line) for line in posts]
    assert sum(p["id"].startswith("secret") for p in kept) == 3


def test_nothing_secret_or_private_is_logged(tracked):
    """No token from the environment, and no private post's words, in anything the three
    trackers wrote (configs, summaries, tables, artifacts, databases)."""
    root = tracked.root
    source = root / "mine.jsonl"  # the export itself, private posts and all
    written = [p for p in root.rglob("*") if p.is_file() and p != source]
    assert len(written) > 20
    needles = [v.encode() for v in SECRETS.values()] + [PRIVATE_MARKER.encode()]
    for path in written:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} in {path}"


def test_train_run_dir_logs_its_dataset_and_the_train_run(tracked, tmp_path):
    """`train RUN_DIR --report-to wandb`: the run's dataset (unchanged: the same version as
    the first preprocess run logged) and a train run that uses it."""
    root, run, first_files = tracked.root, tracked.run, tracked.wandb_files  # W&B offline
    out = tmp_path / "trial"
    run_cli(
        "train", run, "--output-dir", out, "--base-model", "tiny", "--max-steps", "1",
        "--block-size", "64", "--report-to", "wandb", "--no-card",
    )  # fmt: skip
    runs = _wandb_runs([p for p in _wandb_files(root) if p not in first_files])
    assert set(runs) == {"preprocess", "train"}
    assert runs["preprocess"].summary()["config"]["prepared_now"] is False
    before = _wandb_runs(first_files)["preprocess"].artifacts()["train-dataset"]
    logged = runs["preprocess"].artifacts()["train-dataset"]
    used = runs["train"].artifacts()
    assert before["digest"] == logged["digest"] == used["train-dataset"]["digest"]
    assert _used(used["train-dataset"])
    assert {"pretrained-model", "finetuned-model"} <= set(used)
    tracking = orjson.loads((out / "metrics.json").read_bytes())["tracking"]
    assert set(tracking) == {"wandb"}


# -- MLflow ------------------------------------------------------------------------------


def test_mlflow_run_read_back(tracked):
    from mlflow import MlflowClient

    root, metrics = tracked.root, tracked.metrics
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    info = metrics["tracking"]["mlflow"]
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["huggingtweets/train_options/base_model"] == "tiny"
    assert params["huggingtweets/handles"] == "['romeo', 'mine']"
    assert "learning_rate" in params  # Trainer's own callback, same run
    assert run.data.metrics["eval_loss_after"] == pytest.approx(metrics["eval_loss_after"])
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2  # each step's loss
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"dataset", "model", "predictions.md", "predictions.json", "hyperparameters.json"} <= (
        top
    )
    model = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model.safetensors", "README.md", "memorization_guard.safetensors"} <= model
    predictions = orjson.loads(
        Path(client.download_artifacts(run.info.run_id, "predictions.json", str(root))).read_bytes()
    )
    assert predictions["columns"] == ["prompt", "generation", "memorized", "why"]
    assert len(predictions["data"]) == 5


# -- TensorBoard -------------------------------------------------------------------------


def test_tensorboard_events_read_back(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, metrics = tracked.run, tracked.metrics
    log_dir = Path(metrics["tracking"]["tensorboard"]["log_dir"])
    assert log_dir.parent == run / "tensorboard"  # beside the model, not under checkpoints/
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "eval/loss", "hparam/eval_loss_after"} <= set(tags["scalars"])
    assert {
        "predictions/text_summary",
        "dataset/stats/text_summary",
        "hyperparameters/text_summary",
    } <= set(tags["tensors"])
    (stats,) = events.Tensors("dataset/stats/text_summary")
    text = stats.tensor_proto.string_val[0].decode()
    assert "| romeo | sample |" in text and "| mine | file |" in text
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    hparams = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    logged = HParamsPluginData.FromString(hparams).session_start_info.hparams
    assert logged["learning_rate"].number_value == pytest.approx(1e-3)  # tiny's default
    assert logged["base_model"].string_value == "tiny"
    assert logged["block_size"].number_value == 64


# -- bad input ---------------------------------------------------------------------------


def test_a_tracker_that_cannot_start_is_one_line(tracked, tmp_path, monkeypatch):
    run = tracked.run
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/a-file/mlflow.db")
    result = run_cli(
        "train", run, "--report-to", "mlflow", "--base-model", "tiny", "--max-steps", "1",
        "--output-dir", tmp_path / "out", expect=2,
    )  # fmt: skip
    assert result.stderr.startswith("Error: cannot start MLflow at sqlite:")
    assert result.stderr.count("\n") == 1


def test_safe_config_drops_secret_keys_and_redacts_values(monkeypatch):
    from huggingtweets.train.tracking import safe_config

    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    data = {
        "hub_token": "x" * 12,
        "api_key": "y" * 12,
        "author": "kept",
        "nested": {"note": f"token is {SECRETS['HF_TOKEN']}", "path": Path("/a/b")},
        "list": [SECRETS["HF_TOKEN"]],
    }
    assert safe_config(data) == {
        "author": "kept",
        "nested": {"note": "token is ***", "path": "/a/b"},
        "list": ["***"],
    }
