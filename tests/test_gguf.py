"""``export --gguf``: the file gguf (llama.cpp's package) writes is read back by
transformers' own GGUF loader, and its logits match the original's on a few prompts.

Tolerances, on the largest logit's magnitude M over the prompts (measured on this CPU,
tiny GPT-2 and tiny Llama with weights drawn at std 0.3 so that attention is sharp and a
misplaced row shows: M ≈ 10, while q/k rows left in HF's order are off by ≈ 10):

- f16: max |Δlogit| ≤ 0.01 · M (measured: GPT-2 0.0017 · M, Llama 0.0035 · M);
- q8_0: max |Δlogit| ≤ 0.15 · M (measured: GPT-2 0.038 · M, Llama 0.075 · M), still far
  below the ≈ 1.2 · M of q/k rows in the wrong order.

llama.cpp itself (llama-cpp-python, which compiles it) is checked by
benchmarks/llama_cpp_check.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from demo_run import demo_run

from huggingtweets.card.model_card import write_card
from huggingtweets.collect.sample import speeches
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.runs import RunDir
from huggingtweets.model.architectures import build_tiny_model
from huggingtweets.model.tiny import build_tiny_base
from huggingtweets.publish.gguf import ExportOptions, export_gguf
from huggingtweets.publish.hub import is_model_file

gguf = pytest.importorskip("gguf", reason="the gguf package (pip install 'huggingtweets[gguf]')")
torch = pytest.importorskip("torch")

PROMPTS = ("My dream is", "I love the sea and", "Wherefore art thou")
TOLERANCE = {"f16": 0.01, "q8_0": 0.15}  # of the largest logit (see above)


def _sharpen(model_dir: Path) -> Path:
    """Weights drawn at std 0.3: a random init's are so small that attention is nearly
    uniform, and a wrong order of q/k rows would hardly change the logits."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.normal_(0, 0.3, generator=generator)
    model.save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    texts = [text for _, text in speeches()[:600]]
    root = tmp_path_factory.mktemp("gguf-bases")
    return {
        "gpt2": _sharpen(
            build_tiny_base(texts, root / "gpt2", vocab_size=512, n_embd=64, n_layer=2)
        ),
        "llama": _sharpen(build_tiny_model(texts, root / "llama", "llama", vocab_size=512)),
    }


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.float()


@pytest.mark.parametrize("quantize", ["f16", "q8_0"])
@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_transformers_reads_the_gguf_back_with_the_same_logits(
    architecture, quantize, bases, tmp_path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = bases[architecture]
    result = export_gguf(source, ExportOptions(quantize=quantize), tmp_path / "bot.gguf")
    assert result.path.stat().st_size == result.size > 0
    original = AutoModelForCausalLM.from_pretrained(source).eval()
    # transformers' loader maps context_length to GPT2Config's n_ctx, not n_positions
    # (the position table's size): given here, or it re-initialises a table of 1024.
    extra = {"n_positions": original.config.n_positions} if architecture == "gpt2" else {}
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="bot.gguf", **extra).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer_back = AutoTokenizer.from_pretrained(tmp_path, gguf_file="bot.gguf")
    worst, largest = 0.0, 0.0
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        assert tokenizer_back(prompt, return_tensors="pt").input_ids.tolist() == ids.tolist()
        expected, got = _logits(original, ids), _logits(back, ids)
        worst = max(worst, float((expected - got).abs().max()))
        largest = max(largest, float(expected.abs().max()))
    print(f"{architecture} {quantize}: max |Δlogit| {worst:.5f} = {worst / largest:.5f} · M")
    assert largest > 1.0  # sharp enough for a misplaced weight to show
    assert worst <= TOLERANCE[quantize] * largest


def test_metadata_tokenizer_and_sampling(bases, tmp_path):
    path = export_gguf(bases["gpt2"], out=tmp_path / "bot.gguf").path
    reader = gguf.GGUFReader(path)

    def value(key):
        return reader.fields[key].contents()

    assert value("general.architecture") == "gpt2"
    assert value("tokenizer.ggml.model") == "gpt2"
    assert value("tokenizer.ggml.pre") == "gpt-2"
    tokens = value("tokenizer.ggml.tokens")
    types = value("tokenizer.ggml.token_type")
    end = tokens.index("<|endoftext|>")
    assert types[end] == gguf.TokenType.CONTROL  # parsed as the token in a prompt
    assert value("tokenizer.ggml.eos_token_id") == end
    assert value("tokenizer.ggml.add_bos_token") is False  # GPT-2 starts with no BOS
    assert len(value("tokenizer.ggml.merges")) > 100
    assert value("general.sampling.top_p") == pytest.approx(0.95)
    assert value("general.sampling.top_k") == 50
    names = {tensor.name for tensor in reader.tensors}
    assert {"token_embd.weight", "position_embd.weight", "blk.0.attn_qkv.weight"} <= names
    assert "output.weight" not in names  # tied: llama.cpp uses token_embd


def test_a_run_exports_beside_its_model_with_an_ollama_modelfile_and_card(tmp_path_factory):
    demo = demo_run(tmp_path_factory)
    run_dir = tmp_path_factory.mktemp("gguf-run") / "rj"
    shutil.copytree(demo.run_dir, run_dir)
    before = (run_dir / "model" / "README.md").read_text()
    assert "## Run it locally" not in before
    result = run_cli("export", run_dir, "--gguf", "--quantize", "q8_0", "--ollama")
    path = RunDir(run_dir).gguf_path("q8_0")
    assert path.name == "model-q8_0.gguf" and path.exists()
    assert str(path) in result.stdout.replace("\n", "")
    modelfile = (run_dir / "model" / "Modelfile").read_text()
    assert modelfile.splitlines()[:2] == [
        "FROM ./model-q8_0.gguf",
        'TEMPLATE """<|endoftext|>{{ .Prompt }}"""',
    ]
    assert "PARAMETER top_p 0.95" in modelfile and 'PARAMETER stop "\\n"' in modelfile
    card = (run_dir / "model" / "README.md").read_text()
    assert "## Run it locally" in card
    assert "hf download huggingtweets/romeo-juliet model-q8_0.gguf Modelfile" in card
    assert card.replace(_section(card), "") == before  # only the section was added
    # The section spliced in is the one a card written anew has.
    write_card(run_dir)
    assert (run_dir / "model" / "README.md").read_text() == card
    for name in (path.name, "Modelfile"):
        assert is_model_file(name)  # push uploads them


def _section(card: str) -> str:
    start = card.index("\n## Run it locally\n")
    return card[start : card.index("\n## Limitations and bias\n")]


def _one_line_error(*args, expect: int = 2) -> str:
    result = run_cli("export", *args, expect=expect)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_bad_input_is_one_line_exit_2_and_leaves_no_gguf(bases, tmp_path):
    assert "no trained model" in _one_line_error(tmp_path / "empty")
    half = tmp_path / "half"
    shutil.copytree(bases["gpt2"], half)
    weights = half / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert "damaged" in _one_line_error(half, "--out", tmp_path / "half.gguf")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    line = _one_line_error(bases["gpt2"], "--out", a_file / "x.gguf")
    assert line.startswith(f"Error: cannot use {a_file} as ") and line.endswith(": it is a file")
    line = _one_line_error(bases["gpt2"], "--out", "/proc/x.gguf")
    assert line == "Error: cannot write into /proc: No such file or directory; choose another --out"
    line = _one_line_error(bases["gpt2"], "--quantize", "q4_k", "--out", tmp_path / "q.gguf")
    assert line == "Error: --quantize must be one of f16, q8_0 (got 'q4_k')"
    assert not list(tmp_path.rglob("*.gguf*")) and not list(bases["gpt2"].glob("*.gguf*"))


def test_other_architectures_are_refused_naming_the_supported(tmp_path):
    texts = [text for _, text in speeches()[:200]]
    qwen = build_tiny_model(texts, tmp_path / "qwen", "qwen2", vocab_size=300)
    line = _one_line_error(qwen)
    assert line == (
        "Error: cannot export a 'qwen2' model to GGUF: the supported architectures are "
        "gpt2, llama (GPT-2 and Llama)"
    )
    assert not list(tmp_path.rglob("*.gguf*"))


def test_a_failed_write_leaves_no_half_written_gguf(bases, tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", broken)
    with pytest.raises(HuggingtweetsError, match=r"cannot write .*No space left"):
        export_gguf(bases["llama"], out=tmp_path / "bot.gguf")
    assert list(tmp_path.iterdir()) == []
