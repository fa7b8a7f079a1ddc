"""What the server refuses, one class per answer the API gives (see serve.api.errors)."""

from __future__ import annotations

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError


class UnknownRun(HuggingtweetsError):
    """No run of that id (404)."""


class UnknownJob(HuggingtweetsError):
    """No job of that id (404)."""


class UnknownModel(HuggingtweetsError):
    """A model name the server does not serve (404)."""


class Busy(HuggingtweetsError):
    """The run already has a job queued or running (409)."""


class UploadTooLarge(OptionError):
    """An upload over ServeConfig.max_upload_bytes (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__("file", f"is larger than the server's limit of {limit:,} bytes")


class QueueFull(HuggingtweetsError):
    """Too many requests or jobs waiting (503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # whole seconds, for the Retry-After header
