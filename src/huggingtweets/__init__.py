"""huggingtweets: turn social accounts into a small language model that writes like them.

The pipeline, stage by stage (each reads and writes the run directory)::

    from huggingtweets import make_bot, prepare, train, TrainOptions, Reporter
    prepare("runs/rj", ["sample:romeo", "sample:juliet"])        # collect + prepare
    train("runs/rj", TrainOptions(base_model="tiny"), reporter=Reporter(print))
    make_bot("runs/rj2", ["sample:romeo"], train=TrainOptions(base_model="tiny"))  # all

Progress comes as events (``Reporter(listener)``), ``reporter.cancel()`` stops a run at
its next safe point, and every option is a field of the stages' option dataclasses.
"""

__version__ = "0.1.0"

from huggingtweets.card.model_card import write_card
from huggingtweets.collect.collection import Collection, collect, load_collected
from huggingtweets.collect.live.base import LiveOptions
from huggingtweets.collect.registry import Source, SourceOptions, read_source, resolve
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Event, Reporter
from huggingtweets.core.options import OptionError, options_from_dict, options_to_dict
from huggingtweets.core.records import Account, AccountPosts, Collected, Post
from huggingtweets.core.runs import RunDir
from huggingtweets.demo import run_demo
from huggingtweets.generate.generator import (
    GenerateOptions,
    Generation,
    Generator,
    Sample,
    generate,
)
from huggingtweets.model.loading import load_causal_lm, load_tokenizer
from huggingtweets.pipeline import BotResult, make_bot
from huggingtweets.prepare.dataset import PrepareOptions, PrepareResult, prepare, prepare_collected
from huggingtweets.publish.hub import PushOptions, PushResult, push_run
from huggingtweets.train.recipe import TrainingInterrupted, TrainOptions, TrainResult, train

__all__ = [
    "Account",
    "AccountPosts",
    "BotResult",
    "Cancelled",
    "Collected",
    "Collection",
    "Event",
    "GenerateOptions",
    "Generation",
    "Generator",
    "HuggingtweetsError",
    "LiveOptions",
    "OptionError",
    "Post",
    "PrepareOptions",
    "PrepareResult",
    "PushOptions",
    "PushResult",
    "Reporter",
    "RunDir",
    "Sample",
    "Source",
    "SourceOptions",
    "TrainOptions",
    "TrainResult",
    "TrainingInterrupted",
    "collect",
    "generate",
    "load_causal_lm",
    "load_collected",
    "load_tokenizer",
    "make_bot",
    "options_from_dict",
    "options_to_dict",
    "prepare",
    "prepare_collected",
    "push_run",
    "read_source",
    "resolve",
    "run_demo",
    "train",
    "write_card",
]
