"""Benchmark: training tokens/s of huggingtweets vs the original recipe, and the roofline.

Measures in one run, each part in a fresh process (so that one's memory-allocator and
thread state cannot help or hurt another), on a randomly initialised GPT-2-small-sized
model (``GPT2Config()``: 124M parameters; speed needs no pre-trained weights):

- ``original``: a faithful re-creation of the original huggingtweets recipe: transformers'
  ``Trainer``, batch size 1, 1,024-token blocks, fp32, the GPT-2 config's dropout, the
  attention of 2020's transformers (eager), PyTorch's AdamW;
- ``ours``: ``huggingtweets.train.recipe`` itself, with every default it picks on this
  hardware, training on the bundled sample's posts (the same 124M model saved as a local
  base folder, with a tokenizer trained on the posts);
- ``roofline``: the median throughput of large matmuls, bf16 and fp32 (the best of the
  two is the roofline: a CPU without native bf16 emulates it, far below fp32).

Model FLOPs = 6 × parameters × tokens. Targets (issue 3): ours ≥ 5× the original's
tokens/s, and ≥ 60% of the roofline. Tokens/s come from the median step time.

    python benchmarks/train_throughput.py [--steps 5] [--warmup 2] [--json PATH]

(results also written to runs/benchmarks/train_throughput.json by default)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORIGINAL_BLOCK = 1024

# Peak dense bf16 tensor-core FLOP/s (no 2:4 sparsity) by GPU, in TFLOP/s: NVIDIA's
# datasheets give the sparse figure with an asterisk, these are half of it. H100 SXM5 and
# PCIe and NVL (nvidia.com/en-us/data-center/h100, "BF16 Tensor Core 1,979* / 1,513* /
# 1,671*"), H200 and H200 NVL (nvidia.com/en-us/data-center/h200, "1,979* / 1,671*"),
# GH200 (its H100 SXM-class GPU: 989), A100 (nvidia.com/en-us/data-center/a100, "BF16
# Tensor Core 312 | 624*"), A10 (nvidia.com/en-us/data-center/products/a10-gpu, "125 |
# 250*"), L4 (nvidia.com/en-us/data-center/l4, "242.5*"), L40S (nvidia.com/en-us/
# data-center/l40s, "733*"). The first pattern found in torch.cuda.get_device_name()
# wins, so the more specific come first ("NVIDIA H100 80GB HBM3" is the SXM5 part).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"\bH100 NVL\b", 835.5),
    (r"\bH100 PCIe\b", 756.5),
    (r"\bH100\b", 989.5),
    (r"\bGH200\b", 989.5),
    (r"\bH200 NVL\b", 835.5),
    (r"\bH200\b", 989.5),
    (r"\bA100\b", 312.0),
    (r"\bA10\b", 125.0),
    (r"\bL40S\b", 366.5),
    (r"\bL4\b", 121.0),
)


def peak_bf16_tflops(device: str) -> tuple[float | None, str]:
    """The GPU's peak dense bf16 TFLOP/s from :data:`PEAK_BF16_TFLOPS`, and which entry
    matched it (or why none did)."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, device, re.IGNORECASE):
            return tflops, pattern.replace("\\b", "")
    return None, f"no peak bf16 figure for {device!r} in the table (PEAK_BF16_TFLOPS)"


def mfu(
    tokens_per_second: float,
    parameters: int,
    device: str,
    *,
    layers: int | None = None,
    hidden: int | None = None,
    sequence: int | None = None,
    flops_per_parameter: int = 6,
) -> dict:
    """Model FLOPs utilisation: the training FLOP/s the model's arithmetic needs at this
    speed over the GPU's peak dense bf16 FLOP/s (unknown GPU: ``mfu`` None, and why).

    FLOPs per token: ``flops_per_parameter`` × N (6: forward 2N, backward 4N; 4 for LoRA,
    whose frozen weights get no gradient), N all parameters (GPT-2's tied embedding counted
    once: it is the output layer's matmul). With ``layers``, ``hidden`` and ``sequence``
    also the figure with attention's own FLOPs, 12 × layers × hidden × sequence per token
    (PaLM's count, Chowdhery et al. 2022, appendix B; it ignores the causal mask's half)."""
    peak, matched = peak_bf16_tflops(device)
    per_token = flops_per_parameter * parameters
    achieved = per_token * tokens_per_second / 1e12
    out: dict = {
        "device": device,
        "tokens_per_second": tokens_per_second,
        "parameters": parameters,
        "flops_per_token": per_token,
        "formula": f"{flops_per_parameter}·N·tokens/s",
        "achieved_tflops": achieved,
        "peak_bf16_tflops": peak,
        "peak_matched": matched if peak is not None else None,
        "mfu": achieved / peak if peak else None,
        "reason": None if peak is not None else matched,
    }
    if layers and hidden and sequence:
        with_attention = (per_token + 12 * layers * hidden * sequence) * tokens_per_second
        out["formula_with_attention"] = out["formula"] + " + 12·layers·hidden·sequence·tokens/s"
        out["achieved_tflops_with_attention"] = with_attention / 1e12
        out["mfu_with_attention"] = with_attention / 1e12 / peak if peak else None
    return out


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _timer(warmup: int):
    """A TrainerCallback timing optimizer steps end to end (data, forward, backward, AdamW)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self._sync()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen or 0))

        def on_step_end(self, args, state, control, **kwargs):
            self._sync()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen or 0))

        @staticmethod
        def _sync():
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()

        def result(self) -> dict:
            timed = self.marks[warmup:]  # the first steps warm caches and allocators up
            seconds = [b[0] - a[0] for a, b in itertools.pairwise(timed)]
            tokens = timed[-1][1] - timed[0][1]
            total = timed[-1][0] - timed[0][0]
            # The median step: robust to a spike when something else wakes up on the machine.
            return {
                "timed_steps": len(seconds),
                "warmup_steps": warmup,
                "step_seconds": seconds,
                "tokens": tokens,
                "seconds": total,
                "tokens_per_second_mean": tokens / total,
                "tokens_per_second": tokens / len(seconds) / statistics.median(seconds),
            }

    return StepTimer()


def _parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def worker_original(steps: int, warmup: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(), attn_implementation="eager")
    blocks = torch.randint(0, model.config.vocab_size, (steps + warmup + 1, ORIGINAL_BLOCK))
    dataset = [{"input_ids": b, "labels": b} for b in blocks]
    timer = _timer(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=1,
            max_steps=steps + warmup,
            learning_rate=1.372e-4,
            optim="adamw_torch",
            use_cpu=_device() == "cpu",
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_strategy="no",
            include_num_input_tokens_seen="all",
            seed=0,
        )
        Trainer(model=model, args=args, train_dataset=dataset, callbacks=[timer]).train()
    return {
        **timer.result(),
        "parameters": _parameters(model),
        "block_size": ORIGINAL_BLOCK,
        "config": "Trainer, batch 1 × 1,024 tokens, fp32, dropout 0.1, eager attention, AdamW",
    }


def worker_ours(steps: int, warmup: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    from huggingtweets import TrainOptions, prepare, train
    from huggingtweets.model.tiny import EOS, train_byte_bpe

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = root / "run"
        prepare(run, ["sample:romeo", "sample:juliet", "sample:gloucester"])
        lines = (run / "dataset/train.jsonl").read_text("utf-8").splitlines()
        texts = [json.loads(line)["text"] for line in lines]
        tokenizer = train_byte_bpe(texts, 4096)
        eos = tokenizer.convert_tokens_to_ids(EOS)
        torch.manual_seed(0)
        config = GPT2Config(bos_token_id=eos, eos_token_id=eos)
        model = AutoModelForCausalLM.from_config(config)
        parameters = _parameters(model)
        base = root / "gpt2-small-random"
        model.save_pretrained(base)
        tokenizer.save_pretrained(base)
        del model
        timer = _timer(warmup)
        result = train(
            run, TrainOptions(base_model=str(base), max_steps=steps + warmup), callbacks=[timer]
        )
    hp = result.metrics["hyperparameters"]
    return {
        **timer.result(),
        "parameters": parameters,
        "block_size": hp["block_size"],
        "config": (
            f"huggingtweets.train.recipe defaults: batch {hp['per_device_train_batch_size']} × "
            f"{hp['block_size']} tokens, {hp['precision']}, dropout {hp['dropout']}, "
            f"{hp['optimizer']}"
        ),
        "device": result.metrics["device"],
    }


def worker_roofline(repeats: int) -> dict:
    import torch

    device = _device()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def peak(dtype) -> dict:
        n = 512
        while True:  # grow until one matmul takes long enough to time well
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            sync()
            start = time.perf_counter()
            a @ b
            sync()
            took = time.perf_counter() - start
            if took > 0.25 or n >= 8192:
                break
            n *= 2
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            sync()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        return {"n": n, "median_seconds": median, "gflops": 2 * n**3 / median / 1e9}

    return {"bf16": peak(torch.bfloat16), "fp32": peak(torch.float32)}


def _run_worker(name: str, args) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, __file__, "--worker", name, "--worker-out", str(out)]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    command += ["--repeats", str(args.repeats)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    out.unlink()
    print(f"  {name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=5, help="matmuls per roofline median")
    parser.add_argument("--json", type=Path, default=Path("runs/benchmarks/train_throughput.json"))
    parser.add_argument(
        "--worker", choices=["original", "ours", "roofline"], help=argparse.SUPPRESS
    )
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "roofline":
            result = worker_roofline(args.repeats)
        elif args.worker == "original":
            result = worker_original(args.steps, args.warmup)
        else:
            result = worker_ours(args.steps, args.warmup)
        args.worker_out.write_text(json.dumps(result))
        return

    import torch

    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"cuda {torch.cuda.is_available()}",
        file=sys.stderr,
    )
    roofline = _run_worker("roofline", args)
    original = _run_worker("original", args)
    ours = _run_worker("ours", args)

    best_dtype = max(roofline, key=lambda d: roofline[d]["gflops"])
    roof = roofline[best_dtype]["gflops"]
    for part in (original, ours):
        part["model_gflops"] = 6 * part["parameters"] * part["tokens_per_second"] / 1e9
        part["roofline_fraction"] = part["model_gflops"] / roof
        part["bf16_roofline_fraction"] = part["model_gflops"] / roofline["bf16"]["gflops"]
        part["mfu"] = (
            mfu(
                part["tokens_per_second"],
                part["parameters"],
                torch.cuda.get_device_name(0),
                layers=12,  # GPT2Config()'s
                hidden=768,
                sequence=part["block_size"],
            )
            if torch.cuda.is_available()
            else None  # a CPU has no peak in the table: the roofline fraction is its measure
        )
    ratio = ours["tokens_per_second"] / original["tokens_per_second"]
    results = {
        "roofline": {**roofline, "best": best_dtype, "gflops": roof},
        "original": original,
        "ours": ours,
        "speedup": ratio,
        "targets": {"speedup": 5.0, "roofline_fraction": 0.6},
        "load_average": os.getloadavg(),
    }
    print(
        f"roofline : bf16 {roofline['bf16']['gflops']:,.1f} GFLOP/s, "
        f"fp32 {roofline['fp32']['gflops']:,.1f} GFLOP/s → {roof:,.1f} ({best_dtype})"
    )
    for name, part in (("original", original), ("ours", ours)):
        print(
            f"{name:9}: {part['tokens_per_second']:8,.1f} tokens/s  "
            f"{part['model_gflops']:6,.1f} GFLOP/s = {part['roofline_fraction']:5.1%} of the "
            f"roofline   [{part['config']}]"
        )
        if part["mfu"] is not None:
            m = part["mfu"]
            print(
                f"{'':9}  MFU "
                + (
                    f"{m['mfu']:.1%} ({m['achieved_tflops']:.1f} of {m['peak_bf16_tflops']} "
                    f"TFLOP/s, {m['formula']}; with attention {m['mfu_with_attention']:.1%})"
                    if m["mfu"] is not None
                    else f"unknown: {m['reason']}"
                )
            )
    print(
        f"speed-up : {ratio:.2f}× the original (target ≥ 5×: {'met' if ratio >= 5 else 'NOT met'})"
        f"; {ours['roofline_fraction']:.0%} of the roofline (target ≥ 60%: "
        f"{'met' if ours['roofline_fraction'] >= 0.6 else 'NOT met'})"
    )
    ceiling = 1 / original["roofline_fraction"]
    results["ceiling_speedup"] = ceiling
    print(
        f"ceiling  : at 100% of the roofline a trainer would be {ceiling:.2f}× the original "
        f"here ({best_dtype} is the fastest arithmetic this machine has)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
