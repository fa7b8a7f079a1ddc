"""The OpenAI-compatible routes of ``huggingtweets serve`` (serve.api.openai), checked with
the official ``openai`` client pointed at a real uvicorn server on 127.0.0.1 (base_url
http://127.0.0.1:PORT/v1): the model list, completions streamed and not, the memorization
guard's word per choice, OpenAI's error shape, the token off loopback; then schemathesis
over the new routes with a real tiny model behind them."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from huggingtweets.model.memorization import build_guard  # noqa: E402
from huggingtweets.model.tiny import build_tiny_base  # noqa: E402
from huggingtweets.serve.api import create_app  # noqa: E402
from huggingtweets.serve.config import ServeConfig  # noqa: E402
from huggingtweets.serve.requests import MAX_REQUEST_LENGTH, MAX_REQUEST_SAMPLES  # noqa: E402
from huggingtweets.train.recipe import save_model  # noqa: E402

TEXTS = [
    "My dream is a quiet house by the sea,\nwith a garden.",
    "O Romeo, Romeo! wherefore art thou Romeo?",
    "Good night, good night! Parting is such sweet sorrow.",
] * 20
TRAINING_POST = "My dream is a quiet house by the sea"
TOKEN = "openai-route-test-token-0123456789abcdef"
RUN = "romeo-bot"
PROMPT = "Good night"


def _tiny_model(folder: Path) -> Path:
    """A random GPT-2 of 262 tokens saved as train saves one, with a memorization guard."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_tiny_base(TEXTS, folder, vocab_size=262, n_layer=2, n_head=2, n_embd=32, seed=1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    save_model(model, AutoTokenizer.from_pretrained(folder), folder)
    build_guard([TRAINING_POST], folder)
    return folder


def _served_folders(root: Path) -> tuple[Path, Path, Path]:
    """runs/ with one run that has a model, and two model folders given at start: bot,
    and planted (bot's copy, whose guard the test fills with bot's own posts)."""
    bot = _tiny_model(root / "bot")
    planted = shutil.copytree(bot, root / "planted")
    runs = root / "runs"
    shutil.copytree(bot, runs / RUN / "model")
    return runs, bot, planted


@contextlib.contextmanager
def _serving(app) -> Iterator[str]:
    """``app`` on uvicorn on a free port of 127.0.0.1, in a thread; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("openai")
    runs, bot, planted = _served_folders(root)
    app = create_app(ServeConfig(runs_dir=runs, models=[str(bot), str(planted)]), ui=False)
    with _serving(app) as url:
        yield url, planted


@pytest.fixture(scope="module")
def client(served):
    url, _ = served
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused-on-loopback", max_retries=0)


def _get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- the models -------------------------------------------------------------------------


def test_v1_models_lists_the_given_models_and_the_runs_with_a_model(client):
    listed = client.models.list()
    assert [m.id for m in listed.data] == ["bot", "planted", RUN]
    for model in listed.data:
        assert model.object == "model" and model.owned_by == "huggingtweets"
        assert abs(model.created - time.time()) < 3600
    assert client.models.retrieve(RUN).id == RUN
    with pytest.raises(openai.NotFoundError) as refused:
        client.models.retrieve("nobody")
    assert refused.value.body["code"] == "model_not_found"


def test_the_projects_api_lists_them_too(served):
    url, _ = served
    status, models = _get(f"{url}/api/v1/models")
    assert status == 200
    assert [(m["id"], m["kind"]) for m in models] == [
        ("bot", "folder"),
        ("planted", "folder"),
        (RUN, "run"),
    ]
    assert all(m["created"] for m in models)


# -- completions ------------------------------------------------------------------------


def _ask(client, **fields):
    return client.completions.create(**{"model": "bot", "prompt": PROMPT, **fields})


def test_completions_with_a_seed_are_reproducible_and_in_openais_shape(client):
    first = _ask(client, n=3, max_tokens=8, seed=7, temperature=0.9, top_p=0.95)
    assert first.object == "text_completion" and first.id.startswith("cmpl-")
    assert first.model == "bot" and [c.index for c in first.choices] == [0, 1, 2]
    for choice in first.choices:
        assert isinstance(choice.text, str) and "\n" not in choice.text
        assert not choice.text.startswith(PROMPT) or not choice.text  # the completion only
        assert choice.finish_reason in ("stop", "length") and choice.logprobs is None
        guard = choice.huggingtweets  # the field a client may ignore
        assert guard["flagged"] is False and guard["copy"] is None and guard["attempts"] == 1
    assert first.usage.prompt_tokens > 0
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert first.usage.completion_tokens <= 3 * 8 + 3  # re-counted from the text
    assert first.huggingtweets == {"seed": 7, "checked": True, "flagged": 0}
    again = _ask(client, n=3, max_tokens=8, seed=7, temperature=0.9, top_p=0.95)
    assert [c.text for c in again.choices] == [c.text for c in first.choices]
    echoed = _ask(client, n=3, max_tokens=8, seed=7, temperature=0.9, top_p=0.95, echo=True)
    assert [c.text for c in echoed.choices] == [PROMPT + c.text for c in first.choices]


def test_max_tokens_bounds_the_completion(client):
    short = _ask(client, n=4, max_tokens=1, seed=3)
    for choice in short.choices:
        assert len(choice.text) <= 8 and choice.finish_reason in ("stop", "length")
    assert any(c.finish_reason == "length" for c in short.choices)
    greedy = _ask(client, n=2, max_tokens=6, temperature=0)  # 0: the lowest temperature
    assert greedy.choices[0].text == greedy.choices[1].text


def test_stop_cuts_the_completion_before_the_stop_sequence(client):
    whole = _ask(client, max_tokens=24, seed=11).choices[0].text
    assert len(whole) > 4, whole
    stop = whole[2:4]
    cut = _ask(client, max_tokens=24, seed=11, stop=[stop, "never there at all"])
    assert cut.choices[0].text == whole[: whole.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert _ask(client, max_tokens=24, seed=11, stop=stop).choices[0].text == cut.choices[0].text


def test_a_stream_is_openais_and_gives_what_the_answer_gives(client, served):
    fields = {"n": 2, "max_tokens": 10, "seed": 5}
    whole = _ask(client, **fields)
    texts, ends = {0: "", 1: ""}, {}
    chunks = list(_ask(client, stream=True, stream_options={"include_usage": True}, **fields))
    for chunk in chunks:
        assert chunk.object == "text_completion" and chunk.model == "bot"
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason is not None:
                ends[choice.index] = choice.finish_reason
    assert texts == {c.index: c.text for c in whole.choices}
    assert ends == {c.index: c.finish_reason for c in whole.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert len({chunk.id for chunk in chunks}) == 1
    # On the wire: server-sent events, each `data: {json}`, the last `data: [DONE]`.
    url, _ = served
    body = json.dumps({"model": "bot", "prompt": PROMPT, "stream": True, **fields}).encode()
    request = urllib.request.Request(
        f"{url}/v1/completions", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = answer.read().decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2]) and len(events) == 2 + 2 * 2


def test_a_copy_of_a_training_post_is_flagged_or_drawn_again(client, served):
    """bot's posts for a seed planted in planted's guard: drawn there with that seed, each
    is a training post, flagged in the choice's extra field; no_copies draws them again."""
    _, planted = served
    request = {"max_tokens": 16, "seed": 7, "n": 2, "echo": True}
    posts = [c.text for c in _ask(client, **request).choices]
    build_guard([TRAINING_POST, *posts], planted)
    copies = _ask(client, model="planted", **request)
    assert [c.text for c in copies.choices] == posts
    assert copies.huggingtweets["flagged"] == 2
    for choice in copies.choices:
        assert choice.huggingtweets["flagged"] is True
        assert choice.huggingtweets["copy"]["kind"] == "verbatim"
    redrawn = _ask(client, model="planted", extra_body={"no_copies": True}, **request)
    assert all(c.huggingtweets["attempts"] > 1 for c in redrawn.choices)
    assert redrawn.huggingtweets["flagged"] < 2


# -- bad input: OpenAI's error shape, the right status ------------------------------------


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"prompt": ["My dream is", "Good night"]}, "prompt", "list of prompts"),
        ({"prompt": [[1, 2, 3]]}, "prompt", "list of prompts"),
        ({"n": MAX_REQUEST_SAMPLES + 1}, "n", "less than or equal"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal"),
        ({"max_tokens": -5}, "max_tokens", "greater than or equal"),
        ({"max_tokens": MAX_REQUEST_LENGTH}, "max_tokens", "at most"),
        ({"logprobs": 2}, "logprobs", "not supported"),
        ({"extra_body": {"best_of": 2}}, "best_of", "not a field this server supports"),
        ({"prompt": "   "}, "prompt", None),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", None),
    ],
)
def test_bad_requests_are_400_in_openais_shape(client, fields, param, words):
    with pytest.raises(openai.BadRequestError) as refused:
        _ask(client, **fields)
    error = refused.value
    assert error.status_code == 400
    assert error.body["type"] == "invalid_request_error" and error.body["param"] == param
    assert error.param == param and error.code
    if words:
        assert words in error.body["message"], error.body


def test_an_unknown_model_is_404_in_openais_shape(client, served):
    with pytest.raises(openai.NotFoundError) as refused:
        _ask(client, model="nobody")
    assert refused.value.body["code"] == "model_not_found"
    assert refused.value.body["param"] == "model" and "unknown model" in refused.value.message
    url, _ = served
    request = urllib.request.Request(
        f"{url}/v1/completions",
        data=json.dumps({"model": "nobody", "prompt": PROMPT}).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    body = json.loads(answer.value.read())
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}


def test_off_loopback_the_v1_routes_need_the_bearer_token(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(_tiny_model(tmp_path / "bot"), runs / RUN / "model")
    # Said to serve on every address (so the token rule holds); uvicorn listens on loopback.
    app = create_app(ServeConfig(runs_dir=runs, host="0.0.0.0", token=TOKEN), ui=True)
    with _serving(app) as url:
        good = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        assert [m.id for m in good.models.list().data] == [RUN]
        assert good.completions.create(model=RUN, prompt=PROMPT, max_tokens=4).choices
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong-token", max_retries=0)
        for call in (bad.models.list, lambda: bad.completions.create(model=RUN, prompt="Hi")):
            with pytest.raises(openai.AuthenticationError) as refused:
                call()
            assert refused.value.body["code"] == "invalid_api_key"
        status, body = _get(f"{url}/api/v1/models")
        assert status == 401 and body["detail"][0]["loc"] == ["header", "authorization"]
        status, _ = _get(f"{url}/api/v1/models", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200


# -- schemathesis over the new routes, a real model behind them ---------------------------

_root = tempfile.TemporaryDirectory(prefix="huggingtweets-openai-schema-")
_fuzzed: dict = {}


def _fuzzed_app():
    """Built on first use (a model is made), not at collection."""
    if "app" not in _fuzzed:
        runs, bot, _ = _served_folders(Path(_root.name))
        _fuzzed["app"] = create_app(ServeConfig(runs_dir=runs, models=[str(bot)]), ui=False)
    return _fuzzed["app"]


async def _fuzzed_asgi(scope, receive, send):
    """The app without its lifespan (as test_serve_schema.py serves it)."""
    if scope["type"] != "lifespan":
        return await _fuzzed_app()(scope, receive, send)
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzzed_asgi).include(
    path_regex=r"^/(v1/|api/v1/models$)"
)


@pytest.fixture(scope="module", autouse=True)
def _closed_at_the_end():
    yield
    if "app" in _fuzzed:
        _fuzzed["app"].state.models.close()
        _fuzzed["app"].state.manager.close()
    _root.cleanup()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    # Only too_slow, a check on the clock (a loaded machine draws examples slowly); the
    # others look at what is drawn, the same on every run (test_serve_schema says more).
    suppress_health_check=[HealthCheck.too_slow],
)
def test_the_new_routes_never_5xx_nor_answer_off_their_schema(case):
    # positive_data_acceptance left out: a schema-valid prompt may still be too many tokens
    # for max_tokens (400 naming it), which the schema cannot say.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_real_completions_match_the_schema():
    for body in (
        {"model": "bot", "prompt": PROMPT, "n": 2, "max_tokens": 6},
        {"model": RUN, "prompt": PROMPT, "max_tokens": 6, "stream": True},
    ):
        case = schema["/v1/completions"]["POST"].Case(body=body)
        answer = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        assert answer.status_code == 200, answer.text
    for path in ("/v1/models", "/api/v1/models"):
        answer = schema[path]["GET"].Case().call_and_validate()
        assert answer.status_code == 200 and "bot" in answer.text
