#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, as one prepared script for a lent machine.
#
#   bash benchmarks/gpu_check.sh            (PYTHON=... to pick the interpreter)
#
# Prints the GPU's name, then each section's figures. Without CUDA it says which parts
# it skips, runs what a CPU can (the refusals), and exits 0: it is tested on CPUs too.
# Offline: the bases are built here from the bundled sample, nothing is downloaded.
set -euo pipefail

PY=${PYTHON:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STEPS=${QLORA_STEPS:-20}
# The figures, not the libraries' bars and deprecation notes.
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore

CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$CUDA" = 1 ]; then
    "$PY" -c "import torch; p = torch.cuda.get_device_properties(0); \
print(f'GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, \
CUDA {torch.version.cuda}')"
else
    echo "GPU: none (torch.cuda.is_available() is False)"
fi

# A prepared run from the bundled sample, shared by the sections.
"$PY" -m huggingtweets prepare sample:romeo sample:juliet --out "$WORK/run" >"$WORK/prepare.log" 2>&1 \
    || { cat "$WORK/prepare.log"; exit 1; }

# -- train --qlora ----------------------------------------------------------------------
# A 4-bit NF4 base with LoRA adapters: a tiny Llama and a GPT-2-small-sized model (both
# random, built here), merged onto the unquantized base, then --save-adapters loaded back
# with peft. Figures: steps, seconds and tokens/s of training, the loss before and after.

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

qlora_run() {  # NAME BASE_DIR [more train options]
    local name=$1 base=$2 out="$WORK/$1"
    shift 2
    local started ended
    started=$(date +%s.%N)
    "$PY" -m huggingtweets train "$WORK/run" --output-dir "$out" --base-model "$base" \
        --qlora --max-steps "$STEPS" --no-card --evaluate never "$@" >"$out.log" 2>&1 \
        || { echo "qlora $name: FAILED"; tail -5 "$out.log"; return 1; }
    ended=$(date +%s.%N)
    "$PY" - "$out" "$name" "$started" "$ended" <<'EOF'
import json
import sys
from pathlib import Path

out, name, started, ended = Path(sys.argv[1]), sys.argv[2], *map(float, sys.argv[3:])
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
EOF
}

if [ "$CUDA" = 1 ] && "$PY" -c "import bitsandbytes" 2>/dev/null; then
    build_base llama 4 4 256 "$WORK/tiny-llama"
    build_base gpt2 12 12 768 "$WORK/gpt2-small-sized"
    qlora_run tiny-llama "$WORK/tiny-llama"
    qlora_run gpt2-small-sized "$WORK/gpt2-small-sized"
    qlora_run tiny-llama-adapters "$WORK/tiny-llama" --save-adapters
elif [ "$CUDA" = 1 ]; then
    echo "skipped: train --qlora runs (bitsandbytes is not installed: pip install 'huggingtweets[qlora]')"
else
    echo "skipped: train --qlora runs (tiny Llama, GPT-2-small-sized, --save-adapters): need CUDA"
    # What a CPU can check: the refusal, at once, in one line, exit 2.
    set +e
    refusal=$("$PY" -m huggingtweets train "$WORK/run" --base-model tiny --qlora 2>&1)
    code=$?
    set -e
    if [ "$code" = 2 ] && [ "$(printf '%s\n' "$refusal" | wc -l)" = 1 ] \
        && [[ $refusal == *"NVIDIA GPU"*"--lora"* ]]; then
        echo "qlora refusal without CUDA: ok ($refusal)"
    else
        echo "qlora refusal without CUDA: FAILED (exit $code): $refusal"
        exit 1
    fi
fi
