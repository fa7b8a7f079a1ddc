"""A Gradio Space for a pushed bot: ``huggingtweets push RUN_DIR --space [OWNER/NAME]``.

The Space (``repo_type="space"``, ``space_sdk="gradio"``) holds three files and nothing
of the run: ``app.py``, ``requirements.txt`` and ``README.md`` with the Space's front
matter (title, emoji, ``sdk: gradio``, ``sdk_version``, ``app_file: app.py``, ``models:``
the pushed model). It offers the original's step 3: a prompt ("My dream is"), ten
generations, each cut at its first line, sampled with the model's own
``task_specific_params["text-generation"]`` (its ``<|endoftext|>`` prefix, top-p,
temperature, lengths), as ``huggingtweets generate`` samples them.

huggingtweets is not on PyPI, so the Space cannot install it: ``app.py`` loads the model
from the Hub with transformers, and checks samples with the package's own memorization
guard, whose source files (``model/memorization.py`` and the huggingtweets modules it
imports) are copied into the Space under ``huggingtweets/`` at push time, so the Space's
check and ``generate``'s cannot drift apart. A guard of another format version turns the
check off, and the page says so. No token is written anywhere: a Space reads a private
model with the ``HF_TOKEN`` secret its owner sets in the Space's settings.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.runs import RunDir
from huggingtweets.core.secrets import redact
from huggingtweets.generate.generator import DEFAULT_PROMPT, DEFAULT_SETTINGS
from huggingtweets.publish.hub import (
    DEFAULT_REVISION,
    Pusher,
    PushOptions,
    PushResult,
    prepare_push,
    run_handles,
)
from huggingtweets.publish.hub_client import Undo, hub_token, repo_info, shown_endpoint

SPACE_SDK = "gradio"
SPACE_EMOJI = "🐦"
SPACE_SAMPLES = 10  # the original's page showed ten
TITLE_CHARS = 30  # the Hub's Space settings show a short title
# What the Space installs beside Gradio (its sdk_version): the model's libraries, no
# older than the ones that trained it.
REQUIREMENTS = ("transformers", "torch", "safetensors", "numpy")
GRADIO_FALLBACK = "5.0.0"  # sdk_version when gradio is not installed here
GUARD_MODULE = "huggingtweets.model.memorization"  # shipped with the Space, with its imports
# ... and the decoding that never shows a U+FFFD the model invented (generate/text.py)
VENDORED_ROOTS = (GUARD_MODULE, "huggingtweets.generate.text")
PACKAGE = "huggingtweets"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The vendored packages' __init__ files: not the package's own, which imports every stage.
VENDORED_INIT = b'"""The part of huggingtweets this Space runs: its guard and decoding."""\n'


@dataclass(frozen=True)
class SpaceResult:
    space_id: str
    url: str
    commit: str
    files: tuple[str, ...]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def module_path(module: str) -> Path | None:
    """The source file of a huggingtweets module, or None when ``module`` is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_modules(path: Path) -> set[str]:
    """Every module the source file imports (absolute imports: the package uses no other);
    ``from package import module`` counts the module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(
                f"{node.module}.{a.name}"
                for a in node.names
                if module_path(f"{node.module}.{a.name}")
            )
    return found


def vendored_modules(roots: tuple[str, ...] = VENDORED_ROOTS) -> dict[str, Path]:
    """``roots`` and every huggingtweets module they import, directly or not: name -> file."""
    modules: dict[str, Path] = {}
    waiting = list(roots)
    while waiting:
        name = waiting.pop()
        path = module_path(name)
        if path is None or name in modules:
            continue
        modules[name] = path
        waiting.extend(_imported_modules(path))
    return modules


def vendored_files(roots: tuple[str, ...] = VENDORED_ROOTS) -> dict[str, bytes]:
    """The Space's copy of the guard: each module's file under huggingtweets/, byte for
    byte, and an ``__init__.py`` for each package on the way."""
    files = {}
    for path in vendored_modules(roots).values():
        relative = path.relative_to(PACKAGE_DIR.parent)
        files[relative.as_posix()] = path.read_bytes()
        for package in relative.parents[:-1]:
            files.setdefault(f"{package.as_posix()}/__init__.py", VENDORED_INIT)
    return dict(sorted(files.items()))


def _vendored_requirements(roots: tuple[str, ...] = VENDORED_ROOTS) -> list[str]:
    """The distributions the vendored modules import (numpy, orjson, ...)."""
    distributions = importlib.metadata.packages_distributions()
    needed = set()
    for path in vendored_modules(roots).values():
        for module in _imported_modules(path):
            top = module.split(".")[0]
            if top != PACKAGE and top not in sys.stdlib_module_names:
                needed.add(distributions.get(top, [top])[0])
    return sorted(needed, key=str.lower)


def requirements() -> str:
    lines = []
    packages = [*REQUIREMENTS]
    packages += [p for p in _vendored_requirements() if p.lower() not in REQUIREMENTS]
    for package in packages:
        version = _version(package)
        if version and package == "transformers":
            major, minor = version.split(".")[:2]
            lines.append(f"{package}>={major}.{minor}")
        else:
            lines.append(package)
    return "\n".join(lines) + "\n"


def space_title(handles: list[str]) -> str:
    title = "Bot of " + " & ".join(f"@{h}" for h in handles) if handles else "huggingtweets bot"
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"


def readme(model_id: str, handles: list[str]) -> str:
    import yaml

    meta = {
        "title": space_title(handles),
        "emoji": SPACE_EMOJI,
        "colorFrom": "blue",
        "colorTo": "indigo",
        "sdk": SPACE_SDK,
        "sdk_version": _version("gradio") or GRADIO_FALLBACK,
        "app_file": "app.py",
        "models": [model_id],
        "pinned": False,
        "short_description": "An AI bot trained with huggingtweets",
    }
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
    who = ", ".join(f"@{h}" for h in handles) or "an account"
    return (
        f"---\n{front}---\n\n"
        f"# {space_title(handles)}\n\n"
        f"An AI bot that writes like {who}: the model "
        f"[{model_id}](https://huggingface.co/{model_id}), trained with huggingtweets. "
        "Type the start of a post and get ten the bot might write. What it writes is "
        "generated, not what the account said; samples that copy a training post are "
        "flagged when the model has a memorization guard.\n"
    )


def app_source(model_id: str, revision: str = DEFAULT_REVISION) -> str:
    """app.py: the template below with this model's constants written in."""
    constants = {
        "MODEL_ID": model_id,
        "REVISION": revision,
        "DEFAULT_PROMPT": DEFAULT_PROMPT,
        "SAMPLES": SPACE_SAMPLES,
        "DEFAULT_SETTINGS": dict(DEFAULT_SETTINGS),
    }
    # ascii(): any character beyond ASCII written as an escape, so the file is plain ASCII.
    block = "\n".join(f"{name} = {value!a}" for name, value in constants.items())
    return APP_TEMPLATE.replace("# @@CONSTANTS@@", block)


def space_files(
    model_id: str, handles: list[str], revision: str = DEFAULT_REVISION
) -> dict[str, bytes]:
    return {
        "app.py": app_source(model_id, revision).encode(),
        "requirements.txt": requirements().encode(),
        "README.md": readme(model_id, handles).encode(),
        **vendored_files(),
    }


def check_space_id(space_id: str) -> str:
    """OWNER/NAME, or NAME (in your namespace), as the Hub spells a repository."""
    from huggingtweets.card.model_card import check_repo_id

    try:
        return check_repo_id(space_id if "/" in space_id else f"owner/{space_id}")
    except HuggingtweetsError:
        raise HuggingtweetsError(
            f"--space {space_id!r} is not a valid Space id: use OWNER/NAME (or NAME, in your "
            "namespace) with letters, digits, '-', '_' and '.'"
        ) from None


def choose_space(pusher: Pusher, model_id: str, space_id: str | None = None) -> str:
    """The Space to publish to: ``space_id`` (NAME alone: in your namespace; default: the
    model's OWNER/NAME, a Space beside it), refused now when not yours to write."""
    wanted = space_id or model_id
    if "/" not in wanted:
        wanted = f"{pusher.user}/{wanted}"
    space_id = check_space_id(wanted)
    owner = space_id.split("/", 1)[0]
    if pusher.namespaces is not None and owner not in pusher.namespaces:
        raise HuggingtweetsError(
            f"{pusher.user} cannot write to the Space {space_id}: {owner} is neither your "
            f"namespace nor one of your organizations"
        )
    return space_id


def push_space(
    run_dir: Path | str | RunDir,
    model_id: str,
    space_id: str | None = None,
    options: PushOptions | None = None,
    reporter: Reporter | None = None,
    pusher: Pusher | None = None,
) -> SpaceResult:
    """Publish the Gradio Space of the model ``model_id`` (pushed from ``run_dir``) in
    one commit to ``space_id`` (see :func:`choose_space`). Private when the model was
    pushed private. A Space this call created is deleted again if its commit fails."""
    from huggingface_hub import CommitOperationAdd, HfApi

    options = options or PushOptions()
    reporter = reporter_or_silent(reporter)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    pusher = pusher or Pusher.login(options, reporter)
    space_id = choose_space(pusher, model_id, space_id)
    files = space_files(model_id, run_handles(run), options.revision)
    reporter.start("space", f"publishing the Space {space_id}", repo_id=space_id)
    with pusher.talking_to_hub(space_id):
        api = HfApi()
        token = hub_token()
        undo = Undo(reporter)
        try:
            if repo_info(api, space_id, token, "space") is None:
                api.create_repo(
                    space_id,
                    repo_type="space",
                    space_sdk=SPACE_SDK,
                    private=True if options.hub_private_repo else None,
                    token=token,
                )
                undo.add(
                    f"the empty Space {space_id}",
                    lambda: api.delete_repo(space_id, repo_type="space", token=token),
                )
            info = api.create_commit(
                space_id,
                [CommitOperationAdd(path_in_repo=n, path_or_fileobj=b) for n, b in files.items()],
                commit_message=redact(f"Space of {model_id}"),
                repo_type="space",
                token=token,
            )
        except BaseException:
            undo.run()
            raise
    url = f"{shown_endpoint()}/spaces/{space_id}"
    reporter.end("space", f"published {url}", url=url, commit=info.oid)
    return SpaceResult(space_id, url, info.oid, tuple(files))


def push_with_space(
    run_dir: Path | str | RunDir,
    options: PushOptions | None = None,
    space_id: str | None = None,
    reporter: Reporter | None = None,
) -> tuple[PushResult, SpaceResult]:
    """``push --space``: the model's repository and the Space both chosen and checked
    before anything is created, then the model pushed, then its Space."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    pusher = prepare_push(run, options, reporter)
    space_id = choose_space(pusher, pusher.repo_id, space_id)
    result = pusher.push(run)
    return result, push_space(run, result.repo_id, space_id, options, reporter, pusher)


APP_TEMPLATE = r'''"""A huggingtweets bot as a Gradio Space: a prompt in, ten posts out.

Written by `huggingtweets push --space`; it needs transformers, torch and Gradio, and the
huggingtweets modules beside it (its memorization guard, copied at push time). Samples are
drawn as `huggingtweets generate` draws them: the model's own
task_specific_params["text-generation"] (its <|endoftext|> prefix, top-p, temperature,
lengths counted without the prefix), each cut at its first line. When the model has a
memorization guard (memorization_guard.safetensors), each sample is checked against the
training posts' hashes and flagged when it copies one.
"""

from pathlib import Path

import gradio as gr
import torch
from huggingface_hub import hf_hub_download
from transformers import AutoModelForCausalLM, AutoTokenizer

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.generate.text import PostDecoder
from huggingtweets.model.memorization import GUARD_FILE, MemorizationGuard

# @@CONSTANTS@@

MAX_PROMPT_CHARS = 1000


def load_guard():
    """(the guard or None, a line saying whether samples are checked)."""
    try:
        path = hf_hub_download(MODEL_ID, GUARD_FILE, revision=REVISION)
    except Exception:  # none published (or unreachable): samples go unchecked
        return None, "This model has no memorization guard: samples are not checked."
    try:
        guard = MemorizationGuard.load(Path(path).parent)
    except HuggingtweetsError as exc:
        return None, f"The memorization check is off ({exc})."
    return guard, "Samples that copy a training post are flagged."


tokenizer = AutoTokenizer.from_pretrained(MODEL_ID, revision=REVISION)
model = AutoModelForCausalLM.from_pretrained(MODEL_ID, revision=REVISION).eval()
params = getattr(model.config, "task_specific_params", None) or {}
params = params.get("text-generation") or {}
settings = {key: params.get(key, value) for key, value in DEFAULT_SETTINGS.items()}
guard, guard_note = load_guard()


def first_line(text):
    return text.split("\n", 1)[0].rstrip()


def generate(prompt):
    prompt = (prompt or "").strip() or DEFAULT_PROMPT
    if len(prompt) > MAX_PROMPT_CHARS:
        raise gr.Error(f"Give the start of a post (at most {MAX_PROMPT_CHARS} characters).")
    if "\n" in prompt:
        texts = [first_line(prompt)] * SAMPLES
    else:
        prefix = settings["prefix"] or ""
        prefix_len = len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
        ids = tokenizer(prefix + prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        max_length = settings["max_length"] + prefix_len
        context = getattr(model.config, "n_positions", None) or getattr(
            model.config, "max_position_embeddings", None
        )
        if context:
            max_length = min(max_length, context)
        if ids.shape[1] >= max_length:
            raise gr.Error("The prompt is too long for this model: give a shorter one.")
        eos = model.generation_config.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        pad = pad[0] if isinstance(pad, list) else pad
        with torch.inference_mode():
            rows = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                top_p=settings["top_p"],
                temperature=settings["temperature"],
                max_length=max_length,
                min_length=min(settings["min_length"] + prefix_len, max_length),
                num_return_sequences=SAMPLES,
                pad_token_id=pad,
            )
        decoder = PostDecoder(tokenizer)  # no U+FFFD the model invented
        decoded_prompt = decoder.decode(ids[0])
        texts = [
            decoder.post(prompt, ids[0], decoded_prompt, row, first_line=True) for row in rows
        ]
    rows = []
    for text in texts:
        copy = guard.check(text) if guard is not None else None
        checked = "ok" if guard is not None else "not checked"
        rows.append([text, f"copy: {copy.describe()}" if copy else checked])
    return rows


with gr.Blocks(title=f"huggingtweets: {MODEL_ID}") as demo:
    gr.Markdown(f"# {MODEL_ID}\nAn AI bot trained with huggingtweets. {guard_note}")
    prompt_box = gr.Textbox(value=DEFAULT_PROMPT, label="The start of a post", elem_id="prompt")
    button = gr.Button("Generate", variant="primary", elem_id="generate")
    table = gr.Dataframe(
        headers=["post", "memorization check"],
        datatype=["str", "str"],
        interactive=False,
        wrap=True,
        elem_id="generations",
    )
    button.click(generate, inputs=prompt_box, outputs=table, api_name="generate")
    prompt_box.submit(generate, inputs=prompt_box, outputs=table, api_name=False)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch()
'''
