#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, as one prepared script for a lent machine (issue 19).
#
#   bash benchmarks/gpu_check.sh [OUT.json]      (default: $GPU_CHECK_JSON, else ./gpu_check.json)
#
# Environment: PYTHON (the interpreter, default python), GPU_CHECK_BUDGET (seconds for the
# sections together, default 480: a device command may run 10 minutes, start-up aside),
# HUGGINGTWEETS_BENCH_DATA (the shared data folder; else ../shared/data, ./shared/data or
# runs/bench-data in the checkout, ignored; else the benchmarks use the bundled sample).
#
# Prints the GPU's name, then each section's figures, and writes ONE JSON: the GPU, torch
# and CUDA versions, each section's status, seconds and figures (the benchmark's own
# --json), and the sections skipped, each with why. On a GPU, in this order, each under a
# time cap (`timeout`) cut to what the budget has left (about 6 minutes on an H100):
#
#   time_to_bot  time_to_bot.py --full --repeat 1: prepare -> train -> card with a
#                GPT-2-small-sized base (GPT2Config(), 124M, random, built here), the
#                original recipe, ours (full fine-tune) and LoRA, each whole run measured
#                (not extrapolated); each way's MFU from its training tokens/s
#   mfu          train_throughput.py: training tokens/s of ours and the original, the
#                matmul roofline, MFU against the GPU's peak dense bf16 (PEAK_BF16_TFLOPS)
#   generate     generate_throughput.py: samples/s of our Generator vs pipeline(), on
#                gpt2-random (every sample 160 tokens) and gpt2-posts (ends its posts)
#   serve        serve_throughput.py: the server batched vs one request at a time
#   qlora        train --qlora on 4-bit bases (needs bitsandbytes)
#
# Without CUDA it names those as skipped (need CUDA), runs what a CPU can in seconds (the
# --qlora refusal; a tiny random model's Generator vs pipeline), writes the JSON, exit 0:
# tests/test_gpu_check.py runs it so. Exit 1 when a section that ran failed or ran out of
# time (the JSON says which and holds the end of its stderr); the others still run.
# Offline: every base is built here from config and the bundled sample, nothing downloaded.
set -euo pipefail

PY=${PYTHON:-python}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT_JSON=$(realpath -m -- "${1:-${GPU_CHECK_JSON:-gpu_check.json}}")
BUDGET=${GPU_CHECK_BUDGET:-480}
MIN_SECTION=30  # a section given less than this is skipped: it could not finish
STEPS=${QLORA_STEPS:-20}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/status"
: >"$WORK/order"
STARTED=$(date +%s.%N)
# The figures, not the libraries' bars and deprecation notes; never a download (the GPU
# machine has no network: a request would hang until its timeout, not fail).
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
export PYTHONUNBUFFERED=1

# A checkout where the package is not installed (a lent machine): from src/.
if ! "$PY" -c "import huggingtweets" 2>/dev/null; then
    export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
fi

# The shared data (the smithjd export) where there is a copy; else the bundled sample.
for data in "${HUGGINGTWEETS_BENCH_DATA:-}" "$ROOT/../shared/data" "$ROOT/shared/data" \
    "$ROOT/runs/bench-data"; do
    if [ -n "$data" ] && [ -f "$data/x-archive-smithjd/data/tweets.js" ]; then
        HUGGINGTWEETS_BENCH_DATA=$(realpath -- "$data")
        export HUGGINGTWEETS_BENCH_DATA
        break
    fi
done

CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$CUDA" = 1 ]; then
    "$PY" -c "import torch; p = torch.cuda.get_device_properties(0); \
print(f'GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, \
CUDA {torch.version.cuda}')"
else
    echo "GPU: none (torch.cuda.is_available() is False)"
fi

# -- the sections' bookkeeping ------------------------------------------------------------

note() {  # NAME STATUS REASON [BEGAN ENDED EXIT CAP]: the section's entry in the JSON
    echo "$1" >>"$WORK/order"
    "$PY" - "$WORK" "$@" <<'EOF'
import json
import sys
from pathlib import Path

work, name, status, reason, *rest = sys.argv[1:]
entry = {"status": status, "reason": reason or None}
if rest:
    began, ended, code, cap = rest
    entry.update(seconds=round(float(ended) - float(began), 1), exit=int(code), cap_s=int(cap))
    err = Path(work, f"{name}.err")
    if status != "ok" and err.exists():
        entry["stderr_tail"] = err.read_text(errors="replace").splitlines()[-25:]
Path(work, "status", f"{name}.json").write_text(json.dumps(entry))
EOF
    if [ "$2" = skipped ]; then echo "skipped: $1: $3"; fi
}

missing() {  # MODULE...: prints those that cannot be imported
    "$PY" - "$@" <<'EOF'
import importlib.util
import sys

print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}

section() {  # NAME CAP COMMAND...: COMMAND under `timeout`, its own figures in $WORK/NAME.json
    local name=$1 cap=$2
    shift 2
    local began ended code spent left
    began=$(date +%s.%N)
    spent=$(("${began%.*}" - "${STARTED%.*}"))
    left=$((BUDGET - spent))
    if ((left < MIN_SECTION)); then
        note "$name" skipped "the time budget was spent (GPU_CHECK_BUDGET=$BUDGET s, $spent s used)"
        return 0
    fi
    ((cap > left)) && cap=$left
    echo "== $name (at most $cap s)"
    set +e
    # The whole process group on time-out: the benchmarks' worker processes and servers too.
    timeout --kill-after=15 "$cap" "$@" 2>"$WORK/$name.err"
    code=$?
    set -e
    ended=$(date +%s.%N)
    if [ "$code" = 0 ]; then
        note "$name" ok "" "$began" "$ended" "$code" "$cap"
    elif [ "$code" = 124 ] || [ "$code" = 137 ]; then
        note "$name" "timed out" "stopped at its cap of $cap s" "$began" "$ended" "$code" "$cap"
        echo "$name: TIMED OUT after $cap s"
    else
        note "$name" failed "exit $code" "$began" "$ended" "$code" "$cap"
        echo "$name: FAILED (exit $code); the end of its stderr:"
        tail -15 "$WORK/$name.err"
    fi
    echo "   ($name: $(("${ended%.*}" - "${began%.*}")) s)"
}

# -- train --qlora ------------------------------------------------------------------------
# A 4-bit NF4 base with LoRA adapters: a tiny Llama and a GPT-2-small-sized model (both
# random, built here), merged onto the unquantized base, then --save-adapters loaded back
# with peft. Figures: steps, seconds and tokens/s of training, the loss before and after.

prepare_sample() {  # a prepared run from the bundled sample: $WORK/run
    [ -f "$WORK/run/dataset/train.jsonl" ] && return 0
    "$PY" -m huggingtweets prepare sample:romeo sample:juliet --out "$WORK/run" \
        >"$WORK/prepare.log" 2>&1 || { cat "$WORK/prepare.log" >&2; return 1; }
}

build_base() {  # ARCH LAYERS HEADS HIDDEN OUT
    "$PY" - "$@" "$WORK/run/dataset/train.jsonl" <<'EOF'
import sys
from pathlib import Path

from huggingtweets.model.architectures import build_tiny_model
from huggingtweets.train.packing import read_texts

arch, layers, heads, hidden, out, posts = sys.argv[1:]
texts = read_texts(Path(posts))
build_tiny_model(texts, Path(out), arch, layers=int(layers), heads=int(heads),
                 hidden=int(hidden), vocab_size=4096)
EOF
}

qlora_run() {  # NAME BASE_DIR [more train options]: one line, its figures to qlora.jsonl
    local name=$1 base=$2 out="$WORK/$1"
    shift 2
    local started ended
    started=$(date +%s.%N)
    "$PY" -m huggingtweets train "$WORK/run" --output-dir "$out" --base-model "$base" \
        --qlora --max-steps "$STEPS" --no-card --evaluate never "$@" >"$out.log" 2>&1 \
        || { echo "qlora $name: FAILED"; tail -5 "$out.log" >&2; return 1; }
    ended=$(date +%s.%N)
    "$PY" - "$out" "$name" "$started" "$ended" "$WORK/qlora.jsonl" <<'EOF'
import json
import sys
from pathlib import Path

out, name, started, ended, figures = Path(sys.argv[1]), sys.argv[2], *sys.argv[3:]
started, ended = float(started), float(ended)
m = json.loads((out / "metrics.json").read_text())
lora = m["hyperparameters"]["lora"]
assert lora["quantization"] == "nf4", lora
model = out / "model"
if lora["merged"]:  # a plain model, loadable without peft
    from transformers import AutoModelForCausalLM
    loaded = AutoModelForCausalLM.from_pretrained(model)
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    kind = f"merged ({type(loaded).__name__}, {next(loaded.parameters()).dtype})"
else:
    from peft import AutoPeftModelForCausalLM
    loaded = AutoPeftModelForCausalLM.from_pretrained(model)
    kind = f"adapters ({type(loaded).__name__})"
t = m["timings"]
print(f"qlora {name}: {m['global_steps']} steps, train {t['train_seconds']:.1f} s, "
      f"{t['tokens_per_second']:,.0f} tokens/s, whole command {ended - started:.1f} s; "
      f"eval loss {m['eval_loss_before']:.3f} -> {m['eval_loss_after']:.3f}; {kind}; "
      f"{m['device']}")
row = {"name": name, "steps": m["global_steps"], "train_seconds": t["train_seconds"],
       "tokens_per_second": t["tokens_per_second"], "command_seconds": ended - started,
       "eval_loss_before": m["eval_loss_before"], "eval_loss_after": m["eval_loss_after"],
       "saved": kind, "device": m["device"]}
with open(figures, "a") as f:
    f.write(json.dumps(row) + "\n")
EOF
}

qlora_all() {
    prepare_sample || return 1
    build_base llama 4 4 256 "$WORK/tiny-llama" || return 1
    build_base gpt2 12 12 768 "$WORK/gpt2-small-sized" || return 1
    qlora_run tiny-llama "$WORK/tiny-llama" || return 1
    qlora_run gpt2-small-sized "$WORK/gpt2-small-sized" || return 1
    qlora_run tiny-llama-adapters "$WORK/tiny-llama" --save-adapters || return 1
    "$PY" -c "import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; \
json.dump({'runs': rows}, open(sys.argv[2], 'w'))" "$WORK/qlora.jsonl" "$WORK/qlora.json"
}

qlora_refusal() {  # what a CPU can check: the refusal, at once, in one line, exit 2
    prepare_sample || return 1
    local refusal code
    set +e
    refusal=$("$PY" -m huggingtweets train "$WORK/run" --base-model tiny --qlora 2>&1)
    code=$?
    set -e
    if [ "$code" = 2 ] && [ "$(printf '%s\n' "$refusal" | wc -l)" = 1 ] \
        && [[ $refusal == *"NVIDIA GPU"*"--lora"* ]]; then
        echo "qlora refusal without CUDA: ok ($refusal)"
        "$PY" -c "import json, sys; json.dump({'ok': True, 'exit': 2, 'message': sys.argv[1]}, \
open(sys.argv[2], 'w'))" "$refusal" "$WORK/qlora_refusal.json"
    else
        echo "qlora refusal without CUDA: FAILED (exit $code): $refusal" >&2
        return 1
    fi
}
export -f prepare_sample build_base qlora_run qlora_all qlora_refusal
export PY WORK STEPS

# -- the sections -------------------------------------------------------------------------

B=$HERE
NEED_CUDA="needs CUDA (torch.cuda.is_available() is False)"
GPU_SECTIONS=(time_to_bot mfu generate serve qlora)
if [ "$CUDA" = 1 ]; then
    core=$(missing msgspec orjson transformers peft accelerate tokenizers safetensors)
    serving=$(missing fastapi uvicorn httpx pydantic python_multipart)
    if [ -n "$core" ]; then
        for name in "${GPU_SECTIONS[@]}"; do
            note "$name" skipped "missing Python packages: $core (carry wheels: benchmarks/README.md, GPU)"
        done
    else
        section time_to_bot 240 "$PY" "$B/time_to_bot.py" --full --repeat 1 \
            --work "$WORK/time_to_bot" --json "$WORK/time_to_bot.json"
        section mfu 150 "$PY" "$B/train_throughput.py" --steps 20 --warmup 5 \
            --json "$WORK/mfu.json"
        section generate 120 "$PY" "$B/generate_throughput.py" --models gpt2-random,gpt2-posts \
            --seeds 3 --work "$WORK/models" --json "$WORK/generate.json"
        if [ -n "$serving" ]; then
            note serve skipped "missing Python packages: $serving (huggingtweets[serve]; carry wheels: benchmarks/README.md, GPU)"
        else  # the model generate built, or built here if generate did not
            section serve 120 "$PY" "$B/serve_throughput.py" --model gpt2-posts --requests 120 \
                --work "$WORK/models" --json "$WORK/serve.json"
        fi
        if [ -n "$(missing bitsandbytes)" ]; then
            note qlora skipped "bitsandbytes is not installed (pip install 'huggingtweets[qlora]')"
        else
            section qlora 150 bash -c qlora_all
        fi
    fi
else
    for name in "${GPU_SECTIONS[@]}"; do
        note "$name" skipped "$NEED_CUDA"
    done
    # What a CPU checks in seconds: the --qlora refusal, and both generation paths on the
    # tiny base at random init (every sample 160 tokens; figures of a CPU, not a GPU).
    section qlora_refusal 60 bash -c qlora_refusal
    section generate_tiny 90 "$PY" "$B/generate_throughput.py" --models tiny-random \
        --seeds 2 --samples 3 --threads 1 --work "$WORK/models" --json "$WORK/generate_tiny.json"
fi

# -- the one JSON -------------------------------------------------------------------------

"$PY" - "$WORK" "$OUT_JSON" "$STARTED" "$(date +%s.%N)" "$BUDGET" "$B" <<'EOF'
import json
import platform
import sys
import time
from pathlib import Path

import torch

work, out, started, ended, budget, bench = sys.argv[1:]
work, out = Path(work), Path(out)
sys.path.insert(0, bench)
from generate_throughput import cpu_model, posts_data  # noqa: E402
from train_throughput import mfu  # noqa: E402

cuda = torch.cuda.is_available()
gpu = torch.cuda.get_device_name(0) if cuda else None
order = list(dict.fromkeys(work.joinpath("order").read_text().split()))
sections, skipped, failed = {}, [], []
for name in order:
    entry = json.loads((work / "status" / f"{name}.json").read_text())
    figures = work / f"{name}.json"
    entry["figures"] = json.loads(figures.read_text()) if figures.exists() else None
    if entry["status"] == "skipped":
        skipped.append({"section": name, "reason": entry["reason"]})
    elif entry["status"] != "ok":
        failed.append({"section": name, "status": entry["status"], "reason": entry["reason"]})
    sections[name] = entry

headline: dict = {}
bot = (sections.get("time_to_bot") or {}).get("figures")
if bot:
    # MFU of each way's training steps: 6·N for the full fine-tunes, 4·N for LoRA (its
    # frozen weights get no gradient); attention's term at each way's block (the
    # original's 1,024 tokens, ours 256).
    for way, r in bot["ways"].items():
        lora = way == "lora"
        r["mfu"] = mfu(r["train_tokens_per_second"], r["parameters"], gpu or cpu_model(),
                       layers=12, hidden=768, sequence=1024 if way == "original" else 256,
                       flops_per_parameter=4 if lora else 6)
    headline["time_to_bot_s"] = {w: r["full_run"]["seconds"] for w, r in bot["ways"].items()}
    headline["time_to_bot_measured"] = not any(
        r["full_run"]["extrapolated"] for r in bot["ways"].values()
    )
    headline["time_to_bot_partial"] = bot.get("partial", False)  # cut at its cap
    headline["time_to_bot_mfu"] = {w: r["mfu"]["mfu"] for w, r in bot["ways"].items()}
roof = (sections.get("mfu") or {}).get("figures")
if roof:
    for way in ("original", "ours"):
        m = roof[way].get("mfu") or {}
        headline[f"mfu_{way}"] = m.get("mfu")
        headline[f"roofline_fraction_{way}"] = roof[way]["roofline_fraction"]
    headline["roofline_tflops"] = roof["roofline"]["gflops"] / 1000
for name in ("generate", "generate_tiny"):
    gen = (sections.get(name) or {}).get("figures")
    if gen:
        headline[f"{name}_speedup"] = {
            m: r["methods"]["ours"]["speedup"] for m, r in gen["models"].items()
        }
serve = (sections.get("serve") or {}).get("figures")
if serve:
    headline["serve_batched_requests_per_s"] = serve["summary"]["batched"]["requests_per_s"]
    headline["serve_ratio"] = serve["ratio"]

summary = {
    "gpu": gpu,
    "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None,
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cpu": cpu_model(),
    "python": platform.python_version(),
    "data": posts_data()[2] if cuda else None,  # the posts time_to_bot and generate used
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "budget_s": int(budget),
    "seconds": round(float(ended) - float(started), 1),
    "headline": headline,
    "skipped": skipped,
    "failed": failed,
    "sections": sections,
}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(summary, indent=2))
print(f"gpu: {gpu or 'none'}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
      f"{summary['seconds']:.0f} s in all")
for key, value in headline.items():
    print(f"  {key}: {json.dumps(value)}")
print(f"ran: {', '.join(n for n, e in sections.items() if e['status'] == 'ok') or 'nothing'}")
for s in skipped:
    print(f"skipped: {s['section']}: {s['reason']}")
for f in failed:
    print(f"FAILED: {f['section']}: {f['status']} ({f['reason']})")
print(f"written to {out}")
sys.exit(1 if failed else 0)
EOF
