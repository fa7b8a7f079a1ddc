"""The model card (README.md + preview.png): layout, numbers, and escaping of user strings."""

from __future__ import annotations

import http.server
import itertools
import json
import re
import shutil
import socketserver
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import run_cli
from demo_run import copy_model, demo_run
from exports import sentences, tweet, write_x_export
from huggingface_hub import metadata_load
from PIL import Image

from huggingtweets.card.model_card import css_url, main_language, md_text, write_card
from huggingtweets.card.preview import colour_for, fetch_avatar
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.language import detect_language
from huggingtweets.model.memorization import GUARD_FILE

SEED_KEYS = {"language", "thumbnail", "tags", "widget"}
EVIL_NAME = "</div><script>alert(1)</script>"
YAML_BREAKER = '"\n---\nfoo: bar'


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run(tmp_path_factory)


def read_card(run_dir: Path) -> str:
    raw = (run_dir / "model" / "README.md").read_bytes()
    return raw.decode("utf-8")  # valid UTF-8, or this raises


def html_block(card: str) -> str:
    start = card.index('<div class="inline-flex')
    end = card.index("\n\n", start)  # a blank line ends an HTML block in Markdown
    return card[start:end]


class Outline(HTMLParser):
    """Tags, attributes and text of an HTML fragment, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self.depth = 0
        self.max_depth = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)

    def handle_endtag(self, tag):
        self.depth -= 1

    def handle_data(self, data):
        if data.strip():
            self.texts.append(data.strip())


def table(card: str, header_start: str) -> list[list[str]]:
    """The Markdown table whose header starts with ``header_start``, as rows of cells."""
    lines = card[card.index(header_start) :].splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(cells)
    return [rows[0], *rows[2:]]  # without the --- separator


def test_demo_card_follows_the_newer_seed_layout(demo):
    card = read_card(demo.run_dir)
    assert "ðŸ" not in card and "🤖 AI CYBORG 🤖" in card

    meta = metadata_load(demo.model_dir / "README.md")
    assert meta.keys() >= SEED_KEYS
    assert meta["language"] == "en"
    assert meta["tags"] == ["huggingtweets"]
    assert meta["widget"] == [{"text": "My dream is"}]
    assert meta["pipeline_tag"] == "text-generation"
    assert meta["library_name"] == "transformers"
    assert "base_model" not in meta  # tiny: no Hub id to name (the Hub validates it)
    assert meta["thumbnail"].endswith("/huggingtweets/romeo-juliet/resolve/main/preview.png")

    outline = Outline(html_block(card))
    avatars = [a["style"] for t, a in outline.tags if "border-radius: 50%" in a.get("style", "")]
    assert [s.startswith("display:inherit") for s in avatars] == [True, True, False]
    assert outline.texts == ["🤖 AI CYBORG 🤖", "Romeo & Juliet", "@romeo-juliet"]
    for i in (1, 2):  # no avatar URL in the sample: initials pictures beside the card
        assert f"resolve/main/avatar-{i}.png" in avatars[i - 1]
        assert Image.open(demo.model_dir / f"avatar-{i}.png").size == (184, 184)

    for heading in ("Training data", "Training procedure", "Sample generations", "How to use"):
        assert f"\n## {heading}\n" in card
    assert "model='huggingtweets/romeo-juliet'" in card
    assert 'generator("My dream is", num_return_sequences=5)' in card
    assert "## Limitations and bias" in card
    # Every training draws its loss curve (train.recipe), and the card shows it.
    assert (demo.model_dir / "loss_curve.png").is_file()
    assert "\n![Loss curve](loss_curve.png)\n" in card

    with Image.open(demo.model_dir / "preview.png") as preview:
        assert preview.format == "PNG" and preview.size == (1200, 630)


def test_card_table_equals_stats_json(demo):
    card = read_card(demo.run_dir)
    stats = json.loads((demo.run_dir / "dataset/stats.json").read_text())
    header, *rows = table(card, "| Data |")
    assert header == ["Data", "Romeo", "Juliet"]
    values = {label: [int(v) for v in cells] for label, *cells in rows}
    # The sample is no platform: the generic words. Categories that are zero for every
    # account (private, replies, ...) are left out, as in the seeds.
    expected = {
        "Posts downloaded": "downloaded",
        "Reposts": "retweets",
        "Short posts": "short",
        "Posts kept": "kept",
    }
    assert list(values) == list(expected)
    for label, key in expected.items():
        assert values[label] == [a[key] for a in stats["accounts"]]


def test_the_min_words_row_names_the_run_s_setting_not_a_flag(demo, tmp_path):
    """Posts dropped by min_words: the row says the run's setting and its value (a card
    is read by people who never ran the command, and an update gives no such flag)."""
    run = tmp_path / "run"
    run_cli("prepare", "sample:romeo", "--out", run, "--min-words", "6")
    copy_model(demo, run)
    run_cli("card", run, "--samples", "0")
    stats = json.loads((run / "dataset/stats.json").read_text())
    _, *rows = table(read_card(run), "| Data |")
    values = {label: [int(v) for v in cells] for label, *cells in rows}
    below = [a["below_min_words"] for a in stats["accounts"]]
    assert below[0] > 0 and values["Posts under 6 words (min\\_words)"] == below  # Markdown
    assert "--min-words" not in read_card(run)
    del stats["options"]  # a stats.json without the setting: named, no value made up
    (run / "dataset/stats.json").write_text(json.dumps(stats))
    run_cli("card", run, "--samples", "0")
    _, *rows = table(read_card(run), "| Data |")
    assert ["Posts under min\\_words", *map(str, below)] in rows


def test_a_folder_at_the_card_s_place_is_named_not_a_temporary_file(demo, tmp_path):
    """model/README.md is a folder: the card, written to a temporary file then renamed,
    cannot take its place; the error names README.md (what the user can move), not the
    temporary file's name (gone already), and nothing is left behind."""
    run = tmp_path / "run"
    shutil.copytree(demo.run_dir, run)
    card = run / "model" / "README.md"
    card.unlink()
    card.mkdir()
    result = run_cli("card", run, "--samples", "0", expect=None)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"Error: {card} is a folder where a file belongs: move it out of the way and run again"
    )
    assert not [p.name for p in card.parent.iterdir() if p.name.endswith(".tmp")]


def test_card_reports_training_and_samples_from_metrics(demo):
    card = read_card(demo.run_dir)
    metrics = json.loads((demo.run_dir / "metrics.json").read_text())
    _, loss, perplexity = table(card, "| Validation |")
    assert loss == [
        "Loss",
        f"{metrics['eval_loss_before']:,.4f}",
        f"{metrics['eval_loss_after']:,.4f}",
    ]
    assert perplexity[1:] == [
        f"{metrics['perplexity_before']:,.2f}",
        f"{metrics['perplexity_after']:,.2f}",
    ]
    params = dict(table(card, "| Hyper-parameter |")[1:])
    assert float(params["Epochs"]) == metrics["hyperparameters"]["num_train_epochs"]
    assert params["Seed"] == str(metrics["seed"])
    assert "small GPT-2-architecture model" in card  # the tiny base, said as such

    section = card[card.index("## Sample generations") : card.index("## How to use")]
    samples = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(samples) == 5 and all(s.startswith("- My dream is") for s in samples)
    rate = re.search(r"of (\d+) samples drawn for this card, (\d+) \((\d+)%\)", section)
    assert rate and int(rate[1]) == 20 and int(rate[3]) == round(100 * int(rate[2]) / 20)


def test_card_is_reproducible_and_rewritten_atomically(demo, tmp_path):
    run = tmp_path / "again"
    run_cli("prepare", "sample:romeo", "sample:juliet", "--out", run)
    copy_model(demo, run)
    write_card(run, samples=3, seed=7, checked=3)
    first = read_card(run)
    write_card(run, samples=3, seed=7, checked=3)
    assert read_card(run) == first
    assert not [p.name for p in (run / "model").iterdir() if p.name.endswith(".tmp")]


def test_one_account_is_a_bot_three_are_a_cyborg_with_three_avatars(demo, tmp_path):
    solo = tmp_path / "solo"
    run_cli("prepare", "sample:romeo", "--out", solo)
    copy_model(demo, solo)
    run_cli("card", solo, "--samples", "0")
    card = read_card(solo)
    outline = Outline(html_block(card))
    styles = [a["style"] for _, a in outline.tags if "border-radius: 50%" in a.get("style", "")]
    assert [s.startswith("display:inherit") for s in styles] == [True, False, False]
    assert outline.texts == ["🤖 AI BOT 🤖", "Romeo", "@romeo"]
    assert "## Sample generations" not in card  # --samples 0: the model was not even loaded

    trio = tmp_path / "trio"
    run_cli("prepare", "sample:romeo", "sample:juliet", "sample:nurse", "--out", trio)
    copy_model(demo, trio)
    run_cli("card", trio, "--samples", "0", "--repo-id", "me/verona")
    card = read_card(trio)
    outline = Outline(html_block(card))
    styles = [a["style"] for _, a in outline.tags if "border-radius: 50%" in a.get("style", "")]
    assert [s.startswith("display:inherit") for s in styles] == [True, True, True]
    assert outline.texts == ["🤖 AI CYBORG 🤖", "Romeo & Juliet & Nurse", "@romeo-juliet-nurse"]
    assert table(card, "| Data |")[0] == ["Data", "Romeo", "Juliet", "Nurse"]
    assert "model='me/verona'" in card
    assert metadata_load(trio / "model/README.md")["thumbnail"].startswith(
        "https://huggingface.co/me/verona/"
    )


def _x_export(root: Path, handle: str, name: str, avatar: str | None, lang: str = "en") -> Path:
    tweets = [tweet(str(i), text, lang=lang) for i, text in enumerate(sentences(70, 16, handle))]
    profile = {"description": {"bio": name}}
    if avatar:
        profile["avatarMediaUrl"] = avatar
    return write_x_export(
        root,
        tweets,
        account={"username": handle, "accountDisplayName": name, "accountId": "1"},
        profile=profile,
    )


def test_hostile_names_cannot_change_the_cards_structure(demo, tmp_path):
    evil_avatar = "https://x.invalid/a.png')\"><script>alert(2)</script>"
    one = _x_export(tmp_path / "one", "evil_one", EVIL_NAME, evil_avatar)
    two = _x_export(tmp_path / "two", "evil_two", YAML_BREAKER + " | *b* [l](u)", None, lang="ja")
    run = tmp_path / "run"
    run_cli("prepare", one, two, "--out", run)
    copy_model(demo, run)
    run_cli("card", run, "--samples", "0")
    card = read_card(run)

    # YAML: exactly the keys we wrote, nothing injected.
    meta = metadata_load(run / "model/README.md")
    assert set(meta) == SEED_KEYS | {"pipeline_tag", "library_name"}
    assert "foo" not in meta
    assert card.count("\n---\n") == 1  # the front matter's closing line, and no other

    # HTML: the same outline as any card, the names as plain text, no script element.
    outline = Outline(html_block(card))
    assert [t for t, _ in outline.tags] == ["div", "div", "div", "div", "div", "div", "div", "div"]
    assert outline.max_depth == 3
    names = f"{EVIL_NAME} & {' '.join(YAML_BREAKER.split())} | *b* [l](u)"
    assert outline.texts == ["🤖 AI CYBORG 🤖", names, "@evil_one-evil_two"]
    styles = [a["style"] for _, a in outline.tags if "border-radius: 50%" in a.get("style", "")]
    assert "<script>" not in styles[0] and "')" not in styles[0].split("url('", 1)[1][:-2]
    assert "%27%29%22%3E%3Cscript%3E" in styles[0]  # the URL kept, its quotes encoded

    # Markdown: the table has its three columns, the names escaped in their cells.
    header, *rows = table(card, "| Data |")
    assert len(header) == 3 and all(len(r) == 3 for r in rows)
    assert header[1] == "&lt;/div&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert header[2] == '" --- foo: bar \\| \\*b\\* \\[l\\](u)'  # mid-line: no block
    assert [r[0] for r in rows] == ["Tweets downloaded", "Retweets", "Short tweets", "Tweets kept"]
    assert "<script>" not in card


def test_samples_are_escaped_in_markdown(demo, tmp_path):
    assert str(md_text("# not a heading")) == "\\# not a heading"
    assert str(md_text("- no list\n\n---")) == "\\- no list ---"
    assert str(md_text("1. no list, 0.5 stays")) == "1\\. no list, 0.5 stays"
    assert str(md_text("<img src=x onerror=alert(1)> & **b**")) == (
        "&lt;img src=x onerror=alert(1)&gt; &amp; \\*\\*b\\*\\*"
    )
    assert css_url("javascript:alert(1)") is None
    assert css_url("https://a.example/x y'(z).png") == "https://a.example/x%20y%27%28z%29.png"


def test_main_language_of_the_posts():
    def stats(*languages):
        return {"accounts": [{"languages": langs} for langs in languages]}

    assert main_language(stats({"ja": 90, "en": 10})) == "ja"  # the seed wrote "en" here
    assert main_language(stats({"en": 5, "und": 50}, {"fr": 20})) == "fr"
    assert main_language(stats({"qme": 9, "zxx": 9, "in": 2})) == "id"  # X's legacy code
    assert main_language(stats({"pt-BR": 3, "en_US": 1})) == "pt"
    assert main_language(stats({}, {})) is None  # untagged files: no guess


def japanese_lines(n: int) -> list[str]:
    """n distinct plain Japanese posts, none of them short."""
    when = ["今日は", "昨日は", "明日は", "週末は", "朝から", "夜に"]
    what = [
        "友達と公園を散歩しました",
        "新しい本を読みました",
        "美味しいラーメンを食べました",
        "電車で海まで行きました",
        "家で映画を見ました",
        "駅前の喫茶店で仕事をしました",
    ]
    how = ["とても楽しかったです", "少し疲れました", "また行きたいです", "天気が良かったです"]
    return [f"{when[i % 6]}{what[i // 6 % 6]}。{how[i // 36 % 4]}（{i}回目）" for i in range(n)]


def test_main_language_detected_when_posts_carry_no_tags():
    def stats(languages: dict, kept: int) -> dict:
        return {"accounts": [{"languages": languages, "kept": kept}]}

    english = sentences(50, 12)
    japanese = japanese_lines(50)
    assert main_language(stats({}, 50), japanese) == "ja"
    assert main_language(stats({}, 50), english) == "en"
    # The platform's own tags win when most kept posts carry one ...
    assert main_language(stats({"fr": 30}, 50), english) == "fr"
    # ... not when most carry none: the posts themselves say more.
    assert main_language(stats({"fr": 10}, 50), english) == "en"
    # Nothing to tell from (no text, too few letters): the tags there are, or none.
    assert main_language(stats({"fr": 10}, 50), ["ok 👍", "@someone #yes"]) == "fr"
    assert main_language(stats({}, 50), []) is None
    # A bounded sample: an endless stream of posts is no endless detection.
    assert detect_language(itertools.cycle(japanese)) == "ja"


@pytest.mark.parametrize(("language", "lines"), [("ja", japanese_lines), ("en", sentences)])
def test_card_language_of_a_text_file_without_tags(demo, tmp_path, language, lines):
    source = tmp_path / "posts.txt"
    source.write_text("\n".join(lines(500)) + "\n", "utf-8")
    run = tmp_path / "run"
    run_cli("prepare", source, "--handle", "someone", "--out", run)
    assert json.loads((run / "dataset/stats.json").read_text())["accounts"][0]["languages"] == {}
    copy_model(demo, run)
    run_cli("card", run, "--samples", "0")
    assert metadata_load(run / "model/README.md")["language"] == language


def test_card_language_from_an_x_export(demo, tmp_path):
    export = _x_export(tmp_path / "ja", "tanaka", "田中", None, lang="ja")
    run = tmp_path / "run"
    run_cli("prepare", export, "--out", run)
    copy_model(demo, run)
    run_cli("card", run, "--samples", "0")
    meta = metadata_load(run / "model/README.md")
    assert meta["language"] == "ja"
    assert table(read_card(run), "| Data |")[0] == ["Data", "田中"]


class _Avatar(http.server.BaseHTTPRequestHandler):
    colour = (200, 30, 160)

    def do_GET(self):
        from io import BytesIO

        buffer = BytesIO()
        Image.new("RGB", (400, 400), self.colour).save(buffer, "PNG")
        body = buffer.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_avatar_fetched_when_reachable_initials_otherwise(demo, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Avatar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/avatar.png"
        one = _x_export(tmp_path / "one", "pic", "With Picture", url)
        two = _x_export(tmp_path / "two", "nopic", "No Picture", "http://127.0.0.1:9/none.png")
        run = tmp_path / "run"
        run_cli("prepare", one, two, "--out", run)
        copy_model(demo, run)
        run_cli("card", run, "--samples", "0")
    finally:
        server.shutdown()
    styles = [
        a["style"]
        for _, a in Outline(html_block(read_card(run))).tags
        if "border-radius: 50%" in a.get("style", "")
    ]
    assert url in styles[0] and "127.0.0.1:9/none.png" in styles[1]  # the card links both
    with Image.open(run / "model/preview.png") as preview:
        # Two avatars of 150 px, 28 px apart, centred: their centres at x=511 and x=689.
        assert preview.convert("RGB").getpixel((511, 111)) == _Avatar.colour
        assert preview.convert("RGB").getpixel((689, 111)) != _Avatar.colour  # initials


class _NotHTTP(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"garbage\r\n\r\n")


def test_an_avatar_that_cannot_be_fetched_is_none(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _NotHTTP)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        for url in (
            f"http://127.0.0.1:{port}/my avatar.png",  # http.client.InvalidURL
            f"http://127.0.0.1:{port}/a\nb.png",  # InvalidURL too
            "http://127.0.0.1:port/a.png",  # InvalidURL: a port that is no number
            f"http://127.0.0.1:{port}/a.png",  # an answer that is no HTTP: BadStatusLine
            "http://[::1/a.png",  # ValueError
        ):
            assert fetch_avatar(url, timeout=2) is None, url
    finally:
        server.shutdown()
        server.server_close()


def test_avatar_url_with_a_space_gets_the_initials(demo, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    requests = []

    class Avatar(_Avatar):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Avatar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run = tmp_path / "run"
    try:
        run_cli("prepare", "sample:romeo", "--out", run)
        account = run / "posts/romeo.account.json"
        data = json.loads(account.read_text())
        data["avatar_url"] = f"http://127.0.0.1:{server.server_address[1]}/my avatar.png"
        account.write_text(json.dumps(data))
        run_cli("prepare", "--out", run)
        copy_model(demo, run)
        run_cli("card", run, "--samples", "0")
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []  # a URL that cannot be sent is not sent
    styles = [
        a["style"]
        for _, a in Outline(html_block(read_card(run))).tags
        if "border-radius: 50%" in a.get("style", "")
    ]
    assert "/my%20avatar.png" in styles[0]  # the card links it, encoded, for the browser
    with Image.open(run / "model/preview.png") as preview:
        # One avatar, centred (x 525 to 675): left of its letters, the initials' disc.
        assert preview.convert("RGB").getpixel((545, 111)) == colour_for("romeo")


def test_an_invalid_handle_in_stats_json_is_one_clear_line(demo, tmp_path):
    run = tmp_path / "run"
    run_cli("prepare", "sample:romeo", "--out", run)
    copy_model(demo, run)
    stats_path = run / "dataset/stats.json"
    stats = json.loads(stats_path.read_text())
    stats["accounts"][0]["handle"] = "romeo\njuliet"
    stats_path.write_text(json.dumps(stats))
    result = run_cli("card", run, "--samples", "0", expect=2)
    assert "stats.json" in result.stderr and "invalid handle 'romeo\\njuliet'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (run / "model/preview.png").exists()


def test_card_errors(tmp_path, demo):
    result = run_cli("card", tmp_path / "nothing", expect=2)
    assert "has no dataset" in result.stderr and "huggingtweets prepare" in result.stderr
    run = tmp_path / "prepared"
    run_cli("prepare", "sample:romeo", "--out", run)
    result = run_cli("card", run, expect=2)
    assert "has no trained model yet" in result.stderr and "huggingtweets train" in result.stderr
    copy_model(demo, run)
    result = run_cli("card", run, "--repo-id", "not a repo!", expect=2)
    assert "must be a Hugging Face model id" in result.stderr
    result = run_cli("card", run, "--samples", "-1", expect=2)
    assert "samples must be" in result.stderr


def test_card_says_the_guard_is_a_membership_test_not_a_privacy_protection(demo, tmp_path):
    guarded = read_card(demo.run_dir)
    assert "**The memorization guard is not a privacy protection.**" in guarded
    assert "anyone who has it can test whether a sentence they can guess was one of them" in (
        " ".join(guarded.split())
    )
    run = tmp_path / "unguarded"
    run_cli("prepare", "sample:romeo", "--out", run)
    copy_model(demo, run)
    (run / "model" / GUARD_FILE).unlink()
    run_cli("card", run, "--samples", "1")
    unguarded = read_card(run)
    assert "not a privacy protection" not in unguarded  # no guard published, nothing to say
    assert "**Memorization:** not measured" in unguarded


def test_card_links_the_wandb_lineage_only_when_wandb_was_used_online(demo, tmp_path):
    """As the seeds do: the data, the training run and the final model on W&B — and no
    link at all when W&B was not used, or used offline (no pages exist yet)."""
    run = tmp_path / "run"
    shutil.copytree(demo.run_dir / "dataset", run / "dataset")
    copy_model(demo, run)
    metrics = json.loads((demo.run_dir / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps(metrics))
    run_cli("card", run, "--samples", "0")
    assert "W&B" not in read_card(run)

    urls = {
        "data_url": "https://wandb.ai/me/huggingtweets/artifacts/train-dataset/rj/v0",
        "run_url": "https://wandb.ai/me/huggingtweets/runs/abc123",
        "model_url": "https://wandb.ai/me/huggingtweets/artifacts/finetuned-model/rj/v0",
    }
    offline = {**metrics, "tracking": {"wandb": {"mode": "offline", "run_url": None}}}
    (run / "metrics.json").write_text(json.dumps(offline))
    run_cli("card", run, "--samples", "0")
    assert "W&B" not in read_card(run)

    online = {**metrics, "tracking": {"wandb": {"mode": "online", **urls}}}
    (run / "metrics.json").write_text(json.dumps(online))
    run_cli("card", run, "--samples", "0")
    card = read_card(run)
    assert f"[Explore the data]({urls['data_url']})" in card
    assert f"[W&B training run]({urls['run_url']})" in card
    assert f"[the final model]({urls['model_url']})" in card

    hostile = {**metrics, "tracking": {"wandb": {"run_url": "https://x) [click](javascript:1"}}}
    (run / "metrics.json").write_text(json.dumps(hostile))
    run_cli("card", run, "--samples", "0")
    assert "javascript" not in read_card(run)


def test_a_token_as_the_card_s_repo_id_is_refused(demo, tmp_path, monkeypatch):
    """It would be written into the card's front matter and snippet: refused, not shown."""
    token = "hf_cardTestToken0123456789abcdefghij"
    monkeypatch.setenv("HF_TOKEN", token)
    run = tmp_path / "run"
    shutil.copytree(demo.run_dir, run)
    card = (run / "model" / "README.md").read_bytes()
    result = run_cli("card", run, "--samples", "0", "--repo-id", f"me/{token}", expect=2)
    assert "--repo-id holds a configured secret" in result.stderr
    assert token not in result.stdout + result.stderr
    assert (run / "model" / "README.md").read_bytes() == card
    with pytest.raises(HuggingtweetsError, match="holds a configured secret") as error:
        write_card(run, samples=0, repo_id=token)
    assert token not in str(error.value)
