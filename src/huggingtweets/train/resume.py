"""Resuming an interrupted training: the last checkpoint, and the options the run started
with (``checkpoints/options.json``), which a resume must repeat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingtweets.core.options import OptionError, options_to_dict
from huggingtweets.core.runs import write_json
from huggingtweets.train.options import TrainOptions


def last_checkpoint(folder: Path) -> Path | None:
    """The latest complete checkpoint: Trainer writes trainer_state.json last, so a save
    cut short (a second Ctrl-C, a crash) is skipped."""
    if not folder.is_dir():
        return None
    complete = [
        p
        for p in folder.glob("checkpoint-*")
        if p.name.removeprefix("checkpoint-").isdigit() and (p / "trainer_state.json").exists()
    ]
    return max(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")), default=None)


# In checkpoints/: the options its checkpoints are made with (written before the first).
RESUME_OPTIONS_FILE = "options.json"
# What may change when a run is resumed: how it runs and reports, not what is learnt nor
# on which schedule. Anything else differing is refused: a checkpoint continued with other
# epochs, steps, rates or batch sizes "finishes" at once or follows a schedule nobody
# chose, and metrics.json would name settings the model never trained with.
_MAY_CHANGE_ON_RESUME = (
    "resume",
    "keep_checkpoints",
    "report_to",
    "trust_pickle",
    "save_adapters",
    "precision",  # another machine may compute otherwise
)


def _recorded_options(options: TrainOptions) -> dict[str, Any]:
    """The options that a resume must repeat, as plain data (the learning rate resolved:
    the default given or not is one rate)."""
    recorded = options_to_dict(options)
    recorded["learning_rate"] = options.resolved_learning_rate
    return {k: v for k, v in recorded.items() if k not in _MAY_CHANGE_ON_RESUME}


def record_options(checkpoints_dir: Path, options: TrainOptions) -> None:
    """Write what a later resume must repeat, before the first checkpoint."""
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    write_json(checkpoints_dir / RESUME_OPTIONS_FILE, _recorded_options(options))


def _shown(value: Any) -> str:
    if value is None:
        return "the default"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_resume(checkpoints_dir: Path, options: TrainOptions) -> Path | None:
    """With ``options.resume``: the checkpoint to continue from (None: none yet), once the
    options that say what is learnt and on which schedule (base model, epochs, steps,
    learning rate, batch size, block size, LoRA ...) are those it was made with; else an
    OptionError naming the first that differs (the others listed), in one line."""
    last = last_checkpoint(checkpoints_dir) if options.resume else None
    if last is None:
        return None
    try:
        recorded = json.loads((checkpoints_dir / RESUME_OPTIONS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return last  # made by an older version, which did not record them: not checked
    if not isinstance(recorded, dict):
        return last
    given = _recorded_options(options)
    differ = [k for k, v in given.items() if k in recorded and recorded[k] != v]
    if not differ:
        return last
    name = differ[0]
    others = f"; so do {', '.join(differ[1:])}" if differ[1:] else ""
    raise OptionError(
        name,
        f"is {_shown(given[name])}, the interrupted run's {_shown(recorded[name])} "
        f"({last.name}){others}: resuming continues with the options the run started "
        "with; give the same ones, or start over without resuming",
    )
