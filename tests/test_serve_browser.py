"""The web app end to end in a real browser: Debian's headless Chromium driven by Playwright.

``huggingtweets serve`` runs as a subprocess on a free port of 127.0.0.1, with a tiny GPT-2
built offline as the model given at start (so the page opens on step 3, and step 2 can
fine-tune it by name). The test then does what a user does: step 1 uploads a file of
posts that hold HTML (shown as text, nothing injected) and the real X export of smithjd as
a .zip; step 2 watches a long training (from a second tab too) and cancels it, then
trains a short one to the end; step 3 generates ten posts with their flags and share
links, and pushes the model to a fake Hub (the server has a token for it). Screenshots
of the three steps (desktop, and step 3 on a phone-sized screen) go to the test's
temporary folder, and are copied to $HUGGINGTWEETS_SCREENS when that names a folder (the
suite writes nothing outside its own space unless asked).

The walk-through runs twice, once per job backend: ``embedded`` (the server runs its jobs)
and ``redis`` (``serve --queue`` on a real redis-server started on a free loopback port,
the jobs run by a real ``huggingtweets worker`` process): the page must not tell them
apart. Without redis-server, rq or redis-py the Redis half is skipped, naming what is
missing (HUGGINGTWEETS_REQUIRE_REDIS=1: it fails instead).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

from conftest import ROOT  # noqa: E402
from exports import zip_folder  # noqa: E402
from fakes.hub import FakeHub, User  # noqa: E402
from test_serve_queue import RedisServer, need_redis, start_worker, stop_process  # noqa: E402

from huggingtweets.model.tiny import build_tiny_base  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
SCREENS_VARIABLE = "HUGGINGTWEETS_SCREENS"  # a folder that keeps the screenshots (optional)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
BASE_NAME = "tiny-base"
HUB_TOKEN = "hf_serveTestTokenOfAlice0123456789abc"
EPOCHS = "0.2"  # about a hundred steps of a one-layer model: seconds
LONG_EPOCHS = "100"  # long enough to watch, then cancelled
SERVER_START_S = 90
TRAIN_S = 120

# Every post holds HTML that a browser would run if it were inserted as HTML: the page
# must show it as text, whichever posts it picks to show.
MARKUP = (
    "<b>bold words</b>, <script>window.__pwned = 1</script>, "
    '<img src=x onerror="window.__pwned = 2">'
)
MARKUP_POSTS = [f"Post {i} about the garden and the weather with {MARKUP} in it" for i in range(60)]


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("HUGGINGTWEETS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing (set HUGGINGTWEETS_REQUIRE_BROWSER=1 to fail instead)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    pytest.fail(f"no /api/v1/health within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module", params=["embedded", "redis"])
def backend(request) -> str:
    """Which job backend the server runs: its own (embedded) or Redis + a worker."""
    return request.param


@pytest.fixture(scope="module")
def hub(backend):
    """A fake Hugging Face Hub on 127.0.0.1 (tests/fakes/hub.py), for the push button: one
    per backend, so that each walk-through pushes to an empty one."""
    with FakeHub({HUB_TOKEN: User("alice")}) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, hub, backend):
    """``huggingtweets serve TINY_BASE --runs-dir RUNS --port PORT``, with a Hugging Face
    token for the fake Hub (and, for the Redis backend, ``--queue URL`` with a
    ``huggingtweets worker`` on the same runs directory): its URL."""
    queue = None
    with contextlib.ExitStack() as stack:
        root = tmp_path_factory.mktemp(f"serve-{backend}")
        if backend == "redis":
            need_redis()
            redis = RedisServer(root / "redis")
            redis.start()
            stack.callback(redis.stop)
            queue = redis.url
            (root / "runs").mkdir()
            worker = start_worker(queue, root / "runs", root / "worker.log")
            stack.callback(stop_process, worker)
        yield from _serve(root, hub, queue)


def _serve(root: Path, hub, queue: str | None):
    texts = MARKUP_POSTS + [f"my dream is number {i} of a long day" for i in range(50)]
    base = build_tiny_base(
        texts, root / BASE_NAME, vocab_size=300, n_layer=1, n_head=2, n_embd=32, context=64
    )
    port = free_port()
    # The machine's Hugging Face settings and tokens left out, conftest's settings kept.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING_FACE"))
        and k not in ("HUGGINGTWEETS_API_TOKEN", "GRADIO_TEMP_DIR")  # the page's files: serve's
    }
    env.update(
        HF_ENDPOINT=hub.url,
        HF_TOKEN=HUB_TOKEN,
        HF_HOME=str(root / "hf-home"),  # no login file of the machine's
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    log = root / "server.log"
    command = [sys.executable, "-m", "huggingtweets", "serve", str(base)]
    command += ["--runs-dir", str(root / "runs"), "--port", str(port)]
    if queue is not None:
        command += ["--queue", queue]
    env.pop("HUGGINGTWEETS_QUEUE", None)
    with log.open("wb") as out:  # a session of its own: its worker process is in its group
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, log)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        left = stop_group(process.pid)
    # Stopped as asked (Ctrl-C while it serves: its normal end, cli/serve.py), not killed
    # nor interrupted (130 is Ctrl-C before it serves; health answered first, above).
    said = log.read_text(errors="replace")
    assert process.returncode == 0, said[-3000:]
    assert said.rstrip().endswith("Stopped."), said[-3000:]
    assert not left, "the server left its worker process running"
    # The page's copies of the files uploaded: in its server's folder (runs/.uploads/page-*,
    # GRADIO_TEMP_DIR as serve sets it), which goes with the server.
    kept = list((root / "runs" / ".uploads").glob("page-*"))
    assert not kept, f"the page's folder outlived the server: {[*kept[0].rglob('*')]}"


def stop_group(group: int, grace: float = 10.0) -> bool:
    """Whether processes of the group outlived its leader by ``grace`` s (then killed)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False  # all gone
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):  # gone meanwhile
        os.killpg(group, signal.SIGKILL)
    return True


@pytest.fixture
def uploads(smithjd, tmp_path) -> dict[str, Path]:
    markup = tmp_path / "markup-posts.txt"
    markup.write_text("\n".join(MARKUP_POSTS) + "\n", encoding="utf-8")
    return {"markup": markup, "export": zip_folder(smithjd, tmp_path / "smithjd-export.zip")}


def as_parsed(text: str) -> str:
    """Text as an HTML parser leaves it (line ends as LF, no NUL, no lone surrogate): a
    sample of a barely trained model holds any byte."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def shoot(page, name: str, folder: Path) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep(path)


def keep(path: Path) -> None:
    """A copy of the screenshot in $HUGGINGTWEETS_SCREENS, when it is set."""
    if kept := os.environ.get(SCREENS_VARIABLE):
        Path(kept).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(kept) / path.name)


def open_tab(page, number: int) -> None:
    page.get_by_role("tab", name=f"{number} ·").click()


def upload(page, path: Path, handle: str) -> None:
    """Step 1 with a file: choose it, name its account, collect; the statistics show. The
    page framework's copy of the file (downloadable from the page while it is there) is
    gone once collected: the job reads its own copy, removed when it ends."""
    open_tab(page, 1)
    page.locator("#upload input[type=file]").set_input_files(str(path))
    # The download link appears once the file is on the server.
    link = page.locator(f'#upload [data-testid=download-link][download="{path.name}"]')
    link.wait_for()
    url = urljoin(page.url, link.get_attribute("href"))
    copy = Path(unquote(url.split("/file=", 1)[1]))
    assert copy.is_file() and download_status(url) == 200, url
    assert copy.parent.parent.name.startswith("page-"), copy  # its server's (runs/.uploads)
    page.locator("#upload-handle input, #upload-handle textarea").first.fill(handle)
    page.locator("#collect").click()
    page.locator("#collect-status [data-state=succeeded]").wait_for(timeout=60_000)
    page.locator("#statistics").get_by_text(handle).first.wait_for()
    assert not copy.exists() and download_status(url) == 403, url


def download_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_three_steps_in_chromium(server, hub, uploads, tmp_path):
    executable = chromium()
    screens = tmp_path / "screens"
    screens.mkdir()
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server)
        try:
            walk_through(context, page, server, hub, uploads, screens)
        except BaseException:
            page.screenshot(path=str(screens / "failure.png"), full_page=True)
            keep(screens / "failure.png")
            raise
        assert errors == []
        shots = {"step1-accounts", "step2-train", "step3-generate", "step3-generate-phone"}
        assert {path.stem for path in screens.glob("*.png")} == shots
        # A file chosen and never collected: the page framework's copy stays until the
        # server stops (the server fixture checks that nothing of the page's is left).
        open_tab(page, 1)
        page.locator("#upload input[type=file]").set_input_files(str(uploads["markup"]))
        page.locator("#upload [data-testid=download-link]").wait_for()
        browser.close()


def walk_through(context, page, server: str, hub, uploads: dict[str, Path], screens: Path) -> None:
    # Given a model at start, the page opens on step 3 with it; a token: a push button.
    expect(page.get_by_role("tab", name="3 ·")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#model input")).to_have_value(BASE_NAME)
    expect(page.locator("#push")).to_be_visible()

    # Step 1, posts holding HTML: shown as text, nothing inserted or run.
    upload(page, uploads["markup"], "markup")
    examples = page.locator("#examples")
    expect(examples).to_contain_text(MARKUP)
    assert examples.locator("b, script, img").count() == 0
    assert page.evaluate("window.__pwned") is None

    # Step 1, the real X export as a .zip: the card's statistics and kept posts.
    upload(page, uploads["export"], "smithjd")
    statistics = page.locator("#statistics")
    expect(statistics).to_contain_text("1,758")  # posts in the export (test_x_export)
    expect(statistics).to_contain_text("kept")
    expect(page.locator("#examples")).to_contain_text("smithjd")
    expect(page.locator("#run input")).to_have_value(re.compile(r"^smithjd\b.* posts\)$"))
    shoot(page, "step1-accounts", screens)

    # Step 2: the CLI's defaults shown; a tiny base by the name the server serves it.
    open_tab(page, 2)
    base_model = page.locator("#base-model input, #base-model textarea").first
    expect(base_model).to_have_value("gpt2")
    expect(page.locator("#epochs input")).to_have_value("4")
    base_model.fill(BASE_NAME)

    # A long training first: its live progress, seen from a second tab too, then Cancel.
    page.locator("#epochs input").fill(LONG_EPOCHS)
    page.locator("#train").click()
    progress = page.locator("#train-progress")
    running = progress.locator("[data-state=running]", has_text="loss")
    failed = progress.locator("[data-state=failed]")
    running.or_(failed).wait_for(timeout=TRAIN_S * 1000)
    assert failed.count() == 0, failed.inner_text()
    expect(running).to_contain_text(re.compile(r"epoch [\d.]+ · step [\d,]+ / [\d,]+ · loss "))
    expect(running).to_contain_text(" left")
    expect(running.locator("progress")).to_have_attribute("max", re.compile(r"^\d+$"))
    job_id = progress.locator("[data-job]").get_attribute("data-job")
    shoot(page, "step2-train", screens)

    other = context.new_page()  # the job lives in the server, not in the page
    other.goto(server)
    expect(other.locator("#run input")).to_have_value(re.compile(r"^smithjd\b"))
    expect(other.get_by_role("tab", name="2 ·")).to_have_attribute("aria-selected", "true")
    expect(other.locator(f'#train-progress [data-job="{job_id}"]')).to_have_count(1)
    other.close()

    page.locator("#cancel").click()
    expect(progress.locator("[data-state=cancelled]")).to_contain_text(
        "Cancelled", timeout=TRAIN_S * 1000
    )

    # Then a short one, to the end.
    page.locator("#epochs input").fill(EPOCHS)
    page.locator("#train").click()
    expect(progress.locator("[data-job]")).not_to_have_attribute("data-job", job_id)

    # Done: the page moves on to step 3 with the trained run chosen.
    done = progress.locator("[data-state=succeeded]").or_(failed)
    done.wait_for(state="attached", timeout=TRAIN_S * 1000)  # step 2 is hidden by then
    assert failed.count() == 0, failed.inner_text()
    expect(page.get_by_role("tab", name="3 ·")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#model input")).to_have_value("smithjd")
    expect(page.locator("#preview img")).to_have_count(1, timeout=10_000)

    # Step 3 from the keyboard: the prompt's default, the Generate button by Enter.
    expect(page.locator("#prompt textarea, #prompt input").first).to_have_value("My dream is")
    page.locator("#generate").focus()
    page.keyboard.press("Enter")
    samples = page.locator("#generations li.ht-sample")
    expect(samples).to_have_count(10, timeout=30_000)
    shared = 0
    for i in range(10):
        sample = samples.nth(i)
        text = as_parsed(sample.locator(".ht-text").text_content())
        assert text.startswith("My dream is")
        flagged = sample.get_attribute("data-flagged")
        assert flagged in ("true", "false")
        flag = sample.locator(".ht-flag").inner_text()
        assert flag.startswith("⚠" if flagged == "true" else "✓"), flag
        links = sample.locator(".ht-share a")
        if flagged == "true":  # a copy of someone's words gets no share link
            assert links.count() == 0
            continue
        shared += 1
        hrefs = {
            css: sample.locator(f"a.share-{css}").get_attribute("href")
            for css in ("x", "bluesky", "mastodon")
        }
        assert hrefs["x"].startswith("https://x.com/intent/post?text=")
        assert hrefs["bluesky"].startswith("https://bsky.app/intent/compose?text=")
        assert urlsplit(hrefs["mastodon"]).path == "/share"
        for href in hrefs.values():
            assert " " not in href  # encoded
            shared_text = as_parsed(parse_qs(urlsplit(href).query)["text"][0])
            assert shared_text.startswith(text[:20]), (shared_text, text)
        for i_link in range(links.count()):
            link = links.nth(i_link)
            assert "noopener" in link.get_attribute("rel")
            assert link.get_attribute("target") == "_blank"
    assert shared > 0
    shoot(page, "step3-generate", screens)

    # A phone-sized screen: the same page, nothing wider than the screen.
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    shoot(page, "step3-generate-phone", screens)
    page.set_viewport_size(DESKTOP)

    # A prompt holding HTML comes back as text.
    prompt = page.locator("#prompt textarea, #prompt input").first
    prompt.fill('<b>bold</b> <img src=x onerror="window.__pwned = 3"> my dream')
    page.locator("#generate").click()
    expect(samples.first).to_contain_text("<b>bold</b>", timeout=30_000)
    assert page.locator("#generations b, #generations img").count() == 0
    assert page.evaluate("window.__pwned") is None

    # Push to the (fake) Hub: the model's files in alice/smithjd, the token nowhere.
    page.locator("#push").click()
    pushed = page.locator("#push-status a", has_text="alice/smithjd")
    expect(pushed).to_have_attribute("href", f"{hub.url}/alice/smithjd", timeout=60_000)
    assert {"config.json", "model.safetensors"} <= set(hub.files("alice/smithjd"))
    assert HUB_TOKEN not in page.content()


# -- what the page builds, without a browser ------------------------------------------------


def test_generations_are_text_with_their_flags_and_links():
    from huggingtweets.serve.ui import generations_html

    links = {
        "x": "https://x.com/intent/post?text=a%22b",
        "bluesky": "https://bsky.app/intent/compose?text=a",
        "mastodon": "javascript:alert(1)",  # never a link, whatever the service says
    }
    page = generations_html(
        {
            "checked": True,
            "samples": [
                {"text": "<b>hi</b> & bye", "flagged": False, "share": links},
                {"text": "copied", "flagged": True, "copy": {"why": "<i>90 %</i>"}, "share": None},
            ],
        }
    )
    assert "&lt;b&gt;hi&lt;/b&gt; &amp; bye" in page and "<b>" not in page
    assert "&lt;i&gt;90 %&lt;/i&gt;" in page and "<i>" not in page
    assert 'href="https://x.com/intent/post?text=a%22b"' in page
    assert 'class="share-bluesky"' in page and "javascript:" not in page
    assert page.count('data-flagged="true"') == 2  # the item and its flag
    assert page.count("<a ") == 2 and page.count('rel="noopener noreferrer"') == 2


def test_job_lines_say_queue_position_progress_and_errors_as_text():
    from huggingtweets.core.options import OptionError
    from huggingtweets.serve.ui import error_text, job_line, progress_html, statistics_table

    queued = {"kind": "train", "state": "queued", "position": 2}
    assert job_line(queued) == "Queued: position 2 in the queue (one training runs at a time)"
    running = {
        "id": "j1",
        "kind": "train",
        "state": "running",
        "progress": {
            "stage": "train",
            "step": 30,
            "total": 120,
            "loss": 4.25,
            "eta": 75.0,
            "epoch": 0.5,
        },
    }
    line = job_line(running)
    assert line == "Training · epoch 0.50 · step 30 / 120 · loss 4.250 · about 1 min 15 s left"
    bar = progress_html(running)
    assert '<progress max="120" value="30"' in bar and 'data-state="running"' in bar
    failed = progress_html({"id": "j2", "kind": "prepare", "state": "failed", "error": "<x> bad"})
    assert "Failed: &lt;x&gt; bad" in failed and "<x>" not in failed
    assert error_text(OptionError("base_model", "must be tiny")) == "Base model: must be tiny"
    table = statistics_table(
        [{"label": "Tweets kept", "values": {"a": 1200, "b": 3}, "total": 1203}], ["a", "b"]
    )
    assert table == {"headers": ["Data", "a", "b"], "data": [["Tweets kept", "1,200", "3"]]}


def test_push_button_only_with_a_token_and_the_token_never_on_the_page(tmp_path, monkeypatch):
    import json

    from huggingface_hub import constants

    from huggingtweets.serve.config import ServeConfig
    from huggingtweets.serve.manager import JobManager
    from huggingtweets.serve.models import ModelService
    from huggingtweets.serve.ui import build_ui

    token = "hf_" + "q" * 34
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # No stored login either (the paths are read once, when huggingface_hub is imported).
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "stored_tokens"))
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    config = ServeConfig(runs_dir=tmp_path / "runs")
    manager = JobManager(config)
    models = ModelService(manager.model_path)
    try:
        for env, shown in ((None, False), (token, True)):
            if env is None:
                monkeypatch.delenv("HF_TOKEN", raising=False)
            else:
                monkeypatch.setenv("HF_TOKEN", env)
            blocks = build_ui(manager, models, config)
            page = blocks.get_config_file()
            (push,) = [c for c in page["components"] if c["props"].get("elem_id") == "push"]
            assert push["props"]["visible"] is shown
            assert token not in json.dumps(page, default=repr)
    finally:
        models.close()
        manager.close()
