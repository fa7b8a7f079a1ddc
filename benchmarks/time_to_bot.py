"""Benchmark: time to a bot — prepare → train → card on a real X export, three ways.

On the smithjd export (``../shared/data/x-archive-smithjd``) with a GPT-2-small-sized
local base (``GPT2Config()``, 124M parameters, random init, a byte-level BPE learned on the
shared data; no download), each way in a fresh process, whose peak resident memory is
read twice: at the end of training (``getrusage``: prepare and training), and for the
whole process (``os.wait4``: the card's model and the validation loss's too):

- ``original``: the original huggingtweets re-created, as in train_throughput.py:
  transformers' ``Trainer``, batch 1 × 1,024-token blocks, fp32, GPT-2's dropout 0.1,
  eager attention, PyTorch's AdamW at 1.372e-4 (cosine), no evaluation while training;
  then 5 samples with ``pipeline("text-generation")`` for its card;
- ``ours``: ``huggingtweets`` with its defaults: prepare, train (4 × 256-token blocks, bf16
  where native, evaluation and the best checkpoint each epoch), card (20 samples drawn);
- ``lora``: the same with ``lora=True`` (adapters merged on save).

Every way trains the same number of tokens per step (1,024). Training is capped at
``--steps`` optimizer steps so that the three finish in minutes on a CPU; the output
extrapolates each to the full run (4 epochs): the measured time, less the capped steps,
plus the full run's steps at the median step time, plus the end-of-epoch work (evaluation,
checkpoint) once per further epoch. The validation loss is the one each model reached
(fp32, the validation posts in 256-token blocks, the same function for all three):
after a few steps it says little, which the output says too.

    python benchmarks/time_to_bot.py [--steps 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SMITHJD = SHARED / "x-archive-smithjd"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"
WAYS = ("original", "ours", "lora")
EPOCHS = 4
ORIGINAL_BLOCK = 1024
VALID_BLOCK = 256
ORIGINAL_CARD_SAMPLES = 5


def build_base(folder: Path) -> Path:
    """GPT2Config() at random init with a byte-level BPE learned on the shared data."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    from huggingtweets.model.tiny import EOS, train_byte_bpe

    if (folder / "config.json").exists():
        return folder
    texts = SHAKESPEARE.read_text("utf-8").split("\n\n")
    raw = (SMITHJD / "data" / "tweets.js").read_text("utf-8")
    texts += re.findall(r'"full_text" : "((?:[^"\\]|\\.)*)"', raw)
    tokenizer = train_byte_bpe(texts, 50257)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        GPT2Config(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class Clock:
    """A TrainerCallback noting when each optimizer step begins and ends, and when
    training ends (the last epoch's evaluation and checkpoint lie between the two)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self) -> None:
                self.steps: list[tuple[float, float]] = []
                self.began = self.ended = 0.0
                self.tokens = 0

            def on_step_begin(self, args, state, control, **kwargs):
                self.began = _now()

            def on_step_end(self, args, state, control, **kwargs):
                self.steps.append((self.began, _now()))

            def on_train_end(self, args, state, control, **kwargs):
                self.ended = _now()
                self.tokens = int(state.num_input_tokens_seen or 0)

            def summary(self) -> dict:
                seconds = [b - a for a, b in self.steps]
                return {
                    "steps": len(seconds),
                    "step_seconds": seconds,
                    "median_step_seconds": statistics.median(seconds),
                    "epoch_end_seconds": self.ended - self.steps[-1][1],
                    "tokens_trained": self.tokens,
                }

        return _Clock()


def _now() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def _peak_rss() -> int:
    """This process's peak resident memory so far, in bytes (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line]


def _valid_loss(model_dir: Path, valid: list[str]) -> float:
    import torch

    from huggingtweets.evaluate.evaluation import held_out_loss
    from huggingtweets.model.loading import load_causal_lm, load_tokenizer

    model = load_causal_lm(model_dir).to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return held_out_loss(model, load_tokenizer(model_dir), valid, VALID_BLOCK)


def worker_original(run: Path, base: Path, steps: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    from transformers import pipeline as hf_pipeline

    from huggingtweets import prepare
    from huggingtweets.train.packing import Blocks, collate_blocks, pack_blocks

    started = _now()
    prepare(run, [str(SMITHJD)], ["smithjd"])
    prepared = _now()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="eager")
    blocks, tokens = pack_blocks(_texts(run / "dataset/train.jsonl"), tokenizer, ORIGINAL_BLOCK)
    clock = Clock()
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(run / "checkpoints"),
        per_device_train_batch_size=1,
        num_train_epochs=EPOCHS,
        max_steps=steps,
        learning_rate=1.372e-4,
        lr_scheduler_type="cosine",
        optim="adamw_torch",
        use_cpu=not cuda,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
        include_num_input_tokens_seen="all",
        seed=42,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Blocks(blocks),
        data_collator=collate_blocks(tokenizer.pad_token_id),
        callbacks=[clock],
    )
    trainer.train()
    out = run / "model"
    trainer.save_model(out)
    tokenizer.save_pretrained(out)
    trained = _now()
    training_rss = _peak_rss()
    del trainer, model
    snippet = hf_pipeline("text-generation", model=str(out), device=0 if cuda else -1)
    snippet("My dream is", num_return_sequences=ORIGINAL_CARD_SAMPLES, do_sample=True)
    carded = _now()
    return {
        **clock.summary(),
        "seconds": {
            "prepare": prepared - started,
            "train": trained - prepared,
            "card": carded - trained,
            "total": carded - started,
        },
        "peak_rss_training_bytes": training_rss,
        "steps_per_epoch": len(blocks),
        "train_tokens_per_epoch": tokens,
        "validation_loss": _valid_loss(out, _texts(run / "dataset/valid.jsonl")),
        "recipe": "Trainer, batch 1 × 1,024, fp32, dropout 0.1, eager attention, AdamW (torch)",
    }


def worker_ours(run: Path, base: Path, steps: int, lora: bool) -> dict:
    from huggingtweets import TrainOptions, prepare, train
    from huggingtweets.card.model_card import write_card

    started = _now()
    prepare(run, [str(SMITHJD)], ["smithjd"])
    prepared = _now()
    clock = Clock()
    options = TrainOptions(base_model=str(base), max_steps=steps, lora=lora)
    result = train(run, options, callbacks=[clock])
    trained = _now()
    training_rss = _peak_rss()
    write_card(run)
    carded = _now()
    metrics = result.metrics
    batch = metrics["hyperparameters"]["per_device_train_batch_size"]
    hp = metrics["hyperparameters"]
    return {
        **clock.summary(),
        "seconds": {
            "prepare": prepared - started,
            "train": trained - prepared,
            "card": carded - trained,
            "total": carded - started,
        },
        "peak_rss_training_bytes": training_rss,
        "steps_per_epoch": math.ceil(metrics["train_blocks"] / batch),
        "train_tokens_per_epoch": metrics["train_tokens"],
        "validation_loss": _valid_loss(result.model_dir, _texts(run / "dataset/valid.jsonl")),
        "eval_loss_before": metrics["eval_loss_before"],
        "recipe": (
            f"huggingtweets defaults: batch {batch} × {hp['block_size']}, {hp['precision']}, "
            f"dropout {hp['dropout']}, {hp['optimizer']}" + (", LoRA r 16" if lora else "")
        ),
        "device": metrics["device"],
    }


def run_way(way: str, args) -> dict:
    """One way in a fresh process; its peak RSS from the kernel's accounting."""
    run = args.work / way
    if run.exists():
        import shutil

        shutil.rmtree(run)
    out = args.work / f"{way}.json"
    command = [sys.executable, __file__, "--worker", way, "--worker-out", str(out)]
    command += ["--steps", str(args.steps), "--work", str(args.work)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{way} failed (exit {process.returncode})")
    result = json.loads(out.read_text())
    out.unlink()
    result["process_seconds"] = wall  # with Python's start and the imports
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024  # the whole process; Linux: KiB
    full_steps = EPOCHS * result["steps_per_epoch"]
    timed = sum(result["step_seconds"])
    result["full_run"] = {
        "steps": full_steps,
        "tokens": EPOCHS * result["train_tokens_per_epoch"],
        "seconds": wall
        - timed
        + full_steps * result["median_step_seconds"]
        + (EPOCHS - 1) * result["epoch_end_seconds"],
    }
    print(f"  {way}: done in {wall:.0f} s", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps (the cap)")
    parser.add_argument("--ways", default=",".join(WAYS), help="which, comma-separated")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/benchmarks/time_to_bot")
    parser.add_argument("--json", type=Path, default=ROOT / "runs/benchmarks/time_to_bot.json")
    parser.add_argument("--worker", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    base = args.work / "gpt2-small-random"
    if args.worker:
        run = args.work / args.worker
        if args.worker == "original":
            result = worker_original(run, base, args.steps)
        else:
            result = worker_ours(run, base, args.steps, lora=args.worker == "lora")
        args.worker_out.write_text(json.dumps(result))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from generate_throughput import device_name

    args.work.mkdir(parents=True, exist_ok=True)
    build_base(base)
    load_before = os.getloadavg()
    print(f"{device_name()}; load average {load_before[0]:.2f}", file=sys.stderr)
    results = {way: run_way(way, args) for way in args.ways.split(",")}
    load_after = os.getloadavg()
    reference = results.get("original")
    print(
        f"capped at {args.steps} optimizer steps of 1,024 tokens each; full run = {EPOCHS} epochs"
    )
    for way, r in results.items():
        ratio = ""
        if reference is not None:
            now = r["process_seconds"] / reference["process_seconds"]
            full = r["full_run"]["seconds"] / reference["full_run"]["seconds"]
            ratio = (
                f" = {now:.2f}× the original's time ({1 / now:.1f}× faster; full run "
                f"{full:.2f}×, {1 / full:.1f}× faster)"
            )
        print(
            f"{way:8}: {r['process_seconds']:6.0f} s{ratio}; {r['tokens_trained']:,} tokens "
            f"trained, {r['median_step_seconds']:.2f} s a step; peak RSS "
            f"{r['peak_rss_training_bytes'] / 2**30:.2f} GiB to the end of training, "
            f"{r['peak_rss_bytes'] / 2**30:.2f} GiB in all; validation loss "
            f"{r['validation_loss']:.3f}"
            f"; full run (extrapolated): {r['full_run']['steps']} steps, "
            f"{r['full_run']['tokens']:,} tokens, {r['full_run']['seconds'] / 60:.1f} min  "
            f"[{r['recipe']}]"
        )
    summary = {
        "device": device_name(),
        "steps_cap": args.steps,
        "epochs_full_run": EPOCHS,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "ways": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print(f"load average {load_before[0]:.2f} → {load_after[0]:.2f}", file=sys.stderr)
    print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
