"""Benchmark: samples/s of huggingtweets' Generator vs pipeline("text-generation").

The baseline is what the seed cards' snippet runs: ``pipeline("text-generation",
model=...)`` with the model's own settings (the original's: ``<|endoftext|>`` prefix,
top-p 0.95, at most 160 tokens), 10 samples of "My dream is" a call. Each seed is drawn by
both, in turns (who goes first alternating), in one process, with the same number of
threads: the Generator runs models under 50M parameters on one CPU thread (it is faster
there), so the pipeline is given the thread count ours runs with, whatever ``--threads``
says. Each figure is the median over the calls (one per seed), with the spread (lowest
and highest call); a speed-up is the ratio of the medians, with the spread of the per-seed
ratios (both sides drew the same seed):

- ``pipeline``: the snippet; its samples cut at their first line, as the original did;
- ``ours``: ``Generator.generate`` with its defaults (each sample stops at its first line
  break / end-of-text and leaves the batch; noise for the top-k candidates only; bf16
  where the CPU computes it natively);
- ``as-pipeline``: ours with ``as_pipeline=True`` (fp32, the pipeline's random numbers):
  the same early stop, and first lines that must equal the pipeline's, seed for seed.

Models, built offline once under ``--work`` (no download):

- ``gpt2-random``: GPT-2 small (``GPT2Config()``, 124M) at random init. It hardly ever
  writes a line break or end-of-text, so every sample runs to 160 tokens: this measures
  the cost of a token, with nothing to gain from stopping early.
- ``gpt2-posts``: the same model trained ``--posts-steps`` steps on the smithjd export
  (64-token blocks, learning rate 2e-3): it has learned how often posts end, little else.
- ``tiny-demo``: the tiny model ``huggingtweets demo`` trains on the ROMEO & JULIET sample.
- ``tiny-random`` (not in the default set): the tiny base (4 layers, 4.3M) at random init,
  built in a second: a quick check that both sides run (gpu_check.sh on a CPU); like
  gpt2-random, every sample runs to 160 tokens.

The shared data (``../shared/data``, or the folder ``HUGGINGTWEETS_BENCH_DATA`` names)
gives the smithjd posts; without it (a GPU machine gets the checkout alone) gpt2-posts
trains on three speakers of the bundled sample instead, and the tokenizers are learned
on the bundled tiny Shakespeare (the same text as the shared copy); the JSON says which.

    python benchmarks/generate_throughput.py [--seeds 3] [--threads 1] [--json PATH]

Target (issue 10): ours ≥ 2× the pipeline's samples/s on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "My dream is"
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HUGGINGTWEETS_BENCH_DATA") or ROOT.parent / "shared" / "data")
SMITHJD = SHARED / "x-archive-smithjd"
# Without the shared data: three speakers of the bundled sample (561 speeches, ~24k tokens
# with the GPT-2 tokenizer below, against the smithjd export's 1,428 posts and 34.5k).
FALLBACK_SOURCES = ("sample:gloucester", "sample:duke_vincentio", "sample:menenius")
MODELS = ("gpt2-random", "gpt2-posts", "tiny-demo")
BUILDABLE = (*MODELS, "tiny-random")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    flags = fields.get("Flags", "")
    extras = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags.split()]
    return f"{name}, {os.cpu_count()} CPUs ({', '.join(extras) or 'no AVX2'})"


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return cpu_model()


# -- models ---------------------------------------------------------------------


def posts_data() -> tuple[list[str], list[str], str]:
    """What to prepare a run of posts from: (sources, handles, what it is): the smithjd
    export where the shared data is, else three speakers of the bundled sample."""
    if (SMITHJD / "data" / "tweets.js").exists():
        return [str(SMITHJD)], ["smithjd"], f"X export {SMITHJD}"
    return list(FALLBACK_SOURCES), [], "bundled sample: " + ", ".join(FALLBACK_SOURCES)


def tokenizer_texts() -> list[str]:
    """Tiny Shakespeare (bundled: the same text as ../shared/data/tinyshakespeare) and the
    smithjd posts where the shared data is."""
    import gzip
    from importlib.resources import files

    raw = files("huggingtweets.collect").joinpath("samples", "tinyshakespeare.txt.gz")
    texts = gzip.decompress(raw.read_bytes()).decode("utf-8").split("\n\n")
    tweets = SMITHJD / "data" / "tweets.js"
    if tweets.exists():
        raw_tweets = tweets.read_text("utf-8")
        texts += re.findall(r'"full_text" : "((?:[^"\\]|\\.)*)"', raw_tweets)
    return texts


def _gpt2_tokenizer():
    """A GPT-2 byte-level BPE learned on the shared data (as many merges as it allows,
    ~16,600 tokens; GPT2Config's 50,257 rows stay, the rest decode to nothing)."""
    from huggingtweets.model.tiny import train_byte_bpe

    return train_byte_bpe(tokenizer_texts(), 50257)


def build_gpt2_random(folder: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    from huggingtweets.model.tiny import EOS
    from huggingtweets.train.recipe import save_model

    tokenizer = _gpt2_tokenizer()
    eos = tokenizer.convert_tokens_to_ids(EOS)
    torch.manual_seed(0)
    config = GPT2Config(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    model = AutoModelForCausalLM.from_config(config)
    save_model(model, tokenizer, folder)  # with the original's sampling settings
    return folder


def build_gpt2_posts(work: Path, steps: int) -> Path:
    from huggingtweets import TrainOptions, prepare, train

    run = work / "smithjd"
    if not (run / "dataset" / "valid.jsonl").exists():
        sources, handles, _ = posts_data()
        prepare(run, sources, handles)
    options = TrainOptions(
        base_model=str(model_folder(work, "gpt2-random")),
        max_steps=steps,
        learning_rate=2e-3,
        warmup_steps=5,
        block_size=64,
        per_device_train_batch_size=8,
    )
    result = train(run, options, output_dir=work / "gpt2-posts-run")
    return result.model_dir


def build_tiny_demo(work: Path) -> Path:
    from huggingtweets import TrainOptions, make_bot
    from huggingtweets.demo import DEMO_EPOCHS, DEMO_PATIENCE, DEMO_SOURCES

    options = TrainOptions(
        base_model="tiny", num_train_epochs=DEMO_EPOCHS, early_stopping_patience=DEMO_PATIENCE
    )
    bot = make_bot(work / "tiny-demo-run", DEMO_SOURCES, train=options, card=False)
    return bot.trained.model_dir


def build_tiny_random(folder: Path) -> Path:
    """The tiny base (4 layers, 256 wide, 4.3M) at random init, saved with the
    original's sampling settings as build_gpt2_random's model is."""
    from huggingtweets.model.loading import load_causal_lm, load_tokenizer
    from huggingtweets.model.tiny import build_tiny_base
    from huggingtweets.train.recipe import save_model

    build_tiny_base(tokenizer_texts(), folder)
    save_model(load_causal_lm(folder), load_tokenizer(folder), folder)
    return folder


def model_folder(work: Path, name: str, posts_steps: int = 40) -> Path:
    """The model's folder, built on first use."""
    done = work / f"{name}.path"
    if done.exists() and (Path(done.read_text()) / "config.json").exists():
        return Path(done.read_text())
    print(f"  building {name} (once) ...", file=sys.stderr)
    work.mkdir(parents=True, exist_ok=True)
    if name == "gpt2-random":
        folder = build_gpt2_random(work / name)
    elif name == "gpt2-posts":
        folder = build_gpt2_posts(work, posts_steps)
    elif name == "tiny-random":
        folder = build_tiny_random(work / name)
    else:
        folder = build_tiny_demo(work)
    done.write_text(str(folder))
    return folder


# -- measuring ------------------------------------------------------------------


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ours_threads(generator) -> int:
    """The threads the Generator computes with: one on a CPU for a model under
    SINGLE_THREAD_BELOW parameters (generator._threads), else torch's setting."""
    import torch

    from huggingtweets.generate.generator import SINGLE_THREAD_BELOW

    small = generator.model.num_parameters() < SINGLE_THREAD_BELOW
    if generator.model.device.type == "cpu" and small:
        return 1
    return torch.get_num_threads()


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def measure(folder: Path, seeds: int, samples: int) -> dict:
    import torch
    from transformers import pipeline

    from huggingtweets.generate.generator import GenerateOptions, Generator

    generator = Generator.load(folder)
    device = 0 if torch.cuda.is_available() else -1
    snippet = pipeline("text-generation", model=str(folder), device=device)
    tokenizer = generator.tokenizer
    threads = ours_threads(generator)

    def run_pipeline(seed: int) -> list[str]:
        torch.manual_seed(seed)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)  # the threads ours computes with
        try:
            out = snippet(PROMPT, num_return_sequences=samples)
        finally:
            torch.set_num_threads(before)
        return [o["generated_text"] for o in out]

    def run_ours(seed: int, **how) -> list[str]:
        options = GenerateOptions(num_return_sequences=samples, seed=seed, **how)
        return [s.text for s in generator.generate(PROMPT, options).samples]

    methods = {
        "pipeline": run_pipeline,
        "ours": run_ours,
        "as-pipeline": lambda seed: run_ours(seed, as_pipeline=True),
    }
    # Warm-up: first calls allocate, and ours makes its bf16 copy once.
    snippet(PROMPT, num_return_sequences=2, max_new_tokens=2)
    generator.generate(PROMPT, GenerateOptions(num_return_sequences=2, max_length=5, seed=0))
    results = {name: {"seconds": [], "tokens": [], "texts": []} for name in methods}
    order = list(methods)
    for seed in range(seeds):
        for name in order if seed % 2 == 0 else order[::-1]:  # alternate who goes first
            _synchronize()
            started = time.perf_counter()
            texts = methods[name](seed)
            _synchronize()
            results[name]["seconds"].append(time.perf_counter() - started)
            results[name]["texts"].append(texts)
            results[name]["tokens"].append(
                sum(len(tokenizer(t)["input_ids"]) for t in texts) / len(texts)
            )
    # Compared without U+FFFD: the pipeline decodes a token that ends inside a character
    # (a byte-level BPE's piece) to it, ours leaves it out; the tokens are the same.
    first_lines = {
        name: [
            [t.split("\n", 1)[0].replace("\ufffd", "").rstrip() for t in texts]
            for texts in r["texts"]
        ]
        for name, r in results.items()
    }
    equal = sum(
        a == b
        for theirs, exact in zip(first_lines["pipeline"], first_lines["as-pipeline"], strict=True)
        for a, b in zip(theirs, exact, strict=True)
    )
    summary = {}
    for name, r in results.items():
        rates = [samples / seconds for seconds in r["seconds"]]  # one per call (seed)
        summary[name] = {
            "seconds": r["seconds"],
            "samples_per_second": spread(rates),
            "mean_tokens_per_sample": statistics.mean(r["tokens"]),
        }
    base = results["pipeline"]["seconds"]
    for name in ("ours", "as-pipeline"):
        ratios = [b / o for b, o in zip(base, results[name]["seconds"], strict=True)]
        medians = summary[name]["samples_per_second"]["median"]
        summary[name]["speedup"] = medians / summary["pipeline"]["samples_per_second"]["median"]
        summary[name]["speedup_per_seed"] = spread(ratios)
    return {
        "parameters": generator.model.num_parameters(),
        "threads_each": threads,
        "methods": summary,
        "as_pipeline_first_lines_equal": f"{equal}/{samples * seeds}",
        "example": first_lines["ours"][0][:3],
    }


def rate(method: dict) -> str:
    r = method["samples_per_second"]
    return f"{r['median']:.2f} [{r['low']:.2f}–{r['high']:.2f}]"


def ratio(method: dict) -> str:
    r = method["speedup_per_seed"]
    return f"{method['speedup']:.2f}× [{r['low']:.2f}–{r['high']:.2f}]"


def worker(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = model_folder(args.work, args.worker, args.posts_steps)
    result = measure(folder, args.seeds, args.samples)
    result["threads"] = torch.get_num_threads()  # torch's setting; threads_each: what ran
    args.worker_out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="calls per method (seeds 0, 1 ...)")
    parser.add_argument("--samples", type=int, default=10, help="samples a call (the original: 10)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's choice); a model under 50M parameters runs on one, "
        "both sides",
    )
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"which, comma-separated, of {', '.join(BUILDABLE)}",
    )
    parser.add_argument("--posts-steps", type=int, default=40, help="training steps of gpt2-posts")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/benchmarks/generate")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "runs/benchmarks/generate_throughput.json"
    )
    parser.add_argument("--worker", choices=BUILDABLE, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    unknown = set(args.models.split(",")) - set(BUILDABLE)
    if unknown:
        parser.error(f"--models: no {', '.join(sorted(unknown))}; one of {', '.join(BUILDABLE)}")

    import torch

    load_before = os.getloadavg()
    print(
        f"{device_name()}; torch {torch.__version__}, threads {args.threads or 'default'}; "
        f"load average {load_before[0]:.2f}",
        file=sys.stderr,
    )
    results = {}
    for name in args.models.split(","):
        out = args.work / f"{name}.result.json"
        args.work.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, "--worker", name, "--worker-out", str(out)]
        command += ["--seeds", str(args.seeds), "--samples", str(args.samples)]
        command += ["--threads", str(args.threads), "--work", str(args.work)]
        command += ["--posts-steps", str(args.posts_steps)]
        started = time.perf_counter()
        subprocess.run(command, check=True)  # a fresh process per model
        results[name] = json.loads(out.read_text())
        out.unlink()
        print(f"  {name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        methods = results[name]["methods"]
        print(
            f"{name:12} ({results[name]['parameters'] / 1e6:.1f}M, "
            f"{results[name]['threads_each']} thread(s) each), samples/s, median "
            f"[lowest–highest] of {args.seeds} calls: pipeline "
            f"{rate(methods['pipeline'])} ({methods['pipeline']['mean_tokens_per_sample']:.0f} "
            f"tokens a sample) | ours {rate(methods['ours'])} = {ratio(methods['ours'])} "
            f"({methods['ours']['mean_tokens_per_sample']:.0f} tokens) | as-pipeline "
            f"{rate(methods['as-pipeline'])} = {ratio(methods['as-pipeline'])} (first lines "
            f"equal to the pipeline's: {results[name]['as_pipeline_first_lines_equal']})"
        )
    load_after = os.getloadavg()
    summary = {
        "device": device_name(),
        "torch": torch.__version__,
        "threads": args.threads or "default",
        "samples_per_call": args.samples,
        "seeds": args.seeds,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "models": results,
        "data": posts_data()[2] if "gpt2-posts" in results else None,
        "target_speedup": 2.0,
    }
    print(
        "target ≥ 2× the pipeline (ratio of medians; like for like, --as-pipeline): "
        + ", ".join(
            f"{n} {r['methods']['ours']['speedup']:.2f}× "
            f"{'met' if r['methods']['ours']['speedup'] >= 2 else 'NOT met'} "
            f"(as-pipeline {r['methods']['as-pipeline']['speedup']:.2f}×)"
            for n, r in results.items()
        )
        + f"; load average {load_before[0]:.2f} → {load_after[0]:.2f}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
