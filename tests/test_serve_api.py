"""The JSON API of ``huggingtweets serve`` (serve.api over serve.manager): runs from
accounts and uploads, their statistics, bad input answered 4xx naming the field, the
token off loopback, and a real training of a tiny model in the worker process, seen
through GET and the event stream, with a queue, a 409 and cancellations."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from conftest import run_cli, shared_data
from fastapi.testclient import TestClient

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.serve.api import create_app
from huggingtweets.serve.config import ServeConfig
from huggingtweets.train.options import MAX_STEPS

API = "/api/v1"
# Configured secrets: none may ever come back in an answer (checked on every answer).
SECRETS = {
    "HF_TOKEN": "hf_serveApiTestSecret0123456789",
    "MASTODON_ACCESS_TOKEN": "mastodonServeSecret9876543210",
    "WANDB_API_KEY": "wandbServeSecretKey0123456789abcdef",
}
API_TOKEN = "serve-api-test-token-0123456789abcdef"
# A tiny model (built offline from the run's posts), a few small steps.
TINY = {"base_model": "tiny", "max_steps": 4, "per_device_train_batch_size": 2, "block_size": 32}
ENDED = ("succeeded", "failed", "cancelled")


@dataclass
class Api:
    """The test client, recording every answer (to look for secrets in them later)."""

    client: TestClient
    runs_dir: Path
    answers: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, **kwargs):
        response = self.client.request(method, path, **kwargs)
        self.answers.append(response.text + json.dumps(dict(response.headers)))
        assert "Traceback" not in response.text
        return response

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.call("POST", path, **kwargs)

    def wait(self, job_id: str, until=lambda job: job["state"] in ENDED, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(f"{API}/jobs/{job_id}").json()
            if until(job) or job["state"] in ENDED:
                return job
            assert time.monotonic() < deadline, f"job still {job['state']}: {job}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        for name, value in SECRETS.items():
            env.setenv(name, value)  # before the worker process starts: it inherits them
        runs_dir = tmp_path_factory.mktemp("serve") / "runs"
        app = create_app(ServeConfig(runs_dir=runs_dir), ui=False)
        with TestClient(app) as client:  # the lifespan closes the jobs and models at the end
            yield Api(client, runs_dir)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], list) and body["detail"], body
    return body["detail"][0]


def _prepared(api: Api, body: dict) -> dict:
    answer = api.post(f"{API}/runs", json=body)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["kind"] == "prepare" and job["state"] in ("queued", "running", "succeeded")
    done = api.wait(job["id"])
    assert done["state"] == "succeeded", done
    return done


@pytest.fixture(scope="module")
def romeo(api) -> str:
    return _prepared(api, {"sources": ["sample:romeo"]})["run_id"]


@pytest.fixture(scope="module")
def speeches() -> list[str]:
    """300 real lines of tiny Shakespeare, each of 4 words or more (so prepare keeps all)."""
    text = shared_data("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    kept = list(dict.fromkeys(line for line in lines if len(line.split()) >= 4))
    return kept[:300]


def _upload(api: Api, name: str, data: bytes, **fields):
    return api.post(f"{API}/runs/upload", files={"file": (name, data)}, data=fields)


@pytest.fixture(scope="module")
def bard(api, speeches) -> str:
    answer = _upload(api, "bard posts.txt", "\n".join(speeches).encode(), handle="bard")
    assert answer.status_code == 202, answer.text
    done = api.wait(answer.json()["id"])
    assert done["state"] == "succeeded", done
    return done["run_id"]


# -- reading ------------------------------------------------------------------------------


def test_health_is_ok_and_versioned(api):
    from huggingtweets import __version__

    answer = api.get(f"{API}/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "version": __version__}


def test_a_run_from_an_account_has_the_cards_statistics_and_examples(api, romeo):
    run = api.get(f"{API}/runs/{romeo}").json()
    assert run["id"] == romeo == "romeo" and run["handles"] == ["romeo"]
    assert run["has_model"] is False
    rows = {row["label"]: row for row in run["statistics"]}
    stats = json.loads((api.runs_dir / romeo / "dataset" / "stats.json").read_text())
    account = stats["accounts"][0]
    assert rows["Posts downloaded"]["values"] == {"romeo": account["downloaded"]}
    assert rows["Posts kept"]["values"] == {"romeo": account["kept"]} and account["kept"] > 0
    assert run["posts"] == account["kept"]
    trained = {
        json.loads(line)["text"]
        for line in (api.runs_dir / romeo / "dataset" / "train.jsonl").read_text().splitlines()
    }
    examples = run["examples"]["romeo"]
    assert examples and all(_kept_post(text, trained) for text in examples), examples
    listed = {r["id"]: r for r in api.get(f"{API}/runs").json()}
    assert listed[romeo]["posts"] == account["kept"] and listed[romeo]["has_model"] is False
    assert any(job["kind"] == "prepare" for job in run["jobs"])


def _kept_post(example: str, kept: set[str]) -> bool:
    """An example is a kept post, or its first 500 characters saying how long it is."""
    if example in kept:
        return True
    start, _, marker = example.partition("… [shortened: ")
    return len(start) == 500 and any(
        text.startswith(start) and marker == f"{len(text):,} characters in all]" for text in kept
    )


def test_a_run_from_an_uploaded_file(api, bard, speeches):
    run = api.get(f"{API}/runs/{bard}").json()
    assert run["handles"] == ["bard"]
    rows = {row["label"]: row["values"] for row in run["statistics"]}
    kept = next(values for label, values in rows.items() if "kept" in label.lower())
    assert kept == {"bard": len(speeches)}  # every line of 4+ words is a post kept
    assert run["examples"]["bard"] and set(run["examples"]["bard"]) <= set(speeches)
    # The upload lived in a folder of its own, removed with the job.
    assert not any((api.runs_dir / ".uploads").iterdir())


def test_an_upload_with_too_little_text_fails_in_one_line(api):
    answer = _upload(api, "few.txt", b"one two three four\nfive six seven eight\n")
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["id"])
    assert job["state"] == "failed"
    assert "6,000 characters" in job["error"] and "\n" not in job["error"]


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("../evil.txt", b"x y z w\n" * 10, "plain file name"),
        ("a/b.txt", b"x y z w\n", "plain file name"),
        (".hidden.txt", b"x y z w\n", "plain file name"),
        ("tool.exe", b"MZ", "expected an X or Mastodon export"),
        ("export.zip", b"this is not a zip file", "export.zip"),
    ],
)
def test_uploads_are_checked_before_anything_runs(api, name, data, problem):
    jobs_before = len(api.get(f"{API}/jobs").json())
    error = _error(_upload(api, name, data), 422)
    assert error["loc"] == ["body", "file"] and problem in error["msg"]
    assert str(api.runs_dir) not in error["msg"]  # where the server keeps files: not said
    assert len(api.get(f"{API}/jobs").json()) == jobs_before
    assert not (api.runs_dir.parent / "evil.txt").exists()


def test_an_uploads_handle_is_checked(api):
    error = _error(_upload(api, "posts.txt", b"x y z w\n", handle="../x"), 422)
    assert error["loc"] == ["body", "handle"]


def test_an_upload_over_the_limit_is_413(tmp_path):
    app = create_app(ServeConfig(runs_dir=tmp_path / "runs", max_upload_bytes=1000), ui=False)
    with TestClient(app) as client:
        # Over the limit: the file refused as it is copied; far over: the body, unread.
        for size in (1001, 100_000):
            answer = client.post(f"{API}/runs/upload", files={"file": ("big.txt", b"w" * size)})
            assert answer.status_code == 413 and answer.json()["detail"][0]["loc"][0] == "body"
        answer = client.post(f"{API}/runs/upload", content=b"{}")  # not multipart at all
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "file"]
    assert not (tmp_path / "runs" / "big").exists()


@pytest.mark.parametrize(
    ("path", "status", "loc"),
    [
        # Not a run id (the path's own check, before the runs folder is looked at): 422.
        (f"{API}/runs/%2e%2e", 422, ["path", "run_id"]),
        (f"{API}/runs/.hidden", 422, ["path", "run_id"]),
        (f"{API}/runs/%2e%2e/train", 422, ["path", "run_id"]),
        # An encoded slash: more than one segment, so no route at all (no run looked up).
        (f"{API}/runs/..%2f..%2fetc", 404, []),
        (f"{API}/runs/a%2Fb", 404, []),
    ],
)
def test_run_ids_cannot_leave_the_runs_folder(api, path, status, loc):
    method = "POST" if path.endswith("/train") else "GET"
    answer = api.call(method, path, json={"base_model": "tiny"} if method == "POST" else None)
    assert _error(answer, status)["loc"] == loc, answer.text


def test_paths_on_the_server_are_not_sources(api, tmp_path):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("a private line of text\n" * 400)
    messages = []
    for spec in (str(secret_file), str(tmp_path / "missing.txt")):
        error = _error(api.post(f"{API}/runs", json={"sources": [spec]}), 422)
        assert error["loc"] == ["body", "sources"]
        messages.append(error["msg"].replace(spec, "SPEC"))
    assert messages[0] == messages[1]  # whether a file exists is not told either
    escape = {"sources": ["sample:romeo"], "run_id": "../x"}
    assert _error(api.post(f"{API}/runs", json=escape), 422)["loc"] == ["body", "run_id"]


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/generate", b'{"model": "romeo", ', ["body"]),  # malformed JSON
        ("/generate", b"\xff\xfe{}", ["body"]),  # not even text
        ("/generate", {"model": "romeo", "n": "5"}, ["body", "n"]),  # wrong type
        ("/generate", {"model": "romeo", "n": 21}, ["body", "n"]),
        ("/generate", {"model": "romeo", "n": 0}, ["body", "n"]),
        ("/generate", {"model": "romeo", "max_length": 513}, ["body", "max_length"]),
        ("/generate", {"model": "romeo", "prompt": "x" * 1001}, ["body", "prompt"]),
        ("/generate", {"model": "romeo", "prompt": "   "}, ["body", "prompt"]),
        ("/generate", {"model": "romeo", "temperature": 0}, ["body", "temperature"]),
        ("/generate", {"model": "romeo", "top_p": 1.5}, ["body", "top_p"]),
        ("/generate", {"model": "romeo", "no_copies": "yes"}, ["body", "no_copies"]),
        ("/generate", {"model": "romeo", "evil": 1}, ["body", "evil"]),  # unknown field
        ("/generate", {"prompt": "My dream is"}, ["body", "model"]),  # missing
        ("/generate", [1, 2], ["body"]),
        ("/runs", {"sources": []}, ["body", "sources"]),
        ("/runs", {"sources": ["sample:a", "sample:b", "sample:c", "x:d"]}, ["body", "sources"]),
        ("/runs", {"sources": "sample:romeo"}, ["body", "sources"]),
        ("/runs", {"sources": ["sample:romeo"], "handles": ["../x"]}, ["body", "handles"]),
        ("/runs/romeo/train", {"epochs": -1}, ["body", "epochs"]),
        ("/runs/romeo/train", {"max_steps": 0}, ["body", "max_steps"]),
        ("/runs/romeo/train", {"max_steps": 2**62}, ["body", "max_steps"]),  # holds the worker
        ("/runs/romeo/train", {"warmup_steps": 10**9}, ["body", "warmup_steps"]),
        ("/runs/romeo/train", {"base_model": "/etc"}, ["body", "base_model"]),
        ("/runs/romeo/train", {"base_model": "../../model"}, ["body", "base_model"]),
        ("/runs/romeo/train", {"trust_pickle": True}, ["body", "trust_pickle"]),
        ("/runs/romeo/train", {"report_to": ["wandb"]}, ["body", "report_to"]),
        ("/runs/romeo/train", {"report_to": "mlflow"}, ["body", "report_to"]),
        ("/runs/romeo/train", {"lora": "yes"}, ["body", "lora"]),
        ("/runs/romeo/train", {"lr_scheduler_type": "bogus"}, ["body", "lr_scheduler_type"]),
        ("/runs/romeo/train", {"epochs": 1, "num_train_epochs": 2}, ["body", "epochs"]),
        ("/runs/upload/train", {"base_model": "tiny"}, ["path", "run_id"]),  # a reserved name
    ],
)
def test_bad_bodies_are_422_naming_the_field(api, romeo, path, body, loc):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    headers = {"content-type": "application/json"}
    error = _error(api.post(API + path, headers=headers, **kwargs), 422)
    assert error["loc"][: len(loc)] == loc, error
    assert error["msg"]


def test_unknown_runs_jobs_and_models_are_404(api, romeo):
    unknown_job = "0123456789abcdef"
    assert _error(api.get(f"{API}/runs/no-such-run"), 404)["loc"] == ["path", "run_id"]
    train = api.post(f"{API}/runs/no-such-run/train", json={"base_model": "tiny"})
    assert _error(train, 404)["loc"] == ["path", "run_id"]
    for answer in (
        api.get(f"{API}/jobs/{unknown_job}"),
        api.get(f"{API}/jobs/{unknown_job}/events"),
        api.post(f"{API}/jobs/{unknown_job}/cancel"),
    ):
        assert _error(answer, 404)["loc"] == ["path", "job_id"]
    for model in ("no-such-model", romeo, "../romeo/model", "/etc"):  # romeo: no model yet
        answer = api.post(f"{API}/generate", json={"model": model, "n": 1})
        assert _error(answer, 404)["loc"] == ["body", "model"]


def test_a_secret_in_a_request_is_not_echoed(api):
    secret = SECRETS["HF_TOKEN"]
    error = _error(api.post(f"{API}/runs", json={"sources": [secret]}), 422)
    assert secret not in error["msg"] and "***" in error["msg"]


# -- the token --------------------------------------------------------------------------------


def test_off_loopback_every_route_but_health_needs_the_token(tmp_path):
    with pytest.raises(HuggingtweetsError, match="HUGGINGTWEETS_API_TOKEN"):
        create_app(ServeConfig(runs_dir=tmp_path, host="0.0.0.0"), ui=False)
    config = ServeConfig(runs_dir=tmp_path, host="0.0.0.0", token=API_TOKEN)
    assert API_TOKEN not in repr(config)
    answers = []
    with TestClient(create_app(config, ui=False)) as client:
        health = client.get(f"{API}/health")
        assert health.status_code == 200
        for path in (f"{API}/runs", f"{API}/jobs", "/openapi.json", "/docs"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
                answer = client.get(path, headers=headers)
                answers.append(answer)
                assert answer.status_code == 401, (path, headers)
                assert answer.headers["www-authenticate"] == "Bearer"
                assert answer.json()["detail"][0]["loc"] == ["header", "authorization"]
            answer = client.get(path, headers={"Authorization": f"Bearer {API_TOKEN}"})
            answers.append(answer)
            assert answer.status_code == 200, path
        refused = client.post(f"{API}/generate", json={"model": "x"})
        assert refused.status_code == 401  # before the body is even read
    for answer in answers:
        assert API_TOKEN not in answer.text + json.dumps(dict(answer.headers))


def test_off_loopback_the_ui_asks_for_the_token_as_its_password(tmp_path):
    pytest.importorskip("gradio")
    config = ServeConfig(runs_dir=tmp_path, host="0.0.0.0", token=API_TOKEN)
    with TestClient(create_app(config)) as client:
        assert client.get("/config").status_code == 401  # Gradio's own routes
        assert client.post("/login", data={"username": "me", "password": "no"}).status_code == 400
        login = client.post("/login", data={"username": "me", "password": API_TOKEN})
        assert login.status_code == 200 and API_TOKEN not in login.text
        assert client.get("/config").status_code == 200
        assert client.get(f"{API}/runs").status_code == 401  # the API still wants the header


def test_on_loopback_requests_to_other_host_names_are_refused(api):
    """A web page cannot reach the local server through DNS rebinding."""
    answer = api.get(f"{API}/runs", headers={"host": "attacker.example:7860"})
    assert _error(answer, 400)["loc"] == ["header", "host"]
    assert api.get(f"{API}/runs", headers={"host": "127.0.0.1:7860"}).status_code == 200


# -- training ---------------------------------------------------------------------------------


def _events(stream_text: str) -> list[tuple[str, dict]]:
    events = []
    for block in stream_text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


@dataclass
class Trainings:
    blocker: dict
    blocker_running: dict
    first: dict
    busy: object
    third: dict
    third_cancelled: dict
    first_after_cancel: dict
    blocker_cancelled: dict
    stream: object
    events: list
    final: dict


@pytest.fixture(scope="module")
def trainings(api, romeo, bard) -> Trainings:
    """A blocker (as many steps as a training may have) holds the worker until it is
    cancelled: seen running over GET once it reports a step, so the positions taken behind
    it are 1 and 2 whatever the machine's speed. The third, queued, is cancelled there;
    then the blocker, after its step; the first then runs to its end, followed over the
    event stream."""
    juliet = _prepared(api, {"sources": ["sample:juliet"]})["run_id"]
    blocker = api.post(f"{API}/runs/{juliet}/train", json={**TINY, "max_steps": MAX_STEPS})
    assert blocker.status_code == 202, blocker.text
    blocker = blocker.json()
    blocker_running = api.wait(blocker["id"], lambda job: (job["progress"] or {}).get("step"))
    first = api.post(f"{API}/runs/{romeo}/train", json={**TINY, "epochs": 1})
    assert first.status_code == 202, first.text
    first = first.json()
    busy = api.post(f"{API}/runs/{romeo}/train", json=TINY)  # romeo: held by the first
    third = api.post(f"{API}/runs/{bard}/train", json=TINY).json()
    third_cancelled = api.post(f"{API}/jobs/{third['id']}/cancel").json()
    first_after_cancel = api.get(f"{API}/jobs/{first['id']}").json()
    api.post(f"{API}/jobs/{blocker['id']}/cancel")
    blocker_cancelled = api.wait(blocker["id"])
    # TestClient answers once the stream has ended: with the job.
    stream = api.get(f"{API}/jobs/{first['id']}/events")
    final = api.get(f"{API}/jobs/{first['id']}").json()
    return Trainings(
        blocker,
        blocker_running,
        first,
        busy,
        third,
        third_cancelled,
        first_after_cancel,
        blocker_cancelled,
        stream,
        _events(stream.text),
        final,
    )


def test_a_training_is_seen_through_get_and_the_event_stream(api, trainings, romeo):
    assert trainings.first["kind"] == "train" and trainings.first["run_id"] == romeo
    seen = trainings.blocker_running  # GET while it trains (it runs until cancelled)
    assert seen["state"] == "running" and seen["progress"]["stage"] == "train", seen
    assert seen["progress"]["total"] == MAX_STEPS and seen["progress"]["step"] >= 1, seen
    stream = trainings.stream
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    kinds = [kind for kind, _ in trainings.events]
    assert kinds[-1] == "end" and set(kinds[:-1]) <= {"job"}
    ended = trainings.events[-1][1]
    assert ended["state"] == "succeeded" and ended["error"] is None
    steps = [
        job["progress"]["step"]
        for _, job in trainings.events
        if job["progress"] and job["progress"]["stage"] == "train" and job["progress"]["step"]
    ]
    assert steps == sorted(steps) and steps[-1] == TINY["max_steps"]
    assert any((job["progress"] or {}).get("loss") for _, job in trainings.events)
    assert trainings.final == ended
    assert api.get(f"{API}/runs/{romeo}").json()["has_model"] is True
    assert (api.runs_dir / romeo / "model" / "config.json").is_file()


def test_a_second_training_of_a_run_is_409(trainings):
    busy = trainings.busy
    assert busy.status_code == 409 and busy.json()["detail"][0]["loc"] == ["path", "run_id"]


def test_trainings_queue_with_their_position_and_cancel(api, trainings):
    first, third = trainings.first, trainings.third
    assert trainings.blocker_running["position"] is None  # running: not waiting
    assert first["state"] == "queued" and first["position"] == 1, first
    assert third["state"] == "queued" and third["position"] == 2, third
    assert trainings.third_cancelled["state"] == "cancelled"
    assert trainings.third_cancelled["position"] is None
    assert trainings.first_after_cancel["state"] == "queued", trainings.first_after_cancel
    assert trainings.first_after_cancel["position"] == 1
    # Never started: no progress, no model.
    third_now = api.get(f"{API}/jobs/{third['id']}").json()
    assert third_now["state"] == "cancelled" and third_now["progress"] is None
    # The running one stopped after a step, keeping its checkpoint, not a model.
    blocker = trainings.blocker_cancelled
    assert blocker["state"] == "cancelled" and blocker["error"] is None, blocker
    assert 1 <= blocker["progress"]["step"] < MAX_STEPS
    run_dir = api.runs_dir / blocker["run_id"]
    assert list((run_dir / "checkpoints").glob("checkpoint-*"))
    assert not (run_dir / "model").exists()
    listed = {job["id"]: job["state"] for job in api.get(f"{API}/jobs").json()}
    assert listed[third["id"]] == "cancelled" and listed[first["id"]] == "succeeded"
    assert listed[trainings.blocker["id"]] == "cancelled"


def test_the_trained_run_generates(api, trainings, romeo):
    answer = api.post(f"{API}/generate", json={"model": romeo, "n": 3, "max_length": 24, "seed": 7})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["model"] == romeo  # the name, not where the server keeps it
    assert result["seed"] == 7 and len(result["samples"]) == 3
    for sample in result["samples"]:
        assert isinstance(sample["text"], str) and isinstance(sample["flagged"], bool)
        if not sample["flagged"]:
            assert set(sample["share"]) == {"x", "bluesky", "mastodon"}
    again = api.post(f"{API}/generate", json={"model": romeo, "n": 3, "max_length": 24, "seed": 7})
    assert again.json()["samples"] == result["samples"]  # the seed reproduces them


def test_a_trained_runs_dataset_is_replaced_only_when_overwrite_is_asked(api, trainings, romeo):
    """POST /runs naming a trained run: 409 without overwrite (nothing changed); with
    overwrite (in the OpenAPI schema), the new accounts' dataset, and nothing trained on
    the old one left to describe it: no model, card, metrics or checkpoints, no model to
    generate from until it is trained again."""
    import shutil

    schema = api.get("/openapi.json").json()["components"]["schemas"]["CreateRun"]
    field = schema["properties"]["overwrite"]
    assert field["type"] == "boolean" and field["default"] is False
    assert "409" in field["description"] and "removed" in field["description"]
    run_dir = shutil.copytree(api.runs_dir / romeo, api.runs_dir / "romeo-replaced")
    (run_dir / "checkpoints" / "checkpoint-2").mkdir(parents=True, exist_ok=True)
    stats = (run_dir / "dataset" / "stats.json").read_bytes()
    body = {"sources": ["sample:juliet"], "run_id": run_dir.name}

    refused = _error(api.post(f"{API}/runs", json=body), 409)
    assert refused["loc"] == ["body", "run_id"] and "overwrite" in refused["msg"], refused
    assert (run_dir / "dataset" / "stats.json").read_bytes() == stats
    assert (run_dir / "model" / "config.json").is_file()
    no_run = _error(api.post(f"{API}/runs", json={**body, "run_id": None, "overwrite": True}), 422)
    assert no_run["loc"] == ["body", "overwrite"], no_run

    answer = api.post(f"{API}/runs", json={**body, "overwrite": True})
    assert answer.status_code == 202, answer.text
    assert api.wait(answer.json()["id"])["state"] == "succeeded"
    run = api.get(f"{API}/runs/{run_dir.name}").json()
    assert run["handles"] == ["juliet"] and run["has_model"] is False, run
    left = {"model", "metrics.json", "evaluation.json", "checkpoints"} & {
        p.name for p in run_dir.iterdir()
    }
    assert left == set(), left
    generate = api.post(f"{API}/generate", json={"model": run_dir.name, "n": 1})
    assert generate.status_code == 404, generate.text


def test_a_training_whose_process_dies_fails_in_one_line(api, trainings, bard):
    """Killed from outside (out of memory, say): the job fails with one line, and the
    server stays up."""
    # As many steps as a training may have: still running when it is killed.
    job = api.post(f"{API}/runs/{bard}/train", json={**TINY, "max_steps": MAX_STEPS}).json()
    running = api.wait(job["id"], lambda job: job["state"] == "running")
    assert running["state"] == "running", running
    worker = api.client.app.state.manager.queue.worker.process
    worker.kill()
    failed = api.wait(job["id"])
    assert failed["state"] == "failed" and "ended unexpectedly" in failed["error"]
    assert "\n" not in failed["error"]
    assert api.get(f"{API}/health").status_code == 200


# -- the command ------------------------------------------------------------------------------


def test_serve_refuses_a_public_host_without_a_token(monkeypatch, tmp_path):
    monkeypatch.delenv("HUGGINGTWEETS_API_TOKEN", raising=False)
    result = run_cli("serve", "--host", "0.0.0.0", "--runs-dir", tmp_path, expect=2)
    assert "HUGGINGTWEETS_API_TOKEN" in result.stderr and len(result.stderr.splitlines()) == 1
    monkeypatch.setenv("HUGGINGTWEETS_API_TOKEN", "short")
    result = run_cli("serve", "--host", "0.0.0.0", "--runs-dir", tmp_path, expect=2)
    assert "too short" in result.stderr and len(result.stderr.splitlines()) == 1


def test_serve_says_in_one_line_that_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", port, "--runs-dir", tmp_path, expect=2)
    assert f"port {port} is in use" in result.stderr and len(result.stderr.splitlines()) == 1


def test_serve_serves_until_ctrl_c(tmp_path):
    """The real command: uvicorn on a free port, the URL printed, health answered, and a
    clean stop on SIGINT (the lifespan closes the jobs and models)."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "huggingtweets", "serve", "--port", "0"]
    server = subprocess.Popen(
        [*command, "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = server.stdout.readline()
        assert first.startswith("Serving huggingtweets on http://127.0.0.1:"), first
        url = first.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "api/v1/health", timeout=30) as answer:
            assert json.loads(answer.read())["status"] == "ok"
        # A job's events over real HTTP (uvicorn streams them through the guard).
        create = urllib.request.Request(
            url + "api/v1/runs",
            data=json.dumps({"sources": ["sample:romeo"]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(create, timeout=30) as answer:
            job = json.loads(answer.read())
        with urllib.request.urlopen(f"{url}api/v1/jobs/{job['id']}/events", timeout=60) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            events = _events(answer.read().decode())
        assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "Traceback" not in server.stderr.read()


# -- last: nothing secret in any answer --------------------------------------------------------


def test_no_answer_held_a_secret(api, trainings):
    assert len(api.answers) > 50
    for answer in api.answers:
        for secret in (*SECRETS.values(), API_TOKEN):
            assert secret not in answer


def test_ctrl_c_answers_waiting_generate_requests_503_and_prints_no_traceback(tmp_path):
    """The real command serving a tiny model, 12 long generate requests in flight (one
    served at a time), then SIGINT: each client gets its posts or a 503 JSON "shutting
    down" with Retry-After, and the terminal no traceback."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import urllib.error
    import urllib.request

    from huggingtweets.model.tiny import build_tiny_base

    texts = ["O Romeo, Romeo! wherefore art thou Romeo?", "Parting is such sweet sorrow."] * 20
    model = build_tiny_base(texts, tmp_path / "bot", vocab_size=262, n_layer=2, n_embd=32)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "huggingtweets", "serve", str(model), "--port", "0"]
    server = subprocess.Popen(
        [*command, "--runs-dir", str(tmp_path / "runs"), "--max-batch", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    answers: list[tuple[int, str, str]] = []

    def ask(url: str) -> None:
        body = {"model": "bot", "prompt": "O", "n": 20, "max_length": 512, "temperature": 1.5}
        request = urllib.request.Request(
            url + "api/v1/generate",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                answers.append((answer.status, answer.headers["content-type"], ""))
        except urllib.error.HTTPError as error:
            retry = error.headers.get("retry-after") or ""
            answers.append((error.code, error.headers["content-type"], error.read().decode()))
            answers[-1] = (*answers[-1][:2], answers[-1][2] + f" retry-after={retry}")
        except OSError as error:  # no answer at all
            answers.append((0, "", repr(error)))

    try:
        first = server.stdout.readline()
        url = first.split(" on ", 1)[1].split()[0]
        clients = [threading.Thread(target=ask, args=(url,)) for _ in range(12)]
        for client in clients:
            client.start()
        time.sleep(3)  # every request in: one generating, the rest waiting
        server.send_signal(signal.SIGINT)
        for client in clients:
            client.join(120)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    stderr = server.stderr.read()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(answers) == 12, answers
    refused = [a for a in answers if a[0] != 200]
    assert refused, answers  # some were still waiting
    for status, kind, text in refused:
        assert status == 503 and kind == "application/json", (status, kind, text)
        assert "shutting down" in text and "retry-after=" in text and "retry-after= " not in text
        assert "\n" not in text.strip()
