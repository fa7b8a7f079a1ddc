"""Export a bot as one GGUF file, for llama.cpp and Ollama: ``huggingtweets export --gguf``.

The file is written by ``gguf``, llama.cpp's own Python package, as llama.cpp's
``convert_hf_to_gguf.py`` writes it: the architecture's hyper-parameters, the tokenizer
(tokens, token types, merges, special tokens, the pre-tokenizer llama.cpp splits text
with) and the tensors under the names llama.cpp looks for, taken from gguf's own
tensor-name maps. GPT-2 (the default base, and the tiny one) and the Llama architecture
(SmolLM2, Llama 3.2 without rope scaling, any ``LlamaForCausalLM``) are supported.

``f16`` keeps every matrix in half precision and the norms and biases in fp32 (as the
converter does); ``q8_0`` quantizes the matrices through gguf's quants module (8-bit
blocks of 32). The original's sampling settings go into the file's ``general.sampling``
keys, and, with ``--ollama``, into a Modelfile beside it. The file is written under a
temporary name and renamed when complete: a failure leaves no half-written GGUF.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError, check_options, option
from huggingtweets.core.runs import (
    MODELFILE,
    RunDir,
    atomic_path,
    atomic_write,
    check_writable_dir,
)

QUANTIZATIONS = ("f16", "q8_0")
# transformers' model_type → gguf's MODEL_ARCH member name.
ARCHITECTURES = {"gpt2": "GPT2", "llama": "LLAMA"}
# transformers' default top_k, which the original sampled with (see generate/sampling.py).
TOP_K = 50
# The pre-tokenizer (tokenizer.json) → the name llama.cpp knows the same split by
# (its tokenizer.ggml.pre). GPT-2's regex alone; Llama 3's; SmolLM's (digits one by one).
_LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"


@dataclass
class ExportOptions:
    """How ``export`` writes the GGUF file."""

    quantize: str = option(
        "f16",
        metavar="f16|q8_0",
        help="Weights in half precision (f16) or 8-bit blocks (q8_0: half the size).",
    )
    ollama: bool = option(
        False,
        help="Also write an Ollama Modelfile beside the GGUF (`ollama create NAME -f "
        "Modelfile`), with the original's sampling settings.",
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.quantize not in QUANTIZATIONS:
            raise OptionError(
                "quantize", f"must be one of {', '.join(QUANTIZATIONS)} (got {self.quantize!r})"
            )


@dataclass(frozen=True)
class ExportResult:
    path: Path
    modelfile: Path | None
    tensors: int
    size: int  # bytes


def _model_dir(source: Path | str | RunDir) -> tuple[Path, RunDir | None]:
    """The model folder of a run (RUN/model) or a model folder given itself."""
    run = source if isinstance(source, RunDir) else RunDir(Path(source))
    if (run.model_dir / "config.json").exists():
        return run.model_dir, run
    if (run.root / "config.json").exists():
        return run.root, None
    raise HuggingtweetsError(
        f"{run.root} has no trained model yet: run `huggingtweets train {run.root}` first"
    )


def check_architecture(config) -> str:
    """gguf's architecture for a transformers config, or one line naming those supported."""
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise HuggingtweetsError(
            f"cannot export a {model_type!r} model to GGUF: the supported architectures are "
            f"{', '.join(ARCHITECTURES)} (GPT-2 and Llama)"
        )
    scaling = getattr(config, "rope_scaling", None) or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind != "default":
        raise HuggingtweetsError(
            f"cannot export a Llama model with {kind!r} rope scaling to GGUF yet; only "
            "models without rope scaling"
        )
    return ARCHITECTURES[model_type]


def _pre_tokenizer(model_dir: Path) -> str:
    """llama.cpp's name for how the tokenizer splits text before BPE (tokenizer.ggml.pre)."""
    path = model_dir / "tokenizer.json"
    if not path.exists():  # vocab.json + merges.txt: GPT-2's own slow tokenizer
        return "gpt-2"
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise HuggingtweetsError(
            f"{model_dir}: only byte-level BPE tokenizers (GPT-2's, Llama 3's) are exported, "
            "not SentencePiece-style ones"
        )
    pre = data.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    if kinds[:1] == ["Split"] and _LLAMA3_SPLIT in json.dumps(parts[0].get("pattern", {})):
        return "llama-bpe"
    raise HuggingtweetsError(
        f"{model_dir}: its tokenizer splits text in a way llama.cpp is not known to (only "
        "GPT-2's, Llama 3's and SmolLM's byte-level BPE are exported)"
    )


def _vocabulary(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every token by id with its type, as convert_hf_to_gguf.py lists them: special
    tokens are CONTROL (so "<|endoftext|>" in a prompt is the token, not its letters)."""
    import gguf

    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # a config padded past the tokenizer's size
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(token)
            types.append(
                gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED
            )
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _add_tokenizer(writer, tokenizer, model_dir: Path, vocab_size: int) -> None:
    import gguf

    tokens, types = _vocabulary(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(_pre_tokenizer(model_dir))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:  # tokenizers saves merges as pairs; SpecialVocab reads both
        raise HuggingtweetsError(f"{model_dir}: its tokenizer has no BPE merges to export")
    # Whether a text starts with BOS, said outright: llama.cpp's default for byte-level
    # BPE is not transformers' (GPT-2 adds none, the Llama 3 tokenizers do).
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    adds_bos = tokenizer("a")["input_ids"][: -len(plain) or None] == [tokenizer.bos_token_id]
    special.add_special_token.setdefault("bos", adds_bos)
    special.add_special_token.setdefault("eos", False)
    special.add_to_gguf(writer, quiet=True)


def _add_hyperparameters(writer, arch: str, config, name: str) -> None:
    writer.add_name(name)
    if arch == "GPT2":
        writer.add_context_length(config.n_positions)
        writer.add_embedding_length(config.n_embd)
        writer.add_feed_forward_length(config.n_inner or 4 * config.n_embd)
        writer.add_block_count(config.n_layer)
        writer.add_head_count(config.n_head)
        writer.add_layer_norm_eps(config.layer_norm_epsilon)
        return
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads or heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or 10000.0))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    if head_dim * heads != config.hidden_size:  # llama.cpp assumes it unless told
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def _permute(weights, heads: int):
    """HF's Llama rotates the two halves of each head; llama.cpp rotates interleaved
    pairs: the rows of q and k are reordered as convert_hf_to_gguf.py does."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tensors(model, arch: str) -> Iterator[tuple[str, object]]:
    """(transformers' name, fp32 tensor in llama.cpp's layout) for each weight to write."""
    from transformers.pytorch_utils import Conv1D

    config = model.config
    # GPT-2's Conv1D stores (in, out); llama.cpp, like nn.Linear, wants (out, in).
    conv1d = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, Conv1D)}
    tied = getattr(config, "tie_word_embeddings", False)
    for name, tensor in model.state_dict().items():
        if name.endswith((".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")):
            continue  # buffers llama.cpp recomputes
        if tied and name == "lm_head.weight":
            continue  # llama.cpp uses the token embeddings when there is no output
        data = tensor.detach().float()
        if name in conv1d:
            data = data.T.contiguous()
        if arch == "LLAMA" and name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif arch == "LLAMA" and name.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads or config.num_attention_heads)
        yield name, data


def _add_tensors(writer, model, arch: str, quantize: str) -> int:
    import gguf
    import numpy as np

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch], model.config.num_hidden_layers)
    count = 0
    for name, data in _tensors(model, arch):
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise HuggingtweetsError(f"cannot export {name}: llama.cpp has no name for it")
        array = data.numpy()
        # Norms, biases and other vectors stay fp32 (as the converter keeps them).
        if array.ndim < 2:
            writer.add_tensor(new, array.astype(np.float32))
        elif quantize == "q8_0" and array.shape[-1] % 32 == 0:
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(new, gguf.quants.quantize(array, q8), raw_dtype=q8)
        else:
            writer.add_tensor(new, array.astype(np.float16))
        count += 1
    return count


def sampling_settings(model) -> dict:
    """The model's own sampling settings (train writes them into its config), else the
    original's."""
    from huggingtweets.generate.generator import DEFAULT_SETTINGS

    params = getattr(model.config, "task_specific_params", None) or {}
    settings = params.get("text-generation") if isinstance(params, dict) else None
    return {**DEFAULT_SETTINGS, **(settings if isinstance(settings, dict) else {})}


def modelfile_text(gguf_name: str, settings: dict) -> str:
    """An Ollama Modelfile: the GGUF beside it, each post started after the separator
    (the prefix), sampled as the original samples, cut at the first line break."""
    prefix = settings.get("prefix") or ""
    # Ollama templates are Go templates: the prefix is literal text before the prompt.
    template = prefix.replace("{{", '{{"{{"}}') + "{{ .Prompt }}"
    lines = [
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
        f"PARAMETER temperature {settings['temperature']}",
        f"PARAMETER top_p {settings['top_p']}",
        f"PARAMETER top_k {TOP_K}",
        f"PARAMETER num_predict {settings['max_length']}",
        'PARAMETER stop "\\n"',
    ]
    if prefix:
        lines.append(f"PARAMETER stop {json.dumps(prefix)}")
    return "\n".join(lines) + "\n"


def _add_sampling(writer, settings: dict) -> None:
    writer.add_sampling_top_k(TOP_K)
    writer.add_sampling_top_p(float(settings["top_p"]))
    writer.add_sampling_temp(float(settings["temperature"]))


def _load(model_dir: Path):
    import torch

    from huggingtweets.model.loading import load_causal_lm, load_tokenizer

    model = load_causal_lm(model_dir, strict=True, dtype=torch.float32)
    return model, load_tokenizer(model_dir)


def _write(path: Path, model, tokenizer, model_dir: Path, options: ExportOptions) -> int:
    import gguf

    arch = check_architecture(model.config)
    settings = sampling_settings(model)
    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH[arch]])
    _add_hyperparameters(writer, arch, model.config, model_dir.parent.name or model_dir.name)
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    writer.add_file_type(file_type[options.quantize])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_sampling(writer, settings)
    _add_tokenizer(writer, tokenizer, model_dir, model.config.vocab_size)
    count = _add_tensors(writer, model, arch, options.quantize)
    with atomic_path(path) as tmp:
        writer.write_header_to_file(path=tmp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return count


def export_gguf(
    source: Path | str | RunDir,
    options: ExportOptions | None = None,
    out: Path | str | None = None,
) -> ExportResult:
    """Write the model of ``source`` (a run, or a model folder) as a GGUF file: ``out``,
    else RUN/model/model-<quantize>.gguf; with ``options.ollama`` a Modelfile beside it."""
    options = options or ExportOptions()
    model_dir, run = _model_dir(source)
    if out is None:  # the run's own place for it (pushed, and named on the card)
        out = (run or RunDir(model_dir.parent)).gguf_path(options.quantize)
    out = Path(out)
    if out.is_dir():
        raise HuggingtweetsError(f"--out {out} is a folder: give the GGUF file's name")
    check_writable_dir(out.parent)
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise HuggingtweetsError(
            "GGUF export needs the gguf package: pip install 'huggingtweets[gguf]'"
        ) from None
    model, tokenizer = _load(model_dir)
    check_architecture(model.config)  # before anything is converted
    logging.getLogger("gguf").setLevel(logging.WARNING)
    try:
        count = _write(out, model, tokenizer, model_dir, options)
        modelfile = None
        if options.ollama:
            modelfile = out.parent / MODELFILE
            atomic_write(modelfile, modelfile_text(out.name, sampling_settings(model)))
        if out.resolve().parent == model_dir.resolve():  # the card says how to run it
            from huggingtweets.card.model_card import update_run_locally

            update_run_locally(model_dir)
    except OSError as exc:
        raise HuggingtweetsError(
            f"cannot write {out}: {exc.strerror or exc}; choose another --out"
        ) from None
    return ExportResult(out, modelfile, count, out.stat().st_size)
