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
extrapolates each to the full run (4 epochs) and says so: the measured time, less the
capped steps, plus the full run's steps at the median step time, plus the end-of-epoch
work (evaluation, checkpoint) once per further epoch. With ``--full`` there is no cap:
each way trains its whole run (the original's 4 epochs; ours and LoRA their defaults,
early stopping included) and the full run's time is measured, not extrapolated. The
validation loss is the one each model reached (fp32, the validation posts in 256-token
blocks, the same function for all three): after a few steps it says little, which the
output says too.

The ways run one after another, ``--repeat`` times, the order reversed every other repeat
(original, ours, lora; then lora, ours, original ...), so that none always runs first
(a cold file cache) or last (a machine warmed up, or loaded by other work); each figure
is the median over the repeats, with the lowest and highest.

Without the shared data (``../shared/data``, or the folder ``HUGGINGTWEETS_BENCH_DATA``
names; a GPU machine gets the checkout alone) the posts are three speakers of the bundled
sample instead (generate_throughput.FALLBACK_SOURCES: 561 speeches, ~24k tokens) and the
tokenizer is learned on the bundled tiny Shakespeare; the JSON's ``data`` says which.
Each way's training tokens/s (tokens a step over the median step) and parameters (all,
and trained) are in the JSON too, for gpu_check.sh's MFU.

    python benchmarks/time_to_bot.py [--steps 10 | --full] [--repeat 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from generate_throughput import posts_data  # noqa: E402 - beside this file

WAYS = ("original", "ours", "lora")
EPOCHS = 4
ORIGINAL_BLOCK = 1024
VALID_BLOCK = 256
ORIGINAL_CARD_SAMPLES = 5


def build_base(folder: Path) -> Path:
    """GPT2Config() at random init with a byte-level BPE learned on the shared data."""
    import torch
    from generate_throughput import tokenizer_texts
    from transformers import AutoModelForCausalLM, GPT2Config

    from huggingtweets.model.tiny import EOS, train_byte_bpe

    if (folder / "config.json").exists():
        return folder
    tokenizer = train_byte_bpe(tokenizer_texts(), 50257)
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
                self.parameters = self.trained = 0

            def on_train_begin(self, args, state, control, model=None, **kwargs):
                if model is not None:
                    self.parameters = sum(p.numel() for p in model.parameters())
                    self.trained = sum(p.numel() for p in model.parameters() if p.requires_grad)

            def on_step_begin(self, args, state, control, **kwargs):
                self.began = _now()

            def on_step_end(self, args, state, control, **kwargs):
                self.steps.append((self.began, _now()))

            def on_train_end(self, args, state, control, **kwargs):
                self.ended = _now()
                self.tokens = int(state.num_input_tokens_seen or 0)

            def summary(self) -> dict:
                seconds = [b - a for a, b in self.steps]
                median = statistics.median(seconds)
                return {
                    "steps": len(seconds),
                    "step_seconds": seconds,
                    "median_step_seconds": median,
                    "epoch_end_seconds": self.ended - self.steps[-1][1],
                    "tokens_trained": self.tokens,
                    # Tokens a step over the median step: the training speed alone.
                    "train_tokens_per_second": self.tokens / len(seconds) / median,
                    "parameters": self.parameters,  # all, LoRA's adapters included
                    "parameters_trained": self.trained,
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
    prepare(run, *posts_data()[:2])
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
    prepare(run, *posts_data()[:2])
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
    command += ["--steps", str(steps_cap(args)), "--work", str(args.work)]
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
    if args.full:  # measured: the run was the whole run
        result["full_run"] = {
            "steps": result["steps"],
            "tokens": result["tokens_trained"],
            "seconds": wall,
            "extrapolated": False,
        }
    else:
        full_steps = EPOCHS * result["steps_per_epoch"]
        timed = sum(result["step_seconds"])
        result["full_run"] = {
            "steps": full_steps,
            "tokens": EPOCHS * result["train_tokens_per_epoch"],
            "seconds": wall
            - timed
            + full_steps * result["median_step_seconds"]
            + (EPOCHS - 1) * result["epoch_end_seconds"],
            "extrapolated": True,
        }
    print(f"  {way}: done in {wall:.0f} s", file=sys.stderr)
    return result


def steps_cap(args) -> int:
    """The optimizer-step cap given to each way: -1 (none) with --full."""
    return -1 if args.full else args.steps


def orders(ways: list[str], repeats: int) -> list[list[str]]:
    """The order of the ways in each repeat: as given, then reversed, in turns."""
    return [ways if repeat % 2 == 0 else ways[::-1] for repeat in range(repeats)]


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def median_result(runs: list[dict]) -> dict:
    """One way's repeats: the first repeat's details, its times the medians (with the
    spread) over the repeats."""
    result = dict(runs[0])
    for key in (
        "process_seconds",
        "median_step_seconds",
        "validation_loss",
        "train_tokens_per_second",
    ):
        result[f"{key}_spread"] = spread([r[key] for r in runs])
        result[key] = result[f"{key}_spread"]["median"]
    full = [r["full_run"]["seconds"] for r in runs]
    result["full_run"] = {**runs[0]["full_run"], "seconds": statistics.median(full)}
    result["full_run"]["seconds_spread"] = spread(full)
    result["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    result["peak_rss_training_bytes"] = max(r["peak_rss_training_bytes"] for r in runs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps (the cap)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="no cap: train each way's whole run and measure it (not extrapolated)",
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each way, the order reversed in turns"
    )
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
            result = worker_original(run, base, steps_cap(args))
        else:
            result = worker_ours(run, base, steps_cap(args), lora=args.worker == "lora")
        args.worker_out.write_text(json.dumps(result))
        return

    from generate_throughput import device_name

    args.work.mkdir(parents=True, exist_ok=True)
    build_base(base)
    load_before = os.getloadavg()
    print(f"{device_name()}; load average {load_before[0]:.2f}", file=sys.stderr)
    ways = args.ways.split(",")
    runs: dict[str, list[dict]] = {way: [] for way in ways}
    for repeat, order in enumerate(orders(ways, args.repeat)):
        print(f"repeat {repeat + 1}: {', '.join(order)}", file=sys.stderr)
        for way in order:
            runs[way].append(run_way(way, args))
            # What is done so far, should the rest not finish (gpu_check.sh's time cap).
            args.json.parent.mkdir(parents=True, exist_ok=True)
            done = {w: median_result(r) for w, r in runs.items() if r}
            partial = {"device": device_name(), "data": posts_data()[2], "partial": True}
            args.json.write_text(json.dumps(partial | {"ways": done, "runs": runs}, indent=2))
    results = {way: median_result(runs[way]) for way in ways}
    load_after = os.getloadavg()
    reference = results.get("original")
    how = "measured" if args.full else "extrapolated"
    if args.full:
        print(f"no cap: each way's whole run, measured; medians of {args.repeat} repeat(s)")
    else:
        print(
            f"capped at {args.steps} optimizer steps of 1,024 tokens each; full run = "
            f"{EPOCHS} epochs, extrapolated; medians of {args.repeat} repeat(s), the order "
            "reversed in turns"
        )
    for way, r in results.items():
        ratio = ""
        if reference is not None:
            now = r["process_seconds"] / reference["process_seconds"]
            full = r["full_run"]["seconds"] / reference["full_run"]["seconds"]
            ratio = f" = {now:.2f}× the original's time ({1 / now:.1f}× faster"
            if not args.full:
                ratio += f"; full run, extrapolated, {full:.2f}×, {1 / full:.1f}× faster"
            ratio += ")"
        took = r["process_seconds_spread"]
        print(
            f"{way:8}: {r['process_seconds']:6.0f} s [{took['low']:.0f}–{took['high']:.0f}]"
            f"{ratio}; {r['tokens_trained']:,} tokens trained, {r['median_step_seconds']:.2f} s "
            f"a step; peak RSS {r['peak_rss_training_bytes'] / 2**30:.2f} GiB to the end of "
            f"training, {r['peak_rss_bytes'] / 2**30:.2f} GiB in all; validation loss "
            f"{r['validation_loss']:.3f}; full run ({how}): {r['full_run']['steps']} steps, "
            f"{r['full_run']['tokens']:,} tokens, {r['full_run']['seconds'] / 60:.1f} min  "
            f"[{r['recipe']}]"
        )
    summary = {
        "device": device_name(),
        "data": posts_data()[2],
        "partial": False,
        "steps_cap": None if args.full else args.steps,
        "full_run": how,
        "epochs_full_run": EPOCHS,
        "repeats": args.repeat,
        "orders": orders(ways, args.repeat),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "ways": results,
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print(f"load average {load_before[0]:.2f} → {load_after[0]:.2f}", file=sys.stderr)
    print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
