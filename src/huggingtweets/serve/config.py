"""How ``huggingtweets serve`` is set up: where its runs are, what it serves, its limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class ServeConfig:
    runs_dir: Path = Path("runs")
    models: list[str] = field(default_factory=list)  # RUN_DIRs / model folders / Hub ids
    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None  # HUGGINGTWEETS_API_TOKEN (read from the env by the CLI)
    max_batch: int = 20  # samples per forward pass (serve.models); 1 = no batching
    max_queue: int = 64  # queued generate requests before 503 (serve.models)
    max_models: int = 2  # models kept loaded (serve.models)
    max_upload_bytes: int = 512 * 2**20
    queue: str | None = None  # redis://HOST:PORT/DB: jobs in Redis, run by workers (RQ)

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def __repr__(self) -> str:  # the token never reaches a log through a repr
        token = "***" if self.token else None
        return (
            f"ServeConfig(runs_dir={self.runs_dir!r}, models={self.models!r}, "
            f"host={self.host!r}, port={self.port}, token={token}, max_batch={self.max_batch}, "
            f"max_queue={self.max_queue}, max_models={self.max_models}, "
            f"max_upload_bytes={self.max_upload_bytes}, queue={_without_password(self.queue)!r})"
        )


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK_HOSTS


def _without_password(url: str | None) -> str | None:
    """A queue URL as a log may show it (a Redis password is a secret)."""
    from urllib.parse import urlsplit

    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"***@{host}").geturl()
