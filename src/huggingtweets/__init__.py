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

from .card import write_card
from .collect import Collection, collect, load_collected
from .demo import run_demo
from .errors import HuggingtweetsError
from .events import Cancelled, Event, Reporter
from .generate import GenerateOptions, Generation, Generator, Sample, generate
from .models import load_causal_lm, load_tokenizer
from .options import OptionError, options_from_dict, options_to_dict
from .pipeline import BotResult, make_bot
from .prepare import PrepareOptions, PrepareResult, prepare, prepare_collected
from .push import PushOptions, PushResult, push_run
from .records import Account, AccountPosts, Collected, Post
from .runs import RunDir
from .sources import Source, SourceOptions, read_source, resolve
from .sources.live import LiveOptions
from .train import TrainingInterrupted, TrainOptions, TrainResult, train

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
