"""cli: the ``huggingtweets`` command, a thin layer over the library's Python API."""

from huggingtweets.cli.main import cli, main

__all__ = ["cli", "main"]
