"""Benchmark: ``huggingtweets serve`` under load, with dynamic batching and without.

The real server (``python -m huggingtweets serve MODEL``, uvicorn) runs in a process of
its own on 127.0.0.1; 20 asyncio clients (httpx) send ``POST /api/v1/generate`` in a
loop until ``--requests`` have been sent. Measured twice in the same run, the order
alternating between repeats:

- ``batched``: ``--max-batch 20`` (the default): requests that wait together for the
  same model and settings are drawn in one sampling loop;
- ``one-at-a-time``: ``--max-batch 1``: each request drawn alone, as the CLI draws it.

Reported: requests/s and p50/p99 latency (seconds, from sending to the whole answer) of
the *answered* requests only (200 with its n samples); failed ones (another status, a
connection error, a wrong number of samples) apart: their count, their kinds and their
own median latency, never in the throughput or the answered latencies; and batched /
one-at-a-time answered requests/s (target, issue 9: >= 2x).

Models, built offline once under ``--work`` (generate_throughput.py's builders):
``tiny-demo`` (default: the tiny model ``huggingtweets demo`` trains, whose samples end
at a line as a bot's do), ``gpt2-random`` (GPT-2 small at random init, 124M: every
sample runs to 160 tokens) or ``gpt2-posts`` (that model trained a few steps on posts: it
ends them, as a bot does; gpu_check.sh's choice on a GPU).

    python benchmarks/serve_throughput.py [--model tiny-demo] [--requests 200] [--n 1]
        [--clients 20] [--repeat 1] [--json runs/benchmarks/serve_throughput.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from generate_throughput import cpu_model, device_name, model_folder

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ("My dream is", "I think", "Today", "My dream is", "The best thing about")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, max_batch: int, max_queue: int, log: Path):
    """The server in its own process; returns (process, base URL) once healthy."""
    import httpx

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("HUGGINGTWEETS_API_TOKEN", None)
    handle = open(log, "w")  # noqa: SIM115 - the server's output, kept for a failure
    proc = subprocess.Popen(
        [sys.executable, "-m", "huggingtweets", "serve", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--max-batch", str(max_batch), "--max-queue", str(max_queue)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=log.parent,  # its runs/ is the work folder's, not the checkout's
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server ended: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


async def load(url: str, model: str, requests: int, clients: int, n: int) -> dict:
    """``clients`` loops sending ``requests`` requests; answered and failed counted apart."""
    import httpx

    latencies: list[float] = []  # answered requests only
    failed: list[float] = []  # the failed ones' latencies, apart
    errors: list[str] = []
    kinds: dict[str, int] = {}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            body = {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "n": n}
            started = time.perf_counter()
            try:
                answer = await http.post(f"{url}/api/v1/generate", json=body)
                ok = answer.status_code == 200 and len(answer.json()["samples"]) == n
                kind = str(answer.status_code) if not ok else ""
                error = f"{answer.status_code} {answer.text[:200]}"
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                ok, kind, error = False, type(exc).__name__, repr(exc)
            took = time.perf_counter() - started
            if ok:
                latencies.append(took)
            else:
                failed.append(took)
                errors.append(error)
                kinds[kind] = kinds.get(kind, 0) + 1

    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        # Warm-up, not counted: the model's first load and first allocations.
        await http.post(f"{url}/api/v1/generate", json={"model": model, "n": n})
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "sent": requests,
        "requests": len(latencies),  # answered
        "errors": len(errors),
        "error_kinds": kinds,
        "first_errors": errors[:3],
        "error_p50_s": statistics.median(failed) if failed else None,
        "seconds": wall,
        "requests_per_s": len(latencies) / wall,
        "samples_per_s": len(latencies) * n / wall,
        "p50_s": statistics.median(ordered) if ordered else None,
        "p99_s": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        if ordered
        else None,
    }


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def summarize(results: list[dict]) -> dict:
    """Medians over the repeats (answered requests only); errors summed, apart."""
    summary: dict = {}
    for key in ("requests_per_s", "samples_per_s", "p50_s", "p99_s"):
        values = [r[key] for r in results if r[key] is not None]
        summary[key] = statistics.median(values) if values else None
    summary["errors"] = sum(r["errors"] for r in results)
    summary["sent"] = sum(r["sent"] for r in results)
    return summary


def measure(model: Path, name: str, max_batch: int, args, log: Path) -> dict:
    proc, url = start_server(model, max_batch, args.max_queue, log)
    before = os.getloadavg()[0]
    try:
        result = asyncio.run(load(url, name, args.requests, args.clients, args.n))
        # The machine's load average (1 min) around the run: other work skews the figures.
        return result | {"load_average": [round(before, 2), round(os.getloadavg()[0], 2)]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", choices=("tiny-demo", "gpt2-random", "gpt2-posts"), default="tiny-demo"
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--n", type=int, default=1, help="samples per request")
    parser.add_argument("--max-batch", type=int, default=20)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "runs/benchmarks/work")
    parser.add_argument("--json", type=Path, default=ROOT / "runs/benchmarks/serve_throughput.json")
    args = parser.parse_args()
    model = model_folder(args.work, args.model)
    # As the server names a folder given at start: a run's model/ by the run's name.
    name = model.parent.name if model.name == "model" else model.name
    machine = device_name()
    print(f"machine: {machine}")
    print(f"model: {args.model} ({model}); {args.clients} clients, {args.requests} requests "
          f"of n={args.n}")  # fmt: skip
    modes = {"batched": args.max_batch, "one-at-a-time": 1}
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for repeat in range(args.repeat):
        order = list(modes) if repeat % 2 == 0 else list(modes)[::-1]
        for mode in order:
            log = args.work / f"serve-{mode}.log"
            result = measure(model, name, modes[mode], args, log)
            runs[mode].append(result)
            failures = (
                f"errors {result['errors']} of {result['sent']} "
                f"({', '.join(f'{k}: {v}' for k, v in result['error_kinds'].items())}; "
                f"their p50 {seconds(result['error_p50_s'])}, not counted above)"
                if result["errors"]
                else f"errors 0 of {result['sent']}"
            )
            print(
                f"  {mode:>13}: {result['requests_per_s']:7.2f} answered requests/s "
                f"({result['samples_per_s']:.1f} samples/s), p50 {seconds(result['p50_s'])}, "
                f"p99 {seconds(result['p99_s'])} (answered only); {failures}; load average "
                f"{result['load_average'][0]} -> {result['load_average'][1]}"
            )
    summary = {mode: summarize(results) for mode, results in runs.items()}
    alone = summary["one-at-a-time"]["requests_per_s"]
    ratio = summary["batched"]["requests_per_s"] / alone if alone else float("nan")
    print(f"batched / one at a time: {ratio:.2f}x answered requests/s (target >= 2x)")
    out = {
        "machine": machine,
        "cpu": cpu_model(),
        "model": args.model,
        "clients": args.clients,
        "requests": args.requests,
        "n": args.n,
        "max_batch": args.max_batch,
        "runs": runs,
        "summary": summary,
        "ratio": ratio,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
