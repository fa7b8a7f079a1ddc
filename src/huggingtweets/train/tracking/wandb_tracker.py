"""W&B: the original huggingtweets' lineage. A ``preprocess`` run logs the collected posts
(``raw-dataset``, public posts only) and the prepared data (``train-dataset``, with the stats
table); a ``train`` run *uses* them and the base model (``pretrained-model``: a reference to
the Hub id or the local folder), records the hyper-parameters, the losses (Trainer's own
W&B callback) and a predictions table, and logs the result as ``finetuned-model``. Runs go
where W&B puts them: ``./wandb`` (``WANDB_DIR``, ``WANDB_MODE=offline``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import PUBLIC_VISIBILITIES, dump_jsonl, read_posts
from huggingtweets.core.runs import RunDir
from huggingtweets.model.loading import first_line, resolve_model
from huggingtweets.train.tracking.common import (
    PREDICTION_COLUMNS,
    STAGE,
    Backend,
    TrackingContext,
    prediction_rows,
    safe_config,
    stats_rows,
    summary_metrics,
    train_config,
)

WANDB_PROJECT = "huggingtweets"  # the original's project name


def artifact_name(text: str) -> str:
    """A W&B artifact name from handles or a model id: letters, digits, '-', '_', '.'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")[:120] or "run"


def model_files(folder: Path) -> list[tuple[Path, str]]:
    """A folder's files and their names inside it (file by file: W&B prints a notice on
    the terminal for every folder it is given)."""
    folder = Path(folder)
    return [(p, p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]


def public_posts(run: RunDir, handle: str) -> bytes:
    """``posts/<handle>.jsonl`` with public posts only. Private posts' text is never
    written there (their records are kept to be counted); here the records go too."""
    posts = read_posts(run.posts_path(handle))
    return dump_jsonl([p for p in posts if p.visibility in PUBLIC_VISIBILITIES])


class WandBTracker(Backend):
    """W&B: the preprocess → train lineage through artifacts, as the original logged it."""

    name = "wandb"

    def __init__(self, ctx: TrackingContext) -> None:
        import wandb

        super().__init__(ctx)
        self.wandb = wandb
        self.run = None
        self.model_metadata: dict | None = None  # set once trained: the model is logged
        self.info: dict[str, Any] = ctx.info.setdefault("wandb", {"artifacts": []})

    # artifacts

    def _raw_dataset(self):
        run = self.ctx.run
        handles = run.collected_handles()
        if not handles:
            return None
        artifact = self.wandb.Artifact(
            f"raw-dataset-{artifact_name(self.ctx.name)}",
            type="raw-dataset",
            description="The collected posts, public ones only.",
            metadata={"handles": handles},
        )
        for handle in handles:
            with artifact.new_file(f"{handle}.jsonl", mode="xb") as out:
                out.write(public_posts(run, handle))
            account = run.account_path(handle)
            if account.exists():
                artifact.add_file(str(account), name=account.name)
        return artifact

    def _train_dataset(self):
        run = self.ctx.run
        artifact = self.wandb.Artifact(
            f"train-dataset-{artifact_name(self.ctx.name)}",
            type="train-dataset",
            description="The cleaned posts: train/validation split and per-account stats.",
            metadata=safe_config({"prepare_options": self.ctx.stats.get("options")}),
        )
        for path in (run.train_path, run.valid_path, run.stats_path):
            artifact.add_file(str(path), name=path.name)
        artifact.add(self._stats_table(), "stats")
        return artifact

    def _stats_table(self):
        columns, rows = stats_rows(self.ctx.stats)
        return self.wandb.Table(columns=columns, data=rows)

    def _pretrained_model(self, base_dir: Path | None):
        """A reference, not a copy: the Hub id's page, or the local folder's files."""
        base = self.ctx.options.base_model
        artifact = self.wandb.Artifact(
            f"pretrained-model-{artifact_name(base if base_dir is None else Path(base).name)}",
            type="pretrained-model",
            metadata=safe_config({"base_model": base}),
        )
        if base_dir is None:
            artifact.add_reference(f"https://huggingface.co/{base}", checksum=False)
        else:
            for path, name in model_files(base_dir):
                artifact.add_reference(path.resolve().as_uri(), name=name)
        return artifact

    def _note(self, artifact, **roles: str) -> None:
        entry = {"name": artifact.name.split(":")[0], "type": artifact.type, **roles}
        self.info["artifacts"].append(entry)

    def _use(self, run, artifact) -> None:
        """``run`` uses ``artifact``. Offline, W&B refuses ``use_artifact``; the record
        it writes online for a new artifact (logged with ``use_after_commit``) is written
        instead, so that ``wandb sync`` links it like an online run."""
        offline = getattr(run, "offline", None)
        if offline is None:
            offline = run.settings.mode == "offline"
        if not offline:
            run.use_artifact(artifact)
        elif hasattr(run, "_log_artifact"):
            run._log_artifact(artifact, is_user_created=True, use_after_commit=True)
        else:
            self.ctx.reporter.warning(
                STAGE, f"W&B offline cannot record that the run uses {artifact.name}"
            )

    # runs

    def _init(self, job_type: str, config: dict):
        wandb = self.wandb
        try:
            with _weave_left_alone():
                return wandb.init(
                    project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT,
                    job_type=job_type,
                    name=f"{self.ctx.name}-{job_type}",
                    group=self.ctx.group,
                    config=config,
                    # Our progress is drawn as events; W&B's own notices and its copy of
                    # the terminal's output would only repeat or break them up.
                    settings=wandb.Settings(silent=True, console="off"),
                )
        except Exception as exc:
            raise HuggingtweetsError(
                f"cannot start W&B ({job_type} run): {first_line(exc)} (log in with "
                "`wandb login`, or set WANDB_MODE=offline)"
            ) from None

    def _describe(self, run, prefix: str) -> None:
        offline = run.settings.mode == "offline"
        self.info.update(
            {
                "project": run.project,
                "entity": run.entity or None,
                "mode": "offline" if offline else "online",
            }
        )
        url = None if offline else run.url
        self.info[f"{prefix}run_id"] = run.id
        self.info[f"{prefix}run_url"] = url
        if offline:
            self.info.setdefault("offline_dirs", []).append(str(Path(run.dir).parent))

    def start(self) -> None:
        ctx = self.ctx
        if ctx.log_data:
            self._log_data()
        self.run = self._init("train", train_config(ctx))
        self._describe(self.run, "")
        if self.info.get("run_url"):
            self.info["model_url"] = self.info["run_url"] + "/artifacts"
        dataset = self._train_dataset()
        self._use(self.run, dataset)
        roles = {"logged_by": "preprocess"} if ctx.log_data else {}
        self._note(dataset, used_by="train", **roles)
        if ctx.options.base_model != "tiny":  # tiny is built while training: used after it
            resolved = resolve_model(ctx.options.base_model)
            self._use_base(None if resolved.kind == "hub" else Path(resolved.location))
        ctx.reporter.info(STAGE, f"W&B train run {self.run.id} ({self.info['mode']})")

    def _use_base(self, folder: Path | None) -> None:
        artifact = self._pretrained_model(folder)
        self._use(self.run, artifact)
        self._note(artifact, used_by="train")

    def _log_data(self) -> None:
        ctx = self.ctx
        config = safe_config(
            {
                "handles": [a.get("handle") for a in ctx.stats.get("accounts", [])],
                "prepare_options": ctx.prepare_options or ctx.stats.get("options"),
                "prepared_now": ctx.prepare_options is not None,
            }
        )
        run = self._init("preprocess", config)
        try:
            raw = self._raw_dataset()
            if raw is not None:
                run.log_artifact(raw)
                self._note(raw, logged_by="preprocess")
            dataset = self._train_dataset()
            run.log_artifact(dataset)
            run.log({"stats": self._stats_table()})
            self._describe(run, "data_")
            if self.info.get("data_run_url"):
                self.info["data_url"] = self.info["data_run_url"] + "/artifacts"
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish()
        ctx.reporter.info(STAGE, f"W&B preprocess run {run.id}: the posts and dataset logged")

    def trained(self, result, generation) -> None:
        wandb, run = self.wandb, self.run
        if self.ctx.options.base_model == "tiny":
            self._use_base(self.ctx.run.output_dir / "tiny-base")
        run.config.update(
            safe_config({"hyperparameters": result.metrics.get("hyperparameters")}),
            allow_val_change=True,
        )
        run.summary.update(summary_metrics(result.metrics))
        table = wandb.Table(columns=PREDICTION_COLUMNS, data=prediction_rows(generation))
        run.log({"predictions": table})
        self.model_metadata = safe_config(
            {
                "base_model": result.metrics.get("base_model"),
                **summary_metrics(result.metrics),
                "hyperparameters": result.metrics.get("hyperparameters"),
            }
        )
        self.info["artifacts"].append(
            {
                "name": f"finetuned-model-{artifact_name(self.ctx.name)}",
                "type": "finetuned-model",
                "logged_by": "train",
            }
        )

    def close(self, error: BaseException | None) -> None:
        run = self.run
        if run is None:
            return
        if error is None and self.model_metadata is not None:
            artifact = self.wandb.Artifact(
                f"finetuned-model-{artifact_name(self.ctx.name)}",
                type="finetuned-model",
                description="The fine-tuned model, its card and memorization guard.",
                metadata=self.model_metadata,
            )
            for path, name in model_files(self.ctx.run.model_dir):
                artifact.add_file(str(path), name=name)
            run.log_artifact(artifact)
        run.finish(exit_code=0 if error is None else 1)
        self.run = None
        if error is None and self.info.get("mode") == "offline":
            dirs = " ".join(self.info.get("offline_dirs", []))
            self.ctx.reporter.info(STAGE, f"W&B runs kept offline; upload with: wandb sync {dirs}")


@contextlib.contextmanager
def _weave_left_alone() -> Iterator[None]:
    """wandb.init starts W&B Weave, or prints (past its silent setting) a notice
    suggesting it, whenever huggingface_hub.inference or another LLM client is imported
    (Gradio imports it, in the web app): we trace no LLM calls, so the integration is off
    unless the user set WANDB_DISABLE_WEAVE themselves."""
    given = os.environ.get("WANDB_DISABLE_WEAVE")
    if given is None:
        os.environ["WANDB_DISABLE_WEAVE"] = "true"
    try:
        yield
    finally:
        if given is None:
            os.environ.pop("WANDB_DISABLE_WEAVE", None)
