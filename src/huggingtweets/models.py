"""Loading a causal language model and its tokenizer: a Hub id or a local folder.

Used by ``train`` (the base model) and ``generate`` (the trained model). Every way this
can fail for a user's reason becomes one :class:`HuggingtweetsError` line:

- an unknown Hub id or a missing folder;
- the Hub cannot be reached. Left alone, huggingface_hub retries a dead connection for
  ~25 s before giving up, so we decide first: a model in the local cache is loaded from
  there, otherwise one short probe tells reachable from not;
- weights only in pickle form (``pytorch_model.bin``, ``*.pt`` ...): unpickling runs
  arbitrary code, so it is refused unless ``trust_pickle=True`` (``--trust-pickle``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import HuggingtweetsError
from .memorization import GUARD_FILE

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PROBE_TIMEOUT_S = 10.0

OFFLINE_CHOICES = (
    "offline, use a local model folder (to train: --base-model tiny), or HF_HUB_OFFLINE=1 "
    "with a model already in the Hugging Face cache"
)


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model comes from, decided once before anything is loaded."""

    name: str  # as the user gave it
    location: str  # what to hand to from_pretrained: a Hub id or a folder
    kind: str  # "hub" or "local"
    local_files_only: bool  # True: load from the cache/folder without touching the network
    files: tuple[str, ...]  # the repo's or folder's file names

    @property
    def has_safetensors(self) -> bool:
        # Our memorization guard is a .safetensors file too, but it holds no weights.
        return any(f.endswith(".safetensors") and Path(f).name != GUARD_FILE for f in self.files)

    @property
    def pickle_files(self) -> list[str]:
        return [f for f in self.files if f.endswith(PICKLE_SUFFIXES)]


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with a separator is a path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def first_line(exc: BaseException) -> str:
    """A library's message cut to its first line: our errors are one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


@contextlib.contextmanager
def hidden_library_notice(logger_name: str, fragment: str) -> Iterator[None]:
    """Hide one message of a library's logger, where it does not apply to how we call the
    library (each caller says why); every other message still shows."""
    logger = logging.getLogger(logger_name)
    notice = _DropMessage(fragment)
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def context_length(config) -> int | None:
    """How many positions the model attends over, under the names architectures use."""
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _folder_files(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


def _resolve_folder(name: str, folder: Path) -> ResolvedModel:
    if not folder.is_dir():
        raise HuggingtweetsError(f"{name} is not a folder: give a model folder or a Hub model id")
    if not (folder / "config.json").exists():
        raise HuggingtweetsError(
            f"{folder} has no config.json: it is not a model folder saved with save_pretrained"
        )
    return ResolvedModel(name, str(folder), "local", True, _folder_files(folder))


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None


def _from_cache(name: str, snapshot: Path) -> ResolvedModel:
    # The snapshot folder itself, not the id: given an id, from_pretrained still asks
    # the Hub for an adapter_config.json (with retries) even with local_files_only.
    return ResolvedModel(name, str(snapshot), "hub", True, _folder_files(snapshot))


def _probe_hub(repo_id: str) -> tuple[str, ...]:
    """One request to the Hub's model API, no retries: the repo's file names.

    Raises HuggingtweetsError for an unknown or gated id, ConnectionError when the Hub
    cannot be reached.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers

    url = f"{constants.ENDPOINT}/api/models/{urllib.parse.quote(repo_id, safe='/')}"
    request = urllib.request.Request(url, headers=build_hf_headers())
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            info = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 404):
            raise HuggingtweetsError(
                f"no model {repo_id!r} on the Hugging Face Hub (a private model needs "
                "`hf auth login`; a local folder needs its path, e.g. ./my-model)"
            ) from None
        if exc.code == 403:
            raise HuggingtweetsError(
                f"{repo_id!r} is gated: accept its terms on huggingface.co and log in "
                "with `hf auth login`"
            ) from None
        raise ConnectionError(f"HTTP {exc.code}") from exc
    except OSError as exc:  # URLError, timeouts, resets: the Hub is not reachable
        raise ConnectionError(str(getattr(exc, "reason", exc))) from exc
    return tuple(s["rfilename"] for s in info.get("siblings", ()))


def resolve_model(name_or_path: str | Path | ResolvedModel) -> ResolvedModel:
    """Decide where a model comes from (folder, cache or Hub) without loading it."""
    if isinstance(name_or_path, ResolvedModel):
        return name_or_path
    name = str(name_or_path)
    folder = Path(name).expanduser()
    if isinstance(name_or_path, Path) or folder.exists() or _looks_like_path(name):
        if not folder.exists():
            raise HuggingtweetsError(f"model folder not found: {name}")
        return _resolve_folder(name, folder)

    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise HuggingtweetsError(
            f"{name!r} is neither a model folder nor a valid Hugging Face model id"
        ) from None

    snapshot = _cached_snapshot(name)
    if _hub_offline():
        if snapshot is None:
            raise HuggingtweetsError(
                f"HF_HUB_OFFLINE is set and {name!r} is not in the Hugging Face cache; "
                "use a local model folder (to train: --base-model tiny), or download it once "
                "online"
            )
        return _from_cache(name, snapshot)
    try:
        files = _probe_hub(name)
    except ConnectionError as exc:
        if snapshot is not None:  # unreachable, but cached: use the cache, quickly
            return _from_cache(name, snapshot)
        from huggingface_hub import constants

        raise HuggingtweetsError(
            f"cannot reach the Hugging Face Hub ({constants.ENDPOINT}: {exc}) to get "
            f"{name!r}; {OFFLINE_CHOICES}"
        ) from None
    return ResolvedModel(name, name, "hub", False, files)


def check_weights(model: ResolvedModel, trust_pickle: bool) -> None:
    """Refuse weights only in pickle form unless trusted; fine when safetensors exist."""
    if model.has_safetensors:
        return
    pickles = model.pickle_files
    if not pickles:
        raise HuggingtweetsError(f"{model.name} has no model weights (*.safetensors)")
    if not trust_pickle:
        raise HuggingtweetsError(
            f"{model.name} has weights only in pickle form ({', '.join(pickles[:3])}), which "
            "can run arbitrary code when loaded; convert them to safetensors, or pass "
            "--trust-pickle if you trust their author"
        )


def load_tokenizer(name_or_path: str | Path | ResolvedModel):
    """The model's tokenizer, with a pad token (GPT-2 has none: its EOS is used)."""
    model = resolve_model(name_or_path)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model.location, local_files_only=model.local_files_only
        )
    except (OSError, ValueError) as exc:
        raise HuggingtweetsError(
            f"cannot load the tokenizer of {model.name}: {first_line(exc)}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name_or_path: str | Path | ResolvedModel,
    *,
    trust_pickle: bool = False,
    **from_pretrained_kwargs,
):
    """A causal LM (``AutoModelForCausalLM``) from a Hub id or a local folder."""
    model = resolve_model(name_or_path)
    check_weights(model, trust_pickle)
    from transformers import AutoModelForCausalLM

    if not trust_pickle:
        # Belt and braces: never let transformers fall back to a pickle file.
        from_pretrained_kwargs.setdefault("use_safetensors", True)
    from_pretrained_kwargs.setdefault("local_files_only", model.local_files_only)
    try:
        lm = AutoModelForCausalLM.from_pretrained(model.location, **from_pretrained_kwargs)
    except ValueError as exc:  # e.g. an architecture that is not a causal LM
        raise HuggingtweetsError(
            f"{model.name} cannot be loaded as a causal LM: {first_line(exc)}"
        ) from None
    except OSError as exc:
        raise HuggingtweetsError(f"cannot load {model.name}: {first_line(exc)}") from None
    if lm.generation_config is not None and lm.generation_config.pad_token_id is None:
        lm.generation_config.pad_token_id = lm.config.eos_token_id
    return lm
