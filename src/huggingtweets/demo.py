"""``huggingtweets demo``: the whole pipeline, offline, in a couple of minutes on a laptop.

The bundled public-domain sample (ROMEO and JULIET from tiny-Shakespeare) as a two-account
cyborg, the ``tiny`` base model, and every real stage: prepare → train → card → generate.
Nothing here is special-cased: the same functions the other commands call, with settings
for a small model trained from scratch on ~13,000 tokens.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import OptionError
from huggingtweets.core.runs import RunDir
from huggingtweets.generate.generator import DEFAULT_PROMPT, GenerateOptions, Generation, Generator

DEMO_SOURCES = ("sample:romeo", "sample:juliet")
DEMO_SAMPLES = 5
# The tiny base's learning rate (train.TINY_LEARNING_RATE) reaches its best validation
# loss on this sample around epoch 9 and over-fits after it: early stopping ends the run.
DEMO_EPOCHS = 12
DEMO_PATIENCE = 2


@dataclass
class DemoResult:
    run_dir: Path
    stats: dict
    metrics: dict
    card: Path
    generation: Generation
    timings: dict[str, float] = field(default_factory=dict)
    evaluation: dict | None = None  # evaluation.json, when the pipeline evaluated the model


def check_out_dir(out: Path) -> None:
    """The demo may write into an empty or missing folder, or over an earlier demo, but
    never over another run (its dataset and model would be replaced)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise HuggingtweetsError(f"{out} is a file: give --out a folder for the demo's run")
    if not any(out.iterdir()):
        return
    stats_path = RunDir(out).stats_path
    handles = None
    if stats_path.exists():
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
            stats = orjson.loads(stats_path.read_bytes())
            handles = [(a["platform"], a["handle"]) for a in stats["accounts"]]
    if handles != [("sample", s.split(":", 1)[1]) for s in DEMO_SOURCES]:
        raise HuggingtweetsError(
            f"{out} already holds something other than the demo's run; "
            "give --out a new folder (the demo would replace its dataset and model)"
        )


def run_demo(
    out: Path | str,
    *,
    epochs: float = DEMO_EPOCHS,
    seed: int = 42,
    reporter: Reporter | None = None,
) -> DemoResult:
    """prepare → train → card → generate into ``out``, through the same pipeline as
    ``train SOURCE... --out``; every stage reports to ``reporter``."""
    from huggingtweets.pipeline import make_bot, write_card_reporting
    from huggingtweets.prepare.dataset import PrepareOptions
    from huggingtweets.train.recipe import TrainOptions

    reporter = reporter_or_silent(reporter)
    out = Path(out)
    if not (math.isfinite(epochs) and epochs > 0):
        raise OptionError("epochs", f"must be above 0 (got {epochs:g})")
    check_out_dir(out)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    bot = make_bot(
        out,
        DEMO_SOURCES,
        prepare_options=PrepareOptions(seed=seed),
        train=TrainOptions(
            base_model="tiny",
            num_train_epochs=epochs,
            early_stopping_patience=DEMO_PATIENCE,
            seed=seed,
        ),
        card=False,  # written below with the generator loaded once for card and samples
        reporter=reporter,
    )
    timings["prepare_and_train"] = time.perf_counter() - started
    assert bot.prepared is not None  # sources were given

    started = time.perf_counter()
    # evaluated after training (the default, as for `train`): its model, loaded once
    generator = bot.evaluated.generator if bot.evaluated is not None else Generator.load(out)
    card = write_card_reporting(RunDir(out), reporter, seed=seed, generator=generator)
    timings["card"] = time.perf_counter() - started

    started = time.perf_counter()
    reporter.start("generate", f"{DEMO_SAMPLES} posts for {DEFAULT_PROMPT!r}")
    generation = generator.generate(
        DEFAULT_PROMPT, GenerateOptions(num_return_sequences=DEMO_SAMPLES, seed=seed)
    )
    reporter.end("generate", generation=generation.to_dict())
    timings["generate"] = time.perf_counter() - started
    evaluation = bot.evaluated.evaluation if bot.evaluated is not None else None
    return DemoResult(
        out, bot.prepared.stats, bot.trained.metrics, card, generation, timings, evaluation
    )
