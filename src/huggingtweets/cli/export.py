"""``huggingtweets export``: the bot as one GGUF file for llama.cpp and Ollama (see
publish/gguf.py)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.cli.console import console, err_console
from huggingtweets.cli.options import dataclass_options
from huggingtweets.publish.gguf import ExportOptions


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--gguf",
    "gguf_format",
    is_flag=True,
    default=True,
    help="Write a GGUF file (llama.cpp, Ollama, LM Studio): the format, and the default.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The GGUF file to write. [default: RUN_DIR/model/model-<quantize>.gguf]",
)
@dataclass_options(ExportOptions, "options")
def export_command(
    run_dir: Path, gguf_format: bool, out: Path | None, options: ExportOptions
) -> None:
    """Export RUN_DIR's model (or a model folder) as a GGUF file for llama.cpp and Ollama.

    GPT-2 and Llama-architecture models; the tokenizer and the original's sampling
    settings (top-p 0.95, top-k 50) go into the file. An export into RUN_DIR/model/ is
    added to the card ("Run it locally") and published by `push`.

    \b
    Examples:
      huggingtweets export runs/me --gguf
      huggingtweets export runs/me --gguf --quantize q8_0 --ollama
      ollama create me -f runs/me/model/Modelfile && ollama run me "My dream is"
    """
    from huggingtweets.publish.gguf import export_gguf

    with err_console.status("Writing the GGUF file…"):
        result = export_gguf(run_dir, options, out)
    size = f"{result.size / 1e6:.1f} MB"
    console.print(
        f"GGUF written to {escape(str(result.path))} ({result.tensors} tensors, {size}, "
        f"{options.quantize})",
        soft_wrap=True,
    )
    if result.modelfile is not None:
        console.print(f"Ollama Modelfile: {escape(str(result.modelfile))}", soft_wrap=True)
        console.print(f"  ollama create NAME -f {escape(str(result.modelfile))}", soft_wrap=True)
