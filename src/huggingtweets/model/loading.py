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
import difflib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.model.memorization import GUARD_FILE

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PROBE_TIMEOUT_S = 10.0
MODELING_LOGGER = "transformers.modeling_utils"

OFFLINE_CHOICES = (
    "offline, use a local model folder (to train: --base-model tiny), or HF_HUB_OFFLINE=1 "
    "with a model already in the Hugging Face cache"
)


class _NotOnHub(HuggingtweetsError):
    """A Hub id that could not be found: unknown, or the Hub unreachable and not cached."""

    def __init__(self, message: str, as_hub_id: str) -> None:
        super().__init__(message)
        self.as_hub_id = as_hub_id  # the same said briefly, after "no such folder"


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
    config = folder / "config.json"
    if not config.exists():
        raise HuggingtweetsError(
            f"{folder} has no config.json: it is not a model folder saved with save_pretrained"
        )
    try:
        settings = json.loads(config.read_bytes())
    except (OSError, ValueError) as exc:
        raise HuggingtweetsError(f"cannot read {config}: {first_line(exc)}") from None
    if not isinstance(settings, dict):
        raise HuggingtweetsError(
            f"{config} is not a model configuration (a JSON object): save the model again"
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
    """One request to the Hub's model API, with a time-out and no retries: the repo's file
    names. Made by huggingface_hub, so its endpoint (HF_ENDPOINT), proxies, certificates,
    user agent and token apply as to every other Hub call.

    Raises HuggingtweetsError for an unknown or gated id, ConnectionError when the Hub
    cannot be reached.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HTTPError

    try:
        info = HfApi().model_info(repo_id, timeout=PROBE_TIMEOUT_S)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        # GatedRepoError first: it is also a RepositoryNotFoundError.
        if isinstance(exc, GatedRepoError) or status == 403:
            raise HuggingtweetsError(
                f"{repo_id!r} is gated: accept its terms on huggingface.co and log in "
                "with `hf auth login`"
            ) from None
        if status in (401, 404):
            raise _NotOnHub(
                f"no model {repo_id!r} on the Hugging Face Hub (a private model needs "
                "`hf auth login`; a local folder needs its path, e.g. ./my-model)",
                "no model of that id on the Hugging Face Hub either",
            ) from None
        raise ConnectionError(f"HTTP {status}") from exc
    except (HTTPError, OSError) as exc:  # refused, timed out, reset: the Hub is not reachable
        raise ConnectionError(first_line(exc)) from exc
    return tuple(sibling.rfilename for sibling in info.siblings or ())


def _no_such_folder(name: str) -> str:
    """What is missing of the path ``name``, with the nearest existing name when one is
    close: "no such folder: runs/me/modle (runs/me has no 'modle'; did you mean 'model'?)"."""
    missing = Path(name).expanduser()
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    parent = missing.parent
    if str(parent) in ("", "."):
        return f"no such folder: {name}"
    hint = f"{parent} has no {missing.name!r}"
    with contextlib.suppress(OSError):
        names = [p.name for p in parent.iterdir() if p.is_dir()]
        close = difflib.get_close_matches(missing.name, names, n=1)
        if close:
            hint += f"; did you mean {close[0]!r}?"
    return f"no such folder: {name} ({hint})"


def _partly_exists(name: str) -> bool:
    """``owner/name`` whose ``owner`` is a local folder: a mistyped path as likely as a
    Hub id (``runs/typo``)."""
    return "/" in name and Path(name).expanduser().parent.is_dir()


def resolve_model(name_or_path: str | Path | ResolvedModel) -> ResolvedModel:
    """Decide where a model comes from (folder, cache or Hub) without loading it."""
    if isinstance(name_or_path, ResolvedModel):
        return name_or_path
    name = str(name_or_path)
    folder = Path(name).expanduser()
    if isinstance(name_or_path, Path) or folder.exists() or _looks_like_path(name):
        if not folder.exists():
            raise HuggingtweetsError(_no_such_folder(name))
        return _resolve_folder(name, folder)
    try:
        return _resolve_hub(name)
    except _NotOnHub as exc:
        if not _partly_exists(name):
            raise
        # "runs/typo" beside a runs/ folder: a mistyped path, most likely.
        raise HuggingtweetsError(f"{_no_such_folder(name)}; {exc.as_hub_id}") from None


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is spelt as a Hub repo id (``owner/name``), by huggingface_hub's rule."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _resolve_hub(name: str) -> ResolvedModel:
    """A Hub id: from the cache, or after one probe of the Hub."""
    if not is_hub_id(name):
        raise HuggingtweetsError(
            f"{name!r} is neither a model folder nor a valid Hugging Face model id"
        )

    snapshot = _cached_snapshot(name)
    if _hub_offline():
        if snapshot is None:
            raise _NotOnHub(
                f"HF_HUB_OFFLINE is set and {name!r} is not in the Hugging Face cache; "
                "use a local model folder (to train: --base-model tiny), or download it once "
                "online",
                "as a Hub id it is not in the Hugging Face cache (HF_HUB_OFFLINE is set)",
            )
        return _from_cache(name, snapshot)
    try:
        files = _probe_hub(name)
    except ConnectionError as exc:
        if snapshot is not None:  # unreachable, but cached: use the cache, quickly
            return _from_cache(name, snapshot)
        from huggingface_hub import constants

        raise _NotOnHub(
            f"cannot reach the Hugging Face Hub ({constants.ENDPOINT}: {exc}) to get "
            f"{name!r}; {OFFLINE_CHOICES}",
            "as a Hub id it could not be looked up (the Hugging Face Hub cannot be reached)",
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
    # Damaged tokenizer files fail deep inside transformers or the Rust tokenizers (which
    # raises a bare Exception): whatever it raises while reading them, say which.
    except Exception as exc:
        raise HuggingtweetsError(
            f"cannot load the tokenizer of {model.name} (tokenizer.json, tokenizer_config.json "
            f"or config.json damaged?): {_described(exc)}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _described(exc: BaseException) -> str:
    """The exception's type and first line: a bare ``KeyError: 'added_tokens'`` says more
    with its type than without."""
    if isinstance(exc, OSError | ValueError) and str(exc).strip():
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"


class _HeldNotice(logging.Filter):
    """Holds back one message of a library's logger, to be shown later, or never."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.fragment in record.getMessage():
            self.held.append(record)
            return False
        return True


@contextlib.contextmanager
def _no_loading_bar() -> Iterator[None]:
    """Without transformers' "Loading weights" bar, which flashes a line before the
    CLI's spinner, or before a one-line error; a download keeps its bar."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    downloads_shown = not are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # turns huggingface_hub's bars off too
    if downloads_shown:
        enable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # and huggingface_hub's back on
        if not downloads_shown:
            disable_progress_bars()


def _mismatch(info: dict, strict: bool) -> str | None:
    """What ``from_pretrained``'s loading info says does not fit, in a few words."""
    problems = []
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        key, in_file, in_config = mismatched[0]
        problems.append(
            f"{len(mismatched)} weights of another shape, e.g. {key}: {list(in_file)} in the "
            f"weights, {list(in_config)} by config.json"
        )
    if strict:
        for kind, what in (("missing_keys", "missing"), ("unexpected_keys", "unused")):
            keys = sorted(info.get(kind) or ())
            if keys:
                problems.append(f"{len(keys)} weights {what}, e.g. {keys[0]}")
    return "; ".join(problems) or None


# A config may imply somewhat more parameters than its files hold (weights stored packed
# in 4 or 8 bits); far more is a config.json that does not describe these weights.
IMPLIED_PARAMETERS_RATIO = 16
MAX_SAFETENSORS_HEADER = 100 << 20  # safetensors' own limit


def _stored_parameters(model: ResolvedModel) -> int | None:
    """The values the local safetensors files hold, from their headers alone (None: no
    local weights, or a header that transformers will name the damage of itself)."""
    folder = Path(model.location)
    files = [folder / f for f in model.files if f.endswith(".safetensors") and f != GUARD_FILE]
    if not files or not folder.is_dir():
        return None
    total = 0
    try:
        for path in files:
            with open(path, "rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if not 2 <= size <= MAX_SAFETENSORS_HEADER:
                    return None
                header = json.loads(handle.read(size))
            for name, tensor in header.items():
                if name != "__metadata__":
                    total += math.prod(int(n) for n in tensor["shape"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return total


def _implied_parameters(config) -> int | None:
    """The parameters ``config`` describes, counted on models of one and two layers built
    on the meta device (nothing allocated) and extrapolated to its layers: a config that
    claims a billion layers is never built (None: cannot be told)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        return None
    counts = []
    try:
        for n in (1, 2):
            small = copy.deepcopy(config)
            small.num_hidden_layers = n
            if isinstance(getattr(small, "layer_types", None), list):
                small.layer_types = small.layer_types[:n]
            with torch.device("meta"):
                built = AutoModelForCausalLM.from_config(small)
            counts.append(sum(p.numel() for p in built.parameters()))
    except Exception:  # transformers says what is wrong when it loads
        return None
    return counts[0] + (layers - 1) * max(0, counts[1] - counts[0])


def _check_size(model: ResolvedModel, config) -> None:
    """Refuse, before anything is allocated, a config.json that implies far more
    parameters than the weight files hold (a billion layers would take the loader for
    ever, and memory with it)."""
    stored = _stored_parameters(model)
    if stored is None:
        return
    if config is None:
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(model.location, local_files_only=True)
        except Exception:  # named by from_pretrained below
            return
    implied = _implied_parameters(config)
    if implied is not None and implied > IMPLIED_PARAMETERS_RATIO * stored + 1_000_000:
        raise HuggingtweetsError(
            f"cannot load {model.name}: config.json describes a model of {implied:,} "
            f"parameters, its weights hold {stored:,}; download or train it again"
        )


def load_causal_lm(
    name_or_path: str | Path | ResolvedModel,
    *,
    trust_pickle: bool = False,
    strict: bool = False,
    **from_pretrained_kwargs,
):
    """A causal LM (``AutoModelForCausalLM``) from a Hub id or a local folder.

    Weights of another shape than config.json says are refused (transformers would
    re-initialise them at random). ``strict``: also refuse weights that config.json's
    model lacks or does not use (a model to generate with, rather than a base to train).
    """
    model = resolve_model(name_or_path)
    check_weights(model, trust_pickle)
    import torch
    from transformers import AutoModelForCausalLM

    _check_size(model, from_pretrained_kwargs.get("config"))

    if not trust_pickle:
        # Belt and braces: never let transformers fall back to a pickle file.
        from_pretrained_kwargs.setdefault("use_safetensors", True)
    from_pretrained_kwargs.setdefault("local_files_only", model.local_files_only)
    # Mismatched sizes are let through to be named below, rather than raised as a
    # RuntimeError after a report of a line per weight.
    ignore_mismatched = from_pretrained_kwargs.pop("ignore_mismatched_sizes", False)
    report = _HeldNotice("LOAD REPORT")
    logger = logging.getLogger(MODELING_LOGGER)
    logger.addFilter(report)
    try:
        with _no_loading_bar():
            lm, info = AutoModelForCausalLM.from_pretrained(
                model.location,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **from_pretrained_kwargs,
            )
    except torch.OutOfMemoryError:
        raise
    except ValueError as exc:  # e.g. an architecture that is not a causal LM
        raise HuggingtweetsError(
            f"{model.name} cannot be loaded as a causal LM: {first_line(exc)}"
        ) from None
    except OSError as exc:
        raise HuggingtweetsError(f"cannot load {model.name}: {first_line(exc)}") from None
    except Exception as exc:
        # A truncated weights file (SafetensorError), a config.json with impossible
        # values (a negative size) ...: the files are damaged, not the user's command.
        raise HuggingtweetsError(
            f"cannot load {model.name}: its weights or config.json are damaged or do not "
            f"match ({_described(exc)}); download or train it again"
        ) from None
    finally:
        logger.removeFilter(report)
    problem = _mismatch(
        {**info, "mismatched_keys": () if ignore_mismatched else info.get("mismatched_keys")},
        strict,
    )
    if problem:
        raise HuggingtweetsError(
            f"{model.name}: config.json does not match the weights ({problem}); download or "
            "train it again"
        )
    for record in report.held:  # nothing refused: the library's report is shown as it was
        logger.handle(record)
    if lm.generation_config is not None and lm.generation_config.pad_token_id is None:
        lm.generation_config.pad_token_id = lm.config.eos_token_id
    return lm


def make_readable(folder: Path | str) -> None:
    """Give the files and folders under ``folder`` the permissions the umask gives a new
    file (0644 / 0755 under umask 022).

    ``save_pretrained`` writes ``model.safetensors`` through safetensors, which (0.6 and
    later) writes to a temporary file and renames it, and the temporary file is created
    0600 whatever the umask: the weights alone would be unreadable to others (a web
    server, a colleague) while every other file of the model is readable. Call it on a
    folder after saving a model into it.
    """
    from huggingtweets.core.runs import current_umask

    umask = current_umask()
    root = Path(folder)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o777 & ~umask)
        elif path.is_file():
            executable = path.stat().st_mode & 0o111
            path.chmod((0o777 if executable else 0o666) & ~umask)
