"""Publish a trained bot on the Hugging Face Hub: ``huggingtweets push RUN_DIR``.

One commit (huggingface_hub's ``create_commit``) holds exactly the model's files: the
weights, config, tokenizer, generation config, the card and its pictures (preview,
avatars, loss curve, evaluation) and the memorization guard. Nothing else of the run
directory ever leaves the machine: not ``posts/``, not ``dataset/``, not a file someone
dropped into ``model/``. Everything is checked before anything is created; a commit is
atomic on the Hub, so a push that fails (no permission, lost connection, Ctrl-C) leaves
the repository at its previous commit, and a repository or branch it created is deleted
again, the card it rewrote put back. A re-push updates the same repository, and removes
model files an earlier push left that this model no longer has (an old shard or
tokenizer file would otherwise be loaded with the new ones).

The card names the repository it is published in (its snippet, thumbnail and avatar
links): when it names another, it is written again first. The token comes from
``HF_TOKEN`` or ``hf auth login`` (huggingface_hub's ``get_token``); it is never printed,
written, logged or put in an error (see secrets.py). Before anything is uploaded, one
short request (``whoami``) checks that the Hub answers and accepts the token, so a
missing or bad token, or an unreachable Hub, costs nothing (``train --push-to-hub``
checks it before training).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import OptionError, check_options, option
from huggingtweets.core.runs import (
    EVALUATION_PICTURE,
    GGUF_GLOB,
    MODELFILE,
    RunDir,
)
from huggingtweets.core.secrets import contains_secret, redact
from huggingtweets.publish.hub_client import (
    NOTHING_CHANGED,
    Undo,
    first_line_of,
    hub_token,
    is_transport_error,
    local_file_error,
    quiet_hub,
    repo_info,
    shown_endpoint,
    token_role,
    unreachable,
    whoami,
)

DEFAULT_REVISION = "main"
# What huggingface_hub logs when every file is already there (create_commit then makes none).

# The model's files, and only these, are published (top level of model/, no links).
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
    "README.md",
    "preview.png",
    "avatar-*.png",
    "loss_curve.png",
    EVALUATION_PICTURE,  # the card embeds it
    "memorization_guard.safetensors",
    GGUF_GLOB,  # export --gguf: for llama.cpp and Ollama
    MODELFILE,
)
# What ``write_card`` writes in model/: put back as it was when a push that rewrote it fails.
CARD_FILES = ("README.md", "preview.png", "avatar-*.png")
WEIGHTS = ("model.safetensors", "model-*-of-*.safetensors")
_BRANCH = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
_THUMBNAIL = re.compile(
    r"https://huggingface\.co/(?P<repo>[^/\s]+/[^/\s]+)/resolve/main/preview\.png"
)


def is_model_file(name: str) -> bool:
    """Whether a file of that name (in model/, or at a repository's top) is published."""
    return "/" not in name and any(fnmatch.fnmatchcase(name, p) for p in MODEL_FILES)


@dataclass
class PushOptions:
    """Where and how to publish (``push`` options; ``train --push-to-hub`` takes them
    too, named as transformers' ``TrainingArguments`` name them)."""

    push_to_hub: bool = option(
        False, help="After training, push the model and its card to the Hugging Face Hub."
    )
    hub_model_id: str | None = option(
        None,
        flag=("--hub-model-id", "--repo-id"),
        metavar="OWNER/NAME",
        help="The model's Hub repository (NAME alone: in your namespace); the card's "
        "snippet and links name it.",
        default_help="the one the card names if chosen with --repo-id, else "
        "YOUR_NAME/<handles joined by ->",
    )
    hub_private_repo: bool = option(
        False,
        flag=("--hub-private-repo", "--private"),
        help="Create the repository private (an existing public one is refused, not "
        "silently published to).",
    )
    hub_revision: str | None = option(
        None,
        flag=("--hub-revision", "--revision"),
        metavar="BRANCH",
        help="The branch to commit to (created when missing).",
        default_help=DEFAULT_REVISION,
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.hub_model_id is not None:
            from huggingtweets.card.model_card import SECRET_IN_ID, check_repo_id

            if contains_secret(self.hub_model_id):
                raise OptionError("hub_model_id", SECRET_IN_ID)
            try:
                check_repo_id(self.hub_model_id)
            except HuggingtweetsError:
                raise OptionError(
                    "hub_model_id",
                    f"{self.hub_model_id!r} is not a valid Hugging Face model id: use "
                    "OWNER/NAME (or NAME, in your namespace) with letters, digits, '-', '_' "
                    "and '.'",
                ) from None
        revision = self.hub_revision
        if revision is not None and (
            not _BRANCH.fullmatch(revision) or ".." in revision or revision.endswith(".lock")
        ):
            raise OptionError(
                "hub_revision", f"must be a branch name such as main or dev (got {revision!r})"
            )

    @property
    def revision(self) -> str:
        return self.hub_revision or DEFAULT_REVISION


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    revision: str
    url: str  # the repository's page (at the branch, when not main)
    commit_url: str
    commit: str  # the commit's id
    uploaded: tuple[str, ...]  # the files of the model, as committed
    deleted: tuple[str, ...]  # model files of an earlier push that this model has not
    card_rewritten: bool  # the card named another repository, or none: written again
    changed: bool = True  # False: the repository held these files already, no new commit


# -- what is published ----------------------------------------------------------------


def model_files(model_dir: Path) -> list[str]:
    """The names of the files to publish: the model's, at the top of model/.

    A trained model (config.json and safetensors weights) is required. A link among them
    is refused: it could point anywhere on this machine."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    names = []
    for path in sorted(model_dir.iterdir()):
        if not is_model_file(path.name):
            continue
        if path.is_symlink():
            raise HuggingtweetsError(
                f"{path} is a symbolic link: replace it with the file itself to push it "
                "(a link could point anywhere on this machine)"
            )
        if path.is_file():
            names.append(path.name)
    return names


def _has_model(names: list[str]) -> bool:
    weights = any(fnmatch.fnmatchcase(n, p) for n in names for p in WEIGHTS)
    return "config.json" in names and weights


def check_model(run: RunDir) -> list[str]:
    names = model_files(run.model_dir)
    if not _has_model(names):
        raise HuggingtweetsError(
            f"{run.output_dir} has no trained model to push ({run.model_dir} lacks "
            f"config.json or safetensors weights): run `huggingtweets train {run.root}` first"
        )
    return names


def card_repo_id(model_dir: Path) -> str | None:
    """The repository the card in ``model_dir`` names (from its thumbnail), if any."""
    from huggingface_hub import metadata_load

    try:
        metadata = metadata_load(Path(model_dir) / "README.md") or {}
    except (OSError, ValueError, UnicodeDecodeError, ImportError):
        return None
    thumbnail = metadata.get("thumbnail") if isinstance(metadata, dict) else None
    match = _THUMBNAIL.fullmatch(thumbnail) if isinstance(thumbnail, str) else None
    return match["repo"] if match else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_handles(run: RunDir) -> list[str]:
    accounts = _read_json(run.stats_path).get("accounts")
    if not isinstance(accounts, list):
        return []
    return [
        a["handle"] for a in accounts if isinstance(a, dict) and isinstance(a.get("handle"), str)
    ]


def _number(value: object, form: str) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, form)
    return None


def commit_message(run: RunDir) -> tuple[str, str]:
    """(summary, description) of the commit: who, on what base, how long, how well."""
    from huggingtweets import __version__
    from huggingtweets.card.model_card import base_model, one_line

    handles = run_handles(run)
    metrics = _read_json(run.metrics_path)
    who = " & ".join(f"@{h}" for h in handles) or run.root.name
    # As the card names it: a local base by its folder's name, never its whole path.
    base = base_model(metrics, run.model_dir).name if metrics.get("base_model") else None
    hyper = (
        metrics.get("hyperparameters") if isinstance(metrics.get("hyperparameters"), dict) else {}
    )
    epochs = _number(metrics.get("epochs_run", hyper.get("num_train_epochs")), "g")
    loss = _number(metrics.get("eval_loss_after"), ".4f")
    summary = f"Bot of {who}"
    if isinstance(base, str):
        summary += f": {base} fine-tuned"
        if epochs is not None:
            summary += f" for {epochs} epoch{'' if epochs == '1' else 's'}"
    if loss is not None:
        summary += f", validation loss {loss}"
    lines = [f"Trained with huggingtweets {__version__}."]
    before = _number(metrics.get("eval_loss_before"), ".4f")
    if before is not None and loss is not None:
        lines.append(f"Validation loss {before} → {loss}.")
    stats = _read_json(run.stats_path).get("accounts")
    for account in stats if isinstance(stats, list) else []:
        kept = account.get("kept") if isinstance(account, dict) else None
        if isinstance(kept, int) and not isinstance(kept, bool):
            lines.append(f"@{account.get('handle')}: {kept:,} posts kept.")
    for key in ("learning_rate", "lr_scheduler_type", "per_device_train_batch_size", "lora"):
        if hyper.get(key) is not None:
            lines.append(f"{key}: {hyper[key]}")
    return redact(one_line(summary))[:200], redact("\n".join(one_line(x) for x in lines))


class Pusher:
    """A push checked before the work it publishes: the token and the Hub first
    (:meth:`login`), then the repository (:meth:`choose_repo`), then :meth:`push`."""

    def __init__(
        self,
        options: PushOptions,
        user: str,
        namespaces: tuple[str, ...] | None,
        reporter: Reporter,
    ) -> None:
        self.options = options
        self.user = user
        self.namespaces = namespaces  # where the user may write (None: not known)
        self.reporter = reporter
        self.repo_id: str | None = None

    @classmethod
    def login(cls, options: PushOptions | None = None, reporter: Reporter | None = None) -> Pusher:
        options = options or PushOptions()
        reporter = reporter_or_silent(reporter)
        user = whoami(hub_token())
        if token_role(user) == "read":
            raise HuggingtweetsError(
                f"the Hugging Face token of {user['name']} is read-only: create one with write "
                "access at https://huggingface.co/settings/tokens"
            )
        orgs = user.get("orgs")
        namespaces = None
        if isinstance(orgs, list):
            names = [o.get("name") for o in orgs if isinstance(o, dict)]
            namespaces = (user["name"], *(n for n in names if isinstance(n, str)))
        return cls(options, user["name"], namespaces, reporter)

    def choose_repo(self, run: RunDir, card_repo: str | None = None) -> str:
        """The repository to publish to: the one asked for (NAME alone is in your
        namespace), else ``card_repo``, else YOUR_NAME/<handles>. One that is neither
        yours nor your organizations' is refused now, before any work."""
        from huggingtweets.card.model_card import check_repo_id, default_repo_id

        wanted = self.options.hub_model_id or card_repo
        if wanted is None:
            wanted = default_repo_id(run_handles(run) or [run.root.name]).split("/", 1)[1]
        if "/" not in wanted:
            wanted = f"{self.user}/{wanted}"
        repo_id = check_repo_id(wanted)
        owner, name = repo_id.split("/", 1)
        if self.namespaces is not None and owner not in self.namespaces:
            raise HuggingtweetsError(
                f"{self.user} cannot write to {repo_id}: {owner} is neither your namespace nor "
                f"one of your organizations; push to --repo-id {self.user}/{name}"
            )
        self.repo_id = repo_id
        return repo_id

    def push(self, run: RunDir) -> PushResult:
        """The repository made (or found), the card written for it if it names another,
        then one commit of the model's files."""
        repo_id = self.repo_id or self.choose_repo(run)
        reporter = self.reporter
        revision = self.options.revision
        reporter.start("push", f"pushing to {repo_id}", repo_id=repo_id)
        check_model(run)
        summary, description = commit_message(run)
        with self.talking_to_hub(repo_id) as said:
            info, names, deleted, rewritten = self._push(run, summary, description)
        base = f"{shown_endpoint()}/{repo_id}"
        url = base if revision == DEFAULT_REVISION else f"{base}/tree/{revision}"
        changed = not any(NOTHING_CHANGED in message for message in said)
        reporter.end("push", f"pushed to {url}", url=url, commit=info.oid, changed=changed)
        return PushResult(
            repo_id, revision, url, info.commit_url, info.oid, names, deleted, rewritten, changed
        )

    @contextlib.contextmanager
    def talking_to_hub(self, repo_id: str) -> Iterator[list[str]]:
        """huggingface_hub quieted (see ``quiet_hub``; yields its messages), and whatever
        goes wrong on the Hub said in one line (the repository is as it was)."""
        with quiet_hub(self.reporter) as said:
            try:
                yield said
            except HuggingtweetsError:
                raise
            except Exception as exc:
                error = self._error(exc, repo_id)
                if error is None:
                    raise
                raise error from None

    def _push(self, run: RunDir, summary: str, description: str):
        """Everything checked (the repository's visibility, the card rewritten) before
        anything is created; whatever this push created, and the card it rewrote, undone
        when it fails or is interrupted (no empty repository, no card naming it)."""
        from huggingface_hub import HfApi

        repo_id = self.repo_id
        api = HfApi()
        token = hub_token()
        existing = repo_info(api, repo_id, token)
        if self.options.hub_private_repo and existing is not None and not existing.private:
            raise HuggingtweetsError(
                f"{repo_id} already exists and is public: --private does not change an "
                "existing repository; make it private in its settings, or push elsewhere"
            )
        undo = Undo(self.reporter)
        try:
            rewritten = card_repo_id(run.model_dir) != repo_id
            if rewritten:
                self._rewrite_card(run, repo_id, undo)
            names = check_model(run)  # as they are now: the card may have drawn avatars
            self.reporter.raise_if_cancelled()
            if existing is None:
                self._create_repo(api, repo_id, token, undo)
            self._create_branch(api, repo_id, token, undo)
            info, stale = self._commit(api, run, names, summary, description, token)
        except BaseException:
            undo.run()
            raise
        return info, tuple(names), tuple(stale), rewritten

    def _rewrite_card(self, run: RunDir, repo_id: str, undo: Undo) -> None:
        from huggingtweets.card.model_card import write_card

        self.reporter.info("push", f"writing the model card for {repo_id}")
        folder = run.model_dir
        try:
            undo.restore_files(folder, CARD_FILES)
            write_card(run, repo_id=repo_id)
        except OSError as exc:  # a read-only folder, a full disk: this machine, not the Hub
            # os.replace(temporary, target) names the target second
            where = exc.filename2 or exc.filename
            if isinstance(exc, IsADirectoryError) and where is not None:
                raise HuggingtweetsError(
                    f"cannot write the model card in {folder}: {where} is a folder where a "
                    "file belongs: move it out of the way and push again; the repository "
                    "was not changed"
                ) from None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                advice = f"free some space on the disk of {folder} (or your quota there)"
            elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                advice = f"make the folder writable (chmod u+w {folder})"
            else:  # the OS's own words (above), and the file it names
                advice = f"fix that ({where})" if where else "fix that"
            raise HuggingtweetsError(
                f"cannot write the model card in {folder} ({exc.strerror or exc}): the push "
                f"writes it there to name {repo_id}; {advice} and push again; the "
                "repository was not changed"
            ) from None

    def _create_repo(self, api, repo_id: str, token: str, undo: Undo) -> None:
        """Create the repository; one made by this push is deleted should the push fail."""
        from huggingface_hub.errors import HfHubHTTPError

        private = True if self.options.hub_private_repo else None
        try:
            api.create_repo(repo_id, token=token, private=private)
        except HfHubHTTPError as exc:
            if exc.response is None or exc.response.status_code != 409:
                raise
            return  # there already, though hidden from this token: never ours to delete
        undo.add(f"the empty repository {repo_id}", lambda: api.delete_repo(repo_id, token=token))

    def _create_branch(self, api, repo_id: str, token: str, undo: Undo) -> None:
        from huggingface_hub.errors import HfHubHTTPError

        revision = self.options.revision
        if revision == DEFAULT_REVISION:
            return
        try:
            api.create_branch(repo_id, branch=revision, token=token)
        except HfHubHTTPError as exc:
            if exc.response is None or exc.response.status_code != 409:
                raise
            return  # the branch is there already
        undo.add(
            f"the empty branch {revision} of {repo_id}",
            lambda: api.delete_branch(repo_id, branch=revision, token=token),
        )

    def _commit(self, api, run: RunDir, names: list[str], summary: str, description: str, token):
        """One commit: the model's files, and the removal of model files it no longer has."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete
        from huggingface_hub.errors import RevisionNotFoundError

        repo_id, revision = self.repo_id, self.options.revision
        try:
            remote = api.list_repo_files(repo_id, revision=revision, token=token)
        except RevisionNotFoundError:
            remote = []
        stale = sorted(p for p in remote if is_model_file(p) and p not in names)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run.model_dir / name))
            for name in names
        ] + [CommitOperationDelete(path_in_repo=p) for p in stale]
        size = sum((run.model_dir / n).stat().st_size for n in names)
        self.reporter.info(
            "push", f"uploading {len(names)} files ({size / 1e6:,.1f} MB) in one commit"
        )
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=summary,
            commit_description=description,
            revision=revision,
            token=token,
        )
        return info, stale

    def _error(self, exc: Exception, repo_id: str) -> HuggingtweetsError | None:
        """One line for what went wrong; the repository is at its previous commit."""
        from huggingface_hub.errors import HfHubHTTPError

        kept = "the repository was not changed"
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            owner, name = repo_id.split("/", 1)
            if status == 401:
                message = (
                    "the Hugging Face Hub refused the token (401 Unauthorized): set HF_TOKEN "
                    "to a valid one or run `hf auth login`"
                )
            elif status == 403:
                fix = f"write access to {owner}"
                if owner != self.user:
                    own = f"{self.user}/{name}"
                    fix = f"push to your own namespace (--repo-id {own}) or use a token with {fix}"
                else:
                    fix = f"use a token with {fix}"
                message = (
                    f"the token of {self.user} cannot write to {repo_id} (403 Forbidden): {fix}"
                )
            elif status == 404:
                message = f"the Hub has no repository {repo_id} that this token can see (404)"
            else:
                server = first_line_of(getattr(exc, "server_message", "") or exc)
                message = f"the Hub refused the push ({status}): {server}"
            return HuggingtweetsError(redact(f"{message}; {kept}"))
        local = local_file_error(exc)
        if local is not None:  # a model file that cannot be read: this machine, not the Hub
            return HuggingtweetsError(
                redact(f"cannot use {local.filename}: {local.strerror or local}; {kept}")
            )
        if is_transport_error(exc):
            cause = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            error = unreachable(first_line_of(cause) or type(cause).__name__)
            return HuggingtweetsError(f"{error}; {kept}")
        if isinstance(exc, ValueError):  # a card's metadata the Hub refuses, a bad answer
            return HuggingtweetsError(
                redact(f"cannot push to {repo_id}: {first_line_of(exc)}; {kept}")
            )
        return None


def prepare_push(
    run_dir: Path | str | RunDir,
    options: PushOptions | None = None,
    reporter: Reporter | None = None,
) -> Pusher:
    """A push of ``run_dir``'s model checked before anything is created: the model there,
    the token accepted, the repository chosen and writable (its ``repo_id`` set)."""
    options = options or PushOptions()
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    check_model(run)  # before the token or the network: nothing to push is said first
    pusher = Pusher.login(options, reporter)
    card_repo = card_repo_id(run.model_dir)
    from huggingtweets.card.model_card import default_repo_id

    # The card's repository counts only when chosen (card --repo-id), not the default.
    if card_repo == default_repo_id(run_handles(run) or [run.root.name]):
        card_repo = None
    pusher.choose_repo(run, card_repo)
    return pusher


def push_run(
    run_dir: Path | str | RunDir,
    options: PushOptions | None = None,
    reporter: Reporter | None = None,
) -> PushResult:
    """Publish the trained model of ``run_dir`` (a trial's outputs too, as a RunDir) on
    the Hugging Face Hub, in one commit; see the module's notes."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    return prepare_push(run, options, reporter).push(run)
