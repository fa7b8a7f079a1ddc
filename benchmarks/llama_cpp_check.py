"""llama.cpp itself reads what ``huggingtweets export --gguf`` writes.

For a tiny GPT-2 and a tiny Llama built here (weights drawn at std 0.3, as in
tests/test_gguf.py), and for each RUN_DIR given (a trained bot: ``huggingtweets demo``'s),
in f16 and q8_0: llama.cpp (through llama-cpp-python) loads the GGUF, tokenizes
"<|endoftext|>My dream is" as transformers does (the separator parsed as its special
token), its logits on the prompt are compared with transformers' on the original model,
and it writes a post from "My dream is" with the original's sampling (top-p 0.95,
top-k 50, temperature 1, stop at the line break).

Not part of the test suite: llama-cpp-python compiles llama.cpp from source when
installed, which took longer than CI should wait (see the figures below).

    pip install 'huggingtweets[gguf]' llama-cpp-python   # CMAKE_ARGS="-DGGML_NATIVE=OFF"
    python benchmarks/llama_cpp_check.py [RUN_DIR ...]

Exits 1 when a check fails (a tokenization or logits mismatch, no text written).

Figures (2 shared CPU cores, AVX2; llama-cpp-python 0.3.36 built from its sdist with
CMAKE_ARGS="-DGGML_NATIVE=OFF": 1961 s, while tests ran beside it): all 6 checks pass,
tokens as transformers'; max |Δlogit| over the largest logit: tiny GPT-2 f16 0.0018,
q8_0 0.055; tiny Llama f16 0.0036, q8_0 0.054; the demo's trained GPT-2 (RUN_DIR) f16
0.0001, q8_0 0.0020. The demo bot in llama.cpp: "My dream is of, of not and, And to,;,
ist, a not!,, my?,en,," (one epoch of tiny Shakespeare: the style, not the sense).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

PROMPT = "My dream is"
TOLERANCE = {"f16": 0.01, "q8_0": 0.15}  # max |Δlogit| over the largest |logit| (as in CI)


def tiny_models(root: Path) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM

    from huggingtweets.collect.sample import speeches
    from huggingtweets.model.architectures import build_tiny_model
    from huggingtweets.model.tiny import build_tiny_base

    texts = [text for _, text in speeches()[:600]]
    models = {
        "tiny-gpt2": build_tiny_base(texts, root / "gpt2", vocab_size=512, n_embd=64, n_layer=2),
        "tiny-llama": build_tiny_model(texts, root / "llama", "llama", vocab_size=512),
    }
    for path in models.values():
        model = AutoModelForCausalLM.from_pretrained(path)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.ndim == 2:
                    parameter.normal_(0, 0.3, generator=generator)
        model.save_pretrained(path)
    return models


def check(name: str, model_dir: Path, gguf_path: Path, quantize: str) -> bool:
    import numpy as np
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from huggingtweets.publish.gguf import ExportOptions, export_gguf, sampling_settings

    started = time.perf_counter()
    export_gguf(model_dir, ExportOptions(quantize=quantize), gguf_path)
    exported = time.perf_counter() - started
    original = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prefix = sampling_settings(original)["prefix"] or ""
    expected = tokenizer(prefix + PROMPT, add_special_tokens=True)["input_ids"]

    llm = Llama(str(gguf_path), n_ctx=256, logits_all=True, seed=42, verbose=False)
    ids = llm.tokenize((prefix + PROMPT).encode(), add_bos=llm._model.add_bos_token(), special=True)
    llm.eval(ids)
    theirs = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
    with torch.no_grad():
        ours = original(torch.tensor([expected])).logits[0].float().numpy()
    same_ids = ids == expected
    worst = float(np.abs(theirs - ours).max()) if same_ids else float("inf")
    largest = float(np.abs(ours).max())
    llm.reset()
    post = llm(
        prefix + PROMPT,
        max_tokens=40,
        top_p=0.95,
        top_k=50,
        temperature=1.0,
        stop=["\n"],
        seed=42,
    )["choices"][0]["text"]
    ok = same_ids and worst <= TOLERANCE[quantize] * largest and bool(post.strip())
    print(
        f"{'ok  ' if ok else 'FAIL'} {name} {quantize}: {gguf_path.stat().st_size / 1e6:.2f} MB "
        f"exported in {exported:.1f} s; tokens {'as transformers' if same_ids else ids}; "
        f"max |Δlogit| {worst:.4f} ({worst / largest:.4f} of {largest:.2f})\n"
        f"     llama.cpp: {PROMPT}{post}"
    )
    return ok


def main(run_dirs: list[str]) -> int:
    import llama_cpp

    from huggingtweets.core.runs import RunDir

    print(
        f"llama-cpp-python {llama_cpp.__version__}, {llama_cpp.llama_print_system_info().decode()}"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = tiny_models(root)
        models.update({Path(r).name: RunDir(Path(r)).model_dir for r in run_dirs})
        for name, model_dir in models.items():
            for quantize in ("f16", "q8_0"):
                results.append(check(name, model_dir, root / f"{name}-{quantize}.gguf", quantize))
    print(f"{sum(results)} of {len(results)} checks passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
