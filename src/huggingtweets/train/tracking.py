"""Tracking: the original huggingtweets' W&B lineage, and the same story in TensorBoard
and MLflow.

``--report-to wandb`` gives what the original's cards link to: a ``preprocess`` run that
logs the collected posts (``raw-dataset``, public posts only) and the prepared data
(``train-dataset``, with the stats table), then a ``train`` run that *uses* them and the
base model (``pretrained-model``: a reference to the Hub id or the local folder), records
the hyper-parameters, the losses (Trainer's own W&B callback), a predictions table
(prompt → generation, memorization flag), and logs the result as ``finetuned-model``.
``--report-to tensorboard`` and ``--report-to mlflow`` get the same content in those
tools' terms: hyper-parameters, the data's stats, losses, samples as text, and (MLflow)
the model as an artifact. Where a tool stores things is its own convention: W&B's
``./wandb`` (``WANDB_DIR``, ``WANDB_MODE=offline``), MLflow's local store (``MLFLOW_TRACKING_URI``,
else its default: ``./mlflow.db`` or ``./mlruns``), TensorBoard under
``<output>/tensorboard/`` (``TENSORBOARD_LOGGING_DIR``).

:func:`track` wraps the train stage (``pipeline.make_bot`` calls it)::

    with track(run, options, reporter) as tracker:
        result = train(run, tracker.train_options, callbacks=tracker.callbacks)
        tracker.trained(result)          # predictions, summaries; metrics.json["tracking"]
        write_card(run)                  # the card can link to the W&B runs
    # leaving: the model (with its card) logged, the runs closed (failed on an exception)

Nothing secret is logged: configs are built from the option dataclasses, keys that name
a secret are dropped and every string goes through :func:`secrets.redact`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import options_to_dict
from huggingtweets.core.records import PUBLIC_VISIBILITIES, dump_jsonl, read_posts
from huggingtweets.core.runs import RunDir, write_json

if TYPE_CHECKING:
    from huggingtweets.train.recipe import TrainOptions

__all__ = ["ARTIFACT_TYPES", "TRACKERS", "Tracker", "chosen_trackers", "safe_config", "track"]

STAGE = "track"
# In the order they start: the local ones first, then W&B (which may need a login).
TRACKERS = ("tensorboard", "mlflow", "wandb")
ARTIFACT_TYPES = ("raw-dataset", "train-dataset", "pretrained-model", "finetuned-model")
WANDB_PROJECT = "huggingtweets"  # the original's project name
MLFLOW_EXPERIMENT = "huggingtweets"
PREDICTIONS = 5  # samples in the predictions table
# Config keys that name a secret: dropped whatever their value (a token read from a
# file, a password in a URL's options ...).
_SECRET_KEY_RE = re.compile(
    r"(?:^|[_.\-/])(?:token|secret|password|passwd|api_?key|credentials?|bearer)(?:$|[_.\-/])",
    re.IGNORECASE,
)


# -- what is logged ---------------------------------------------------------------------


def chosen_trackers(report_to: Sequence[str]) -> tuple[str, ...]:
    """The trackers of ``report_to`` that this module logs to (``all``: those installed)."""
    names = list(report_to)
    if "all" in names:
        from transformers.integrations.integration_utils import (
            get_available_reporting_integrations,
        )

        names = get_available_reporting_integrations()
    return tuple(name for name in TRACKERS if name in names)


def safe_config(data: Any) -> Any:
    """``data`` fit to be logged: keys naming a secret dropped, secrets' values redacted,
    paths as text."""
    from huggingtweets.core.secrets import redactor

    redact = redactor()

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items() if not _SECRET_KEY_RE.search(str(k))}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, str):
            return redact(value)
        return value

    return clean(data)


def _flat(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a/b": 1}; None and lists as text (what TensorBoard and MLflow
    accept as a hyper-parameter)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, name + "/"))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = "none" if value is None else str(value)
    return out


def _artifact_name(text: str) -> str:
    """A W&B artifact name from handles or a model id: letters, digits, '-', '_', '.'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")[:120] or "run"


def _stats_rows(stats: dict) -> tuple[list[str], list[list[Any]]]:
    """The stats table: one row per account, the drop categories in their order."""
    categories = [c for c in stats.get("categories", []) if c != "kept"]
    columns = ["account", "platform", "downloaded", *categories, "kept", "train", "valid"]
    rows = []
    for account in stats.get("accounts", []):
        split = account.get("split") or {}
        rows.append(
            [
                account.get("handle"),
                account.get("platform"),
                account.get("downloaded"),
                *(account.get(c) for c in categories),
                account.get("kept"),
                split.get("train"),
                split.get("valid"),
            ]
        )
    return columns, rows


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _files(folder: Path) -> list[tuple[Path, str]]:
    """A folder's files and their names inside it (file by file: W&B prints a notice on
    the terminal for every folder it is given)."""
    folder = Path(folder)
    return [(p, p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]


def public_posts(run: RunDir, handle: str) -> bytes:
    """``posts/<handle>.jsonl`` with public posts only. Private posts' text is never
    written there (their records are kept to be counted); here the records go too."""
    posts = read_posts(run.posts_path(handle))
    return dump_jsonl([p for p in posts if p.visibility in PUBLIC_VISIBILITIES])


# -- the tracker ------------------------------------------------------------------------


@dataclass
class _Context:
    run: RunDir
    options: TrainOptions
    reporter: Reporter
    stats: dict
    prepare_options: dict | None
    name: str  # the handles, for run and artifact names
    group: str | None
    log_data: bool
    info: dict = field(default_factory=dict)  # what metrics.json["tracking"] records


class Tracker:
    """The trackers of one training run (none: every method does nothing)."""

    def __init__(self, options: TrainOptions, context: _Context | None, backends: list) -> None:
        self.context = context
        self.backends = backends
        self._options = options

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.backends)

    @property
    def train_options(self):
        """The options to train with. TensorBoard is logged here, into the run rather than
        into Trainer's default place under checkpoints/, which is deleted after training."""
        options = self._options
        if "tensorboard" not in self.active:
            return options
        names = list(options.report_to)
        if "all" in names:
            from transformers.integrations.integration_utils import (
                get_available_reporting_integrations,
            )

            names = get_available_reporting_integrations()
        kept = [n for n in names if n != "tensorboard"]
        return replace(options, report_to=kept or ["none"])

    @property
    def callbacks(self) -> list:
        return [cb for backend in self.backends for cb in backend.callbacks()]

    def trained(self, result) -> None:
        """After training: predictions, summaries and the model's facts logged; the
        trackers' links recorded in metrics.json (``tracking``) for the card."""
        if not self.backends or not result.main_process:
            return
        ctx = self.context
        generation = _predictions(result.model_dir, ctx)
        for backend in self.backends:
            backend.trained(result, generation)
        metrics = dict(result.metrics)
        # The options as given (TensorBoard was taken out of Trainer's report_to above).
        metrics["options"] = {**metrics.get("options", {}), "report_to": ctx.options.report_to}
        metrics["tracking"] = safe_config(ctx.info)
        result.metrics.clear()
        result.metrics.update(metrics)
        write_json(ctx.run.metrics_path, metrics)

    def _start(self) -> None:
        for backend in self.backends:
            backend.start()

    def _close(self, error: BaseException | None) -> None:
        first: BaseException | None = None
        for backend in self.backends:
            try:
                backend.close(error)
            except BaseException as exc:  # close every tracker, then say what failed
                first = first or exc
        if first is not None and error is None:
            raise first


@contextlib.contextmanager
def track(
    run: RunDir | Path | str,
    options,
    reporter: Reporter | None = None,
    *,
    prepare_options: Mapping | None = None,
    log_data: bool = True,
    group: str | None = None,
    name: str | None = None,
) -> Iterator[Tracker]:
    """The trackers named in ``options.report_to`` around a train stage (see the module).

    ``log_data=False`` skips the W&B preprocess run (a sweep's trials share one dataset);
    ``group`` groups W&B runs; ``name`` replaces the handles in run names.
    """
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    names = chosen_trackers(options.report_to)
    if not names or os.environ.get("RANK", "0") != "0":  # under torchrun: the first only
        yield Tracker(options, None, [])
        return
    stats = _read_stats(run)
    handles = "-".join(a.get("handle", "") for a in stats.get("accounts", [])) or run.root.name
    ctx = _Context(
        run=run,
        options=options,
        reporter=reporter_or_silent(reporter),
        stats=stats,
        prepare_options=dict(prepare_options) if prepare_options is not None else None,
        name=name or handles,
        group=group,
        log_data=log_data,
    )
    tracker = Tracker(options, ctx, [_backend(name, ctx) for name in names])
    try:
        tracker._start()
        yield tracker
    except BaseException as error:
        tracker._close(error)
        raise
    tracker._close(None)


def _backend(name: str, ctx: _Context):
    makers = {"wandb": _WandB, "tensorboard": _TensorBoard, "mlflow": _MLflow}
    try:
        return makers[name](ctx)
    except ImportError as exc:  # found by transformers, but broken or incomplete
        raise HuggingtweetsError(
            f"--report-to {name}: cannot load it ({exc}); pip install 'huggingtweets[track]'"
        ) from None


def _read_stats(run: RunDir) -> dict:
    try:
        stats = orjson.loads(run.stats_path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return stats if isinstance(stats, dict) else {}


def _predictions(model_dir: Path, ctx: _Context):
    """A few samples of the trained model for the posts' language's prompt, each checked
    by the memorization guard."""
    from huggingtweets.core.language import default_prompt, main_language
    from huggingtweets.generate.generator import GenerateOptions, Generator
    from huggingtweets.train.packing import read_texts

    stats = ctx.stats or {"accounts": []}
    try:
        texts = read_texts(ctx.run.train_path)[:500]
        language = main_language(stats, texts) if stats.get("accounts") else None
    except HuggingtweetsError:
        language = None
    generator = Generator.load(model_dir)
    return generator.generate(
        default_prompt(language),
        GenerateOptions(num_return_sequences=PREDICTIONS, seed=ctx.options.seed),
    )


def _prediction_rows(generation) -> list[list[Any]]:
    return [
        [generation.prompt, s.text, s.flagged, s.copy.describe() if s.copy else ""]
        for s in generation.samples
    ]


PREDICTION_COLUMNS = ["prompt", "generation", "memorized", "why"]


def _summary(metrics: dict) -> dict[str, float]:
    keys = ("eval_loss_before", "eval_loss_after", "perplexity_before", "perplexity_after")
    out = {k: float(metrics[k]) for k in keys if isinstance(metrics.get(k), int | float)}
    if isinstance(metrics.get("best_epoch"), int | float):
        out["best_epoch"] = float(metrics["best_epoch"])
    seconds = (metrics.get("timings") or {}).get("train_seconds")
    if isinstance(seconds, int | float):
        out["train_seconds"] = float(seconds)
    return out


def _train_config(ctx: _Context) -> dict:
    return safe_config(
        {
            "handles": [a.get("handle") for a in ctx.stats.get("accounts", [])],
            "platforms": [a.get("platform") for a in ctx.stats.get("accounts", [])],
            "train_options": options_to_dict(ctx.options),
            "prepare_options": ctx.prepare_options or ctx.stats.get("options"),
        }
    )


# -- W&B ----------------------------------------------------------------------------------


class _WandB:
    """W&B: the preprocess → train lineage through artifacts, as the original logged it."""

    name = "wandb"

    def __init__(self, ctx: _Context) -> None:
        import wandb

        self.wandb = wandb
        self.ctx = ctx
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
            f"raw-dataset-{_artifact_name(self.ctx.name)}",
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
            f"train-dataset-{_artifact_name(self.ctx.name)}",
            type="train-dataset",
            description="The cleaned posts: train/validation split and per-account stats.",
            metadata=safe_config({"prepare_options": self.ctx.stats.get("options")}),
        )
        for path in (run.train_path, run.valid_path, run.stats_path):
            artifact.add_file(str(path), name=path.name)
        artifact.add(self._stats_table(), "stats")
        return artifact

    def _stats_table(self):
        columns, rows = _stats_rows(self.ctx.stats)
        return self.wandb.Table(columns=columns, data=rows)

    def _pretrained_model(self, base_dir: Path | None):
        """A reference, not a copy: the Hub id's page, or the local folder's files."""
        base = self.ctx.options.base_model
        artifact = self.wandb.Artifact(
            f"pretrained-model-{_artifact_name(base if base_dir is None else Path(base).name)}",
            type="pretrained-model",
            metadata=safe_config({"base_model": base}),
        )
        if base_dir is None:
            artifact.add_reference(f"https://huggingface.co/{base}", checksum=False)
        else:
            for path, name in _files(base_dir):
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
            from huggingtweets.model.loading import first_line

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
        self.run = self._init("train", _train_config(ctx))
        self._describe(self.run, "")
        if self.info.get("run_url"):
            self.info["model_url"] = self.info["run_url"] + "/artifacts"
        dataset = self._train_dataset()
        self._use(self.run, dataset)
        roles = {"logged_by": "preprocess"} if ctx.log_data else {}
        self._note(dataset, used_by="train", **roles)
        if ctx.options.base_model != "tiny":  # tiny is built while training: used after it
            from huggingtweets.model.loading import resolve_model

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

    def callbacks(self) -> list:
        return []  # Trainer's own WandbCallback (report_to) logs into self.run

    def trained(self, result, generation) -> None:
        wandb, run = self.wandb, self.run
        if self.ctx.options.base_model == "tiny":
            self._use_base(self.ctx.run.output_dir / "tiny-base")
        run.config.update(
            safe_config({"hyperparameters": result.metrics.get("hyperparameters")}),
            allow_val_change=True,
        )
        run.summary.update(_summary(result.metrics))
        table = wandb.Table(columns=PREDICTION_COLUMNS, data=_prediction_rows(generation))
        run.log({"predictions": table})
        self.model_metadata = safe_config(
            {
                "base_model": result.metrics.get("base_model"),
                **_summary(result.metrics),
                "hyperparameters": result.metrics.get("hyperparameters"),
            }
        )
        self.info["artifacts"].append(
            {
                "name": f"finetuned-model-{_artifact_name(self.ctx.name)}",
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
                f"finetuned-model-{_artifact_name(self.ctx.name)}",
                type="finetuned-model",
                description="The fine-tuned model, its card and memorization guard.",
                metadata=self.model_metadata,
            )
            for path, name in _files(self.ctx.run.model_dir):
                artifact.add_file(str(path), name=name)
            run.log_artifact(artifact)
        run.finish(exit_code=0 if error is None else 1)
        self.run = None
        if error is None and self.info.get("mode") == "offline":
            dirs = " ".join(self.info.get("offline_dirs", []))
            self.ctx.reporter.info(STAGE, f"W&B runs kept offline; upload with: wandb sync {dirs}")


# -- TensorBoard ------------------------------------------------------------------------


class _TensorBoard:
    """TensorBoard: hyper-parameters (HParams), the stats and samples as text, losses."""

    name = "tensorboard"

    def __init__(self, ctx: _Context) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # transformers falls back on it too
            from tensorboardX import SummaryWriter
        self.SummaryWriter = SummaryWriter
        self.ctx = ctx
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        given = os.environ.get("TENSORBOARD_LOGGING_DIR")
        base = Path(given).expanduser() if given else ctx.run.output_dir / "tensorboard"
        self.log_dir = base / stamp
        self.writer = None
        ctx.info["tensorboard"] = {"log_dir": str(self.log_dir)}

    def start(self) -> None:
        self.writer = self.SummaryWriter(log_dir=str(self.log_dir))
        columns, rows = _stats_rows(self.ctx.stats)
        if rows:
            self.writer.add_text("dataset/stats", _markdown_table(columns, rows))
            for row in rows:
                for column, value in zip(columns[2:], row[2:], strict=True):
                    if isinstance(value, int | float):
                        self.writer.add_scalar(f"dataset/{row[0]}/{column}", value, 0)
        self.writer.add_text("config", _markdown_table(["option", "value"], _rows(self.ctx)))
        self.writer.flush()

    def callbacks(self) -> list:
        from transformers.integrations import TensorBoardCallback

        class _KeepOpen(TensorBoardCallback):
            """Trainer's TensorBoard callback on our writer, left open at the end of
            training: the samples and hyper-parameters come after."""

            def on_train_end(self, args, state, control, **kwargs):
                if self.tb_writer is not None:
                    self.tb_writer.flush()

        return [_KeepOpen(tb_writer=self.writer)]

    def trained(self, result, generation) -> None:
        writer, metrics = self.writer, result.metrics
        hparams = _flat(safe_config(metrics.get("hyperparameters") or {}))
        hparams["base_model"] = str(metrics.get("base_model"))
        summary = {f"hparam/{k}": v for k, v in _summary(metrics).items()}
        writer.add_hparams(hparams, summary, run_name=".")
        writer.add_text(
            "predictions", _markdown_table(PREDICTION_COLUMNS, _prediction_rows(generation))
        )
        writer.add_text("hyperparameters", _markdown_table(["name", "value"], hparams.items()))
        writer.flush()

    def close(self, error: BaseException | None) -> None:
        if self.writer is not None:
            if error is None:
                self.writer.add_text("model", f"written to {self.ctx.run.model_dir}")
            self.writer.close()
            self.writer = None


def _rows(ctx: _Context) -> list[tuple[str, Any]]:
    return list(_flat(_train_config(ctx)).items())


# -- MLflow -----------------------------------------------------------------------------


class _MLflow:
    """MLflow: the train run's parameters, metrics, the stats, samples and the model."""

    name = "mlflow"

    def __init__(self, ctx: _Context) -> None:
        import mlflow

        self.mlflow = mlflow
        self.ctx = ctx
        self.run = None
        self.trained_ok = False

    def start(self) -> None:
        mlflow, ctx = self.mlflow, self.ctx
        from huggingtweets.model.loading import first_line

        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or MLFLOW_EXPERIMENT
        try:
            with _quiet_store_setup():
                client = mlflow.MlflowClient()
                found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
            self.run = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"{ctx.name}-train",
                nested=mlflow.active_run() is not None,
                tags={"huggingtweets.handles": ctx.name},
            )
        except Exception as exc:
            raise HuggingtweetsError(
                f"cannot start MLflow at {_uri_without_password(mlflow.get_tracking_uri())}: "
                f"{first_line(exc)}"
            ) from None
        info = self.run.info
        uri = mlflow.get_tracking_uri()
        url = None
        if uri.startswith(("http://", "https://")):
            url = f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{info.run_id}"
        ctx.info["mlflow"] = {
            "tracking_uri": _uri_without_password(uri),
            "experiment_id": experiment_id,
            "run_id": info.run_id,
            "run_url": url and _uri_without_password(url),
        }
        params = {f"huggingtweets/{k}": str(v)[:250] for k, v in _rows(ctx)}
        mlflow.log_params(params)
        if ctx.stats:
            mlflow.log_dict(safe_config(ctx.stats), "dataset/stats.json")
            columns, rows = _stats_rows(ctx.stats)
            mlflow.log_text(_markdown_table(columns, rows), "dataset/stats.md")
        where = ctx.info["mlflow"]["tracking_uri"]
        ctx.reporter.info(STAGE, f"MLflow run {info.run_id} at {where}")

    def callbacks(self) -> list:
        return []  # Trainer's own MLflowCallback (report_to) logs into the active run

    def trained(self, result, generation) -> None:
        mlflow, metrics = self.mlflow, result.metrics
        mlflow.log_metrics(_summary(metrics))
        mlflow.log_dict(safe_config(metrics.get("hyperparameters") or {}), "hyperparameters.json")
        rows = _prediction_rows(generation)
        mlflow.log_text(_markdown_table(PREDICTION_COLUMNS, rows), "predictions.md")
        mlflow.log_dict(
            {"columns": PREDICTION_COLUMNS, "data": safe_config(rows)}, "predictions.json"
        )
        self.trained_ok = True

    def close(self, error: BaseException | None) -> None:
        if self.run is None:
            return
        mlflow = self.mlflow
        try:
            if error is None and self.trained_ok:
                mlflow.log_artifacts(str(self.ctx.run.model_dir), artifact_path="model")
        finally:
            if error is None:
                status = "FINISHED"
            else:
                status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            mlflow.end_run(status=status)
            self.run = None


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


@contextlib.contextmanager
def _quiet_store_setup() -> Iterator[None]:
    """MLflow announces on the terminal (its own log handler) that it creates a new
    local store's tables: our progress is events, and the store is named by ours."""
    from huggingtweets.model.loading import hidden_library_notice

    with (
        hidden_library_notice("mlflow.store.db.utils", "Creating initial MLflow database"),
        hidden_library_notice("mlflow.store.db.utils", "Updating database tables"),
    ):
        yield


def _uri_without_password(uri: str) -> str:
    """A tracking URI with any user:password@ taken out."""
    return re.sub(r"(?<=://)[^/@\s]+@", "", uri)
