"""huggingtweets: turn social accounts into a small language model that writes like them.

The pipeline, stage by stage (each reads and writes the run directory)::

    from huggingtweets import collect, prepare, PrepareOptions
    prepare("runs/rj", ["sample:romeo", "sample:juliet"])
"""

__version__ = "0.1.0"

from .collect import collect, load_collected
from .errors import HuggingtweetsError
from .prepare import PrepareOptions, PrepareResult, prepare, prepare_collected
from .records import Account, Collected, Post
from .runs import RunDir
from .sources import Source, SourceOptions, read_source, resolve
from .sources.live import LiveOptions

__all__ = [
    "Account",
    "Collected",
    "HuggingtweetsError",
    "LiveOptions",
    "Post",
    "PrepareOptions",
    "PrepareResult",
    "RunDir",
    "Source",
    "SourceOptions",
    "collect",
    "load_collected",
    "prepare",
    "prepare_collected",
    "read_source",
    "resolve",
]
