"""huggingtweets: turn social accounts into a small language model that writes like them.

The pipeline, stage by stage (each reads and writes the run directory)::

    from huggingtweets import collect, prepare, PrepareOptions
    prepare("runs/rj", ["sample:romeo", "sample:juliet"])
"""

__version__ = "0.1.0"

from .card import write_card
from .collect import collect, load_collected
from .demo import run_demo
from .errors import HuggingtweetsError
from .generate import GenerateOptions, Generation, Generator, Sample, generate
from .models import load_causal_lm, load_tokenizer
from .prepare import PrepareOptions, PrepareResult, prepare, prepare_collected
from .records import Account, Collected, Post
from .runs import RunDir
from .sources import Source, SourceOptions, read_source, resolve
from .sources.live import LiveOptions
from .train import TrainingInterrupted, TrainOptions, TrainResult, train

__all__ = [
    "Account",
    "Collected",
    "GenerateOptions",
    "Generation",
    "Generator",
    "HuggingtweetsError",
    "LiveOptions",
    "Post",
    "PrepareOptions",
    "PrepareResult",
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
    "prepare",
    "prepare_collected",
    "read_source",
    "resolve",
    "run_demo",
    "train",
    "write_card",
]
