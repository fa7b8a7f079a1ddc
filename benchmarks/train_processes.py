"""Benchmark: training tokens/s of one process vs ``torchrun --nproc-per-node 2``.

The same ``huggingtweets.train.recipe`` (its defaults: 4 × 256-token blocks per process and
step), on the bundled sample's posts, with a GPT-2-small-sized base (``GPT2Config()``,
random init, saved as a local folder): once as one process with every core, once as two
processes under torchrun (data parallel over gloo, one thread each unless OMP_NUM_THREADS
says otherwise), one after the other in one run. Tokens/s: the tokens of all processes
per optimizer step over the median step time after ``--warmup`` steps.

    python benchmarks/train_processes.py [--steps 6] [--warmup 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    from transformers import TrainerCallback

    from huggingtweets import TrainOptions, train

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, a, state, control, **kwargs):
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))

    timer = Timer()
    options = TrainOptions(base_model=str(args.bench_base), max_steps=args.steps + args.warmup)
    result = train(
        args.bench_run,
        options,
        output_dir=args.bench_run / f"out-{args.bench_label}",
        callbacks=[timer],
    )
    if not result.main_process:
        return
    marks = timer.marks[max(args.warmup, 1) - 1 :]  # from the end of the last warm-up step
    seconds = [b[0] - a[0] for a, b in itertools.pairwise(marks)]
    tokens = (marks[-1][1] - marks[0][1]) / len(seconds)  # every process's, per step
    args.bench_out.write_text(
        json.dumps(
            {
                "processes": int(os.environ.get("WORLD_SIZE", "1")),
                "threads_per_process": __import__("torch").get_num_threads(),
                "step_seconds": seconds,
                "tokens_per_step": tokens,
                "tokens_per_second": tokens / statistics.median(seconds),
                "device": result.metrics["device"],
            }
        )
    )


def build(work: Path) -> tuple[Path, Path]:
    """The sample's dataset and a GPT-2-small-sized base with a tokenizer of its posts."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    from huggingtweets import prepare
    from huggingtweets.model.tiny import EOS, train_byte_bpe

    run, base = work / "run", work / "gpt2-small-random"
    if not (run / "dataset/valid.jsonl").exists():
        prepare(run, ["sample:romeo", "sample:juliet", "sample:gloucester"])
    if not (base / "config.json").exists():
        lines = (run / "dataset/train.jsonl").read_text("utf-8").splitlines()
        tokenizer = train_byte_bpe([json.loads(line)["text"] for line in lines], 4096)
        eos = tokenizer.convert_tokens_to_ids(EOS)
        torch.manual_seed(0)
        config = GPT2Config(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        AutoModelForCausalLM.from_config(config).save_pretrained(base)
        tokenizer.save_pretrained(base)
    return run, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/benchmarks/train_processes")
    parser.add_argument("--json", type=Path, default=ROOT / "runs/benchmarks/train_processes.json")
    # Worker options: named so that torchrun's own (--run-path ...) cannot take them.
    parser.add_argument("--bench-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bench-run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bench-base", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bench-label", help=argparse.SUPPRESS)
    parser.add_argument("--bench-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bench_worker:
        worker(args)
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from generate_throughput import device_name

    run, base = build(args.work)
    load_before = os.getloadavg()
    print(f"{device_name()}; load average {load_before[0]:.2f}", file=sys.stderr)
    common = [__file__, "--bench-worker", "--bench-run", str(run), "--bench-base", str(base)]
    common += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launches = {
        "one process": [sys.executable, *common, "--bench-label", "one"],
        "torchrun 2": [*torchrun, "--nproc-per-node", "2", *common, "--bench-label", "two"],
    }
    results = {}
    for name, command in launches.items():
        out = args.work / f"{name.replace(' ', '-')}.json"
        started = time.perf_counter()
        subprocess.run([*command, "--bench-out", str(out)], check=True, stdout=subprocess.DEVNULL)
        results[name] = json.loads(out.read_text())
        results[name]["process_seconds"] = time.perf_counter() - started
        out.unlink()
        r = results[name]
        print(
            f"{name:11}: {r['tokens_per_second']:7.1f} tokens/s ({r['processes']} × "
            f"{r['threads_per_process']} threads, {r['tokens_per_step']:.0f} tokens a step, "
            f"median step {statistics.median(r['step_seconds']):.2f} s; "
            f"{r['process_seconds']:.0f} s in all)"
        )
    ratio = results["torchrun 2"]["tokens_per_second"] / results["one process"]["tokens_per_second"]
    load_after = os.getloadavg()
    advice = "faster" if ratio > 1.05 else "no faster: use one process on a small CPU"
    print(f"torchrun 2 / one process: {ratio:.2f}× ({advice})")
    print(f"load average {load_before[0]:.2f} → {load_after[0]:.2f}", file=sys.stderr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "device": device_name(),
                "results": results,
                "ratio": ratio,
                "load_average_before": load_before,
                "load_average_after": load_after,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
