"""The model service behind ``huggingtweets serve`` (serve.models, serve.batching): dynamic
batching, seeds, the bounded queue, the model cache, share links, on a tiny random GPT-2."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading

import pytest
import torch

pytest.importorskip("fastapi")

from huggingtweets.core.options import OptionError
from huggingtweets.generate.generator import GenerateOptions, Generator
from huggingtweets.model.memorization import build_guard
from huggingtweets.model.tiny import build_tiny_base
from huggingtweets.serve import batching
from huggingtweets.serve.batching import EncodedPrompt, PromptRows, sample_batch
from huggingtweets.serve.models import (
    GenerateRequest,
    ModelBroken,
    ModelService,
    QueueFull,
    UnknownModel,
)
from huggingtweets.train.recipe import save_model

TEXTS = [
    "My dream is a quiet house by the sea,\nwith a garden.",
    "O Romeo, Romeo! wherefore art thou Romeo?",
    "Good night, good night! Parting is such sweet sorrow.",
] * 20
TRAINING_POST = "My dream is a quiet house by the sea"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random GPT-2 of 262 tokens saved as train saves a model (the original's
    sampling settings in its config), with a memorization guard and a preview."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("serve-models") / "bot"
    build_tiny_base(TEXTS, folder, vocab_size=262, n_layer=2, n_head=2, n_embd=32, seed=1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    save_model(model, AutoTokenizer.from_pretrained(folder), folder)
    build_guard([TRAINING_POST], folder)
    return folder


def _resolver(folders: dict):
    def resolve(name: str) -> str:
        if name not in folders:
            raise UnknownModel(f"no model {name!r}")
        return str(folders[name])

    return resolve


async def _all(service: ModelService, requests: list[GenerateRequest]) -> list:
    return await asyncio.gather(*(service.generate(r) for r in requests), return_exceptions=True)


def _count_prompt_passes(service: ModelService, location) -> list[int]:
    """Rows of each prompt pass (a forward of more than one token) the model makes."""
    passes: list[int] = []
    model = service._models[str(location)].model

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] > 1:
            passes.append(int(ids.shape[0]))

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return passes


@pytest.mark.parametrize("max_batch", [20, 1])
def test_requests_waiting_together_share_one_forward_pass(model_dir, max_batch):
    service = ModelService(_resolver({"bot": model_dir}), max_batch=max_batch, batch_window_s=0.5)
    try:
        service.generate_sync(GenerateRequest("bot", n=1))  # loaded once
        passes = _count_prompt_passes(service, model_dir)
        before = dict(service.counters)
        requests = [
            GenerateRequest("bot", prompt="My dream is", n=3),
            GenerateRequest("bot", prompt="O Romeo, Romeo! wherefore art", n=5),
            GenerateRequest("bot", prompt="My dream is", n=2, max_length=30),
            GenerateRequest("bot", prompt="Good night", n=4),
            GenerateRequest("bot", prompt="x " * 400, n=1),  # too long for its context
        ]
        answers = asyncio.run(_all(service, requests))
        # The too-long prompt fails alone, naming the field; the others get their rows.
        assert isinstance(answers[-1], OptionError) and answers[-1].name == "prompt"
        for request, answer in zip(requests[:-1], answers[:-1], strict=True):
            assert not isinstance(answer, BaseException), answer
            assert answer["prompt"] == request.prompt and answer["model"] == "bot"
            assert len(answer["samples"]) == request.n
            assert all(s["text"].startswith(request.prompt) for s in answer["samples"])
            assert all("\n" not in s["text"] for s in answer["samples"])
            assert isinstance(answer["seed"], int) and answer["checked"] is True
        batches = service.counters["batches"] - before["batches"]
        if max_batch == 20:
            # 14 rows of four requests: one prompt pass reads each request's prompt once.
            assert passes == [4] and batches == 1
            assert service.counters["largest_batch"] == 4
        else:
            assert passes == [1, 1, 1, 1] and batches == 4
        assert service.counters["loads"] == 1
    finally:
        service.close()


def test_a_padded_prompt_samples_as_it_does_alone(model_dir):
    """Left padding changes nothing: near-greedy rows of a short prompt batched with a
    longer one equal the short prompt's rows sampled alone."""
    generator = Generator.load(model_dir)
    settings = {**generator.settings(GenerateOptions(temperature=0.001)), "allow_newlines": False}
    short = EncodedPrompt.encode(generator, "My dream is", settings)
    long = EncodedPrompt.encode(generator, "O Romeo, Romeo! wherefore art thou", settings)
    stops = generator._line_break_ids()

    def rng():
        return torch.Generator().manual_seed(7)

    alone = sample_batch(
        generator.model,
        [PromptRows(short.ids, 1, len(short.ids) + 20, short.min_length, rng())],
        settings,
        stops,
    )
    together = sample_batch(
        generator.model,
        [
            PromptRows(long.ids, 2, len(long.ids) + 20, long.min_length, rng()),
            PromptRows(short.ids, 2, len(short.ids) + 5, short.min_length, rng()),
        ],
        settings,
        stops,
    )
    assert len(together[0]) == 2 and len(together[1]) == 2
    cut = len(short.ids) + 5  # its own max_length, not the long prompt's
    assert len(alone[0][0]) > cut  # (alone, it runs on)
    assert together[1][0] == alone[0][0][:cut]
    assert all(row[: len(long.ids)] == long.ids for row in together[0])


def _texts(answer: dict) -> list[str]:
    return [s["text"] for s in answer["samples"]]


def test_seeds_replay_samples_whatever_shared_the_batch(model_dir):
    service = ModelService(_resolver({"bot": model_dir}), batch_window_s=0.5)
    try:
        request = GenerateRequest("bot", n=4, seed=1234, max_length=40)
        first = service.generate_sync(request)
        assert first["seed"] == 1234
        assert _texts(first) == _texts(service.generate_sync(request))
        assert _texts(first) != _texts(service.generate_sync(GenerateRequest("bot", n=4, seed=1)))
        # Unseeded requests batched together: each answer's seed, sent back alone, draws
        # its very samples again (each request's rows draw from their own generator).
        requests = [
            GenerateRequest("bot", prompt=p, n=3, max_length=40)
            for p in ("My dream is", "O Romeo, Romeo!", "Good night")
        ]
        batches = service.counters["batches"]
        answers = asyncio.run(_all(service, requests))
        assert service.counters["batches"] == batches + 1
        assert len({a["seed"] for a in answers}) == 3
        for request, answer in zip(requests, answers, strict=True):
            request.seed = answer["seed"]
            assert _texts(service.generate_sync(request)) == _texts(answer)
    finally:
        service.close()


def test_requests_join_a_running_loop_and_draw_what_they_would_alone(model_dir):
    """Requests that arrive while a sampling loop runs join it (continuous batching):
    the running rows' cache is padded to a longer newcomer's prompt, a shorter one's to
    the cache; every request still draws, for its seed, what it draws alone."""
    import time

    service = ModelService(_resolver({"bot": model_dir}), batch_window_s=0)
    try:
        service.generate_sync(GenerateRequest("bot", n=1))  # loaded once
        model = service._models[str(model_dir)].model
        slow = model.register_forward_pre_hook(lambda *_: time.sleep(0.01))
        batches = service.counters["batches"]
        first = service.submit(GenerateRequest("bot", prompt="Good night", n=2, max_length=120))
        while service.counters["requests"] < 2:  # the first is in its loop
            time.sleep(0.005)
        requests = [
            GenerateRequest("bot", prompt="O Romeo, Romeo! wherefore art thou Romeo? " * 2, n=2),
            GenerateRequest("bot", prompt="My", n=3, max_length=60),
        ]
        joined = [service.submit(r) for r in requests]
        answers = [f.result(120) for f in (first, *joined)]
        slow.remove()
        assert service.counters["batches"] == batches + 1
        assert service.counters["largest_batch"] >= 2
        replays = [GenerateRequest("bot", prompt="Good night", n=2, max_length=120), *requests]
        for request, answer in zip(replays, answers, strict=True):
            assert len(answer["samples"]) == request.n
            request.seed = answer["seed"]
            assert _texts(service.generate_sync(request)) == _texts(answer)
    finally:
        service.close()


def test_a_request_of_other_settings_is_not_starved_by_joiners(model_dir):
    import time

    service = ModelService(_resolver({"bot": model_dir}), batch_window_s=0)
    try:
        service.generate_sync(GenerateRequest("bot", n=1))
        model = service._models[str(model_dir)].model
        slow = model.register_forward_pre_hook(lambda *_: time.sleep(0.01))
        batches = service.counters["batches"]
        first = service.submit(GenerateRequest("bot", n=2, max_length=120))
        while service.counters["requests"] < 2:
            time.sleep(0.005)
        other = service.submit(GenerateRequest("bot", n=1, seed=3, max_length=20))
        later = service.submit(GenerateRequest("bot", n=1, max_length=20))
        done = [f.result(120) for f in (first, other, later)]
        slow.remove()
        # The later request did not join the running loop past the seeded one: three
        # loops, in the order they came.
        assert service.counters["batches"] == batches + 3
        assert [len(d["samples"]) for d in done] == [2, 1, 1]
    finally:
        service.close()


def test_the_queue_is_bounded(model_dir):
    service = ModelService(_resolver({"bot": model_dir}), max_queue=2, batch_window_s=2.0)
    try:
        waiting = [service.submit(GenerateRequest("bot", n=1)) for _ in range(2)]
        with pytest.raises(QueueFull) as raised:
            service.submit(GenerateRequest("bot", n=1))
        assert raised.value.retry_after >= 1
        assert all(len(f.result(60)["samples"]) == 1 for f in waiting)
        assert len(service.generate_sync(GenerateRequest("bot", n=1))["samples"]) == 1
    finally:
        service.close()


def test_the_cache_keeps_max_models(model_dir, tmp_path):
    folders = {"a": model_dir}
    for name in ("b", "c"):
        folders[name] = shutil.copytree(model_dir, tmp_path / name)
    service = ModelService(_resolver(folders), max_models=2)
    try:
        for name in ("a", "b", "c"):
            service.generate_sync(GenerateRequest(name, n=1))
        assert service.loaded() == [str(folders["b"]), str(folders["c"])]
        service.generate_sync(GenerateRequest("b", n=1))  # a hit: b becomes the newest
        assert service.counters["loads"] == 3
        service.generate_sync(GenerateRequest("a", n=1))  # loaded again, c evicted
        assert service.loaded() == [str(folders["b"]), str(folders["a"])]
        assert service.counters["loads"] == 4
    finally:
        service.close()


def test_a_model_trained_again_is_loaded_again(model_dir, tmp_path):
    """Step 2 of the web app retrains a run the service already serves: the next request
    gets the new weights, not the cached ones."""
    import os

    folder = shutil.copytree(model_dir, tmp_path / "bot")
    service = ModelService(_resolver({"bot": folder}))
    try:
        service.generate_sync(GenerateRequest("bot", n=1, seed=1))
        service.generate_sync(GenerateRequest("bot", n=1, seed=1))
        assert service.counters["loads"] == 1  # unchanged files: the cached model
        weights = folder / "model.safetensors"
        later = weights.stat().st_mtime_ns + 10**9
        os.utime(weights, ns=(later, later))  # as a new model swapped into place
        service.generate_sync(GenerateRequest("bot", n=1, seed=1))
        assert service.counters["loads"] == 2 and len(service.loaded()) == 1
    finally:
        service.close()


def test_an_unknown_model(model_dir):
    service = ModelService(_resolver({"bot": model_dir}))
    try:
        with pytest.raises(UnknownModel):
            asyncio.run(service.generate(GenerateRequest("nobody", n=1)))
        assert service.queued() == 0
    finally:
        service.close()


def test_share_links_and_flagged_copies(model_dir, tmp_path):
    # A guard that also holds the posts the model writes for one seed: drawn again with
    # that seed, they are training posts, so flagged and given no share links. (A prompt
    # of two lines, whose samples were all its first line, is refused now: one rule.)
    request = GenerateRequest("bot", prompt="Good night", n=2, seed=7, max_length=40)
    first = ModelService(_resolver({"bot": model_dir}))
    try:
        planted = _texts(first.generate_sync(request))
    finally:
        first.close()
    folder = shutil.copytree(model_dir, tmp_path / "bot")
    build_guard([TRAINING_POST, *planted], folder)
    service = ModelService(_resolver({"bot": folder}), batch_window_s=0.2)
    try:
        copy, fresh = asyncio.run(
            _all(service, [request, GenerateRequest("bot", prompt="Good night", n=2, seed=8)])
        )
        assert _texts(copy) == planted and copy["flagged"] == 2
        assert all(s["copy"]["kind"] == "verbatim" and s["share"] is None for s in copy["samples"])
        for sample in fresh["samples"]:
            assert not sample["flagged"]
            assert set(sample["share"]) == {"x", "bluesky", "mastodon"}
            assert sample["share"]["x"].startswith("https://x.com/intent/post?text=Good%20night")
    finally:
        service.close()


def test_preview_path(model_dir, tmp_path):
    plain = shutil.copytree(model_dir, tmp_path / "plain")
    pictured = shutil.copytree(model_dir, tmp_path / "pictured")
    (pictured / "preview.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    service = ModelService(_resolver({"plain": plain, "pictured": pictured}))
    try:
        assert service.preview_path("pictured") == pictured / "preview.png"
        assert service.preview_path("plain") is None
        assert service.preview_path("nobody") is None
    finally:
        service.close()


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"n": 21}, "n"),
        ({"n": 0}, "n"),
        ({"max_length": 513}, "max_length"),
        ({"prompt": "a" * 1001}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"n": "3"}, "n"),
        ({"model": ""}, "model"),
    ],
)
def test_requests_are_checked_with_the_api_limits(fields, name):
    with pytest.raises(OptionError) as raised:
        GenerateRequest(**{"model": "bot", **fields})
    assert raised.value.name == name


class HeldLoads:
    """``Generator.load`` as the service calls it, held for the folders given until the
    test releases them (the load then goes on as it would: it loads, or it fails)."""

    def __init__(self, monkeypatch, *held) -> None:
        self.held = {str(folder) for folder in held}
        self.started = threading.Event()  # a held load began
        self.release = threading.Event()
        self.calls: list[str] = []
        real = Generator.load

        def load(location, **kwargs):
            self.calls.append(str(location))
            if str(location) in self.held:
                self.started.set()
                assert self.release.wait(120), "the test never released the load"
            return real(location, **kwargs)

        monkeypatch.setattr(Generator, "load", staticmethod(load))


def test_a_slow_load_holds_up_no_model_that_is_loaded(model_dir, tmp_path, monkeypatch):
    """Issue 19 (hostile input 12): one model's load kept the one worker thread, so every
    request of every model waited for it. Now a loaded model answers while another loads;
    the loading model's requests wait in the queue and are answered once it is loaded."""
    slow = shutil.copytree(model_dir, tmp_path / "slow")
    loads = HeldLoads(monkeypatch, slow)
    service = ModelService(_resolver({"bot": model_dir, "slow": slow}), max_models=2)
    try:
        service.generate_sync(GenerateRequest("bot", n=1))  # loaded
        waiting = service.submit(GenerateRequest("slow", n=2))
        assert loads.started.wait(60)
        answer = service.generate_sync(GenerateRequest("bot", n=2), timeout=30)
        assert len(answer["samples"]) == 2 and answer["model"] == "bot"
        assert not waiting.done() and service.queued() == 1
        loads.release.set()
        assert len(waiting.result(60)["samples"]) == 2
        assert service.loaded() == [str(model_dir), str(slow)]
        assert service.counters["loads"] == 2 and loads.calls.count(str(slow)) == 1
    finally:
        loads.release.set()
        service.close()


def test_a_load_that_fails_answers_its_requests_and_no_others(model_dir, tmp_path, monkeypatch):
    """A model whose config.json claims a billion layers (refused by its size), held while
    a loaded model answers: each of its waiting requests gets the load's error, in one
    line naming the model, never its folder; one load answers them all."""
    broken = shutil.copytree(model_dir, tmp_path / "broken")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "n_layer": 10**9}))
    loads = HeldLoads(monkeypatch, broken)
    service = ModelService(_resolver({"bot": model_dir, "broken": broken}))
    try:
        service.generate_sync(GenerateRequest("bot", n=1))
        first = service.submit(GenerateRequest("broken", n=1))
        assert loads.started.wait(60)
        second = service.submit(GenerateRequest("broken", n=1, seed=5))  # another batch
        assert len(service.generate_sync(GenerateRequest("bot", n=1), timeout=30)["samples"]) == 1
        loads.release.set()
        for job in (first, second):
            with pytest.raises(ModelBroken) as raised:
                job.result(60)
            message = str(raised.value)
            assert "model 'broken' cannot be loaded" in message
            assert "config.json describes a model of" in message
            assert str(tmp_path) not in message
        assert loads.calls.count(str(broken)) == 1
        assert len(service.generate_sync(GenerateRequest("bot", n=3), timeout=30)["samples"]) == 3
        assert service.loaded() == [str(model_dir)] and service.queued() == 0
    finally:
        loads.release.set()
        service.close()


def test_requests_given_up_while_their_model_loads_leave_the_queue(
    model_dir, tmp_path, monkeypatch
):
    """Clients that leave (a closed connection cancels the request) while their model
    loads do not keep the queue full for the models that are loaded."""
    slow = shutil.copytree(model_dir, tmp_path / "slow")
    loads = HeldLoads(monkeypatch, slow)
    service = ModelService(_resolver({"bot": model_dir, "slow": slow}), max_queue=2)
    try:
        service.generate_sync(GenerateRequest("bot", n=1))
        gone = [service.submit(GenerateRequest("slow", n=1))]
        assert loads.started.wait(60)
        gone.append(service.submit(GenerateRequest("slow", n=1)))
        assert all(job.cancel() for job in gone)  # still waiting, so cancelled
        assert len(service.generate_sync(GenerateRequest("bot", n=1), timeout=30)["samples"]) == 1
        assert service.queued() == 0
    finally:
        loads.release.set()
        service.close()


def test_sampling_noise_is_float32_whatever_torchs_default_dtype(model_dir):
    """A load on the loader thread sets torch's default dtype (a global) for the moment
    transformers builds a half-precision model: a sampling loop drawing meanwhile still
    draws its noise in float32, as a request's seed draws it alone."""
    generator = Generator.load(model_dir)
    settings = {**generator.settings(GenerateOptions()), "allow_newlines": False}
    prompt = EncodedPrompt.encode(generator, "My dream is", settings)
    loop = batching._Loop(generator.model, settings, generator._line_break_ids())
    rows = PromptRows(prompt.ids, 2, prompt.max_length, prompt.min_length, torch.Generator())
    loop.admit([(0, [0, 1], rows)])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # as transformers' local_torch_dtype does
    try:
        noise = loop._noise(5)
    finally:
        torch.set_default_dtype(previous)
    assert noise.dtype == torch.float32 and noise.shape == (2, 5)
