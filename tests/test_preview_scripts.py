"""Pictures in every script (issue 13): no empty boxes ("tofu") in preview.png or avatars.

Each script's names and posts are drawn twice, with two different strings of the same
length: boxes would look the same, real glyphs do not. Each drawn character's font must
have it in its character map (so no ``.notdef`` glyph), read here with fontTools.

The fonts come from the system (Debian: fonts-noto-core, fonts-noto-cjk,
fonts-noto-color-emoji; ``.ci/run`` installs them). A script with no font here is
skipped with the package to install, or fails when HUGGINGTWEETS_REQUIRE_FONTS=1 (as in
CI, where the packages were installed and must therefore be found).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unicodedata
from functools import cache, lru_cache

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageFont, features

from huggingtweets.card.preview import HEIGHT, WIDTH, Person, draw_preview, initials_avatar

# script -> (name, other name, post, other post): pairs of equal length in code points.
SCRIPTS = {
    "chinese-simplified": (
        "王小明",
        "李大伟",
        "我的梦想是有一天能够去北京看长城，然后吃烤鸭。",
        "今天天气很好，我们一起去公园散步吧！好开心呀。",
    ),
    "chinese-traditional": (
        "陳美麗",
        "林志強",
        "我們這個時候說話的聲音很大，請小聲一點。",
        "臺灣的夜市裡有很多好吃東西，歡迎來玩喔！",
    ),
    "japanese": (
        "志位和夫",
        "山田花子",
        "私の夢は、すべての人が平和に暮らせる日本です。",
        "ありがとうございました。また明日もよろしくね！",
    ),
    "korean": (
        "김민수",
        "이지은",
        "내 꿈은 언젠가 세계 여행을 하는 것입니다",
        "오늘은 날씨가 정말 좋아서 산책을 했어요!",
    ),
    "emoji": (
        "🦊🌈✨",
        "🐼🍀🔥",
        "so happy 😂😂 ❤️ 👍🏽 🚀🔥 🇯🇵 👨‍👩‍👧",
        "best day 🎉🎉 ☀️ 👋🏻 🌙🐳 🇫🇷 👩‍👩‍👦",
    ),
    "arabic": (
        "محمد علي",
        "ليلى حسن",
        "حلمي هو أن أرى العالم في سلام",
        "شكرا لكم جميعاً على هذا الدعم",
    ),
    "hebrew": (
        "דנה כהן",
        "משה לוי",
        "החלום שלי הוא לטייל בעולם",
        "תודה רבה לכולכם על העזרה!",
    ),
    "thai": (
        "สมชาย ใจดี",
        "วิชัย ใจดี",
        "ความฝันของฉันคือการเดินทาง",
        "วันนี้อากาศดีมากเลยนะครับ!",
    ),
    "devanagari": (
        "प्रिया शर्मा",
        "प्रीति वर्मा",
        "मेरा सपना है कि मैं दुनिया देखूँ",
        "आज मौसम बहुत अच्छा है मेरे दोस्त",
    ),
    "latin-diacritics": (
        "Željko Đorđević",
        "Ågot Ñúñez-Brÿn",
        "Ça va très bien, señor Müller!",
        "Où est la fenêtre? Ærøskøbing.",
    ),
}
PACKAGE = {
    "chinese-simplified": "fonts-noto-cjk",
    "chinese-traditional": "fonts-noto-cjk",
    "japanese": "fonts-noto-cjk",
    "korean": "fonts-noto-cjk",
    "emoji": "fonts-noto-color-emoji",
}
RTL = {"arabic", "hebrew"}

# Where the preview draws its text (see draw_preview): the names' line, the post's box.
NAMES = (0, 250, WIDTH, 316)
POST = (90, 372, WIDTH - 90, HEIGHT - 50)


def _visible(text: str) -> list[str]:
    """The characters that need a glyph (not joiners, variation selectors, spaces)."""
    return [
        c
        for c in text
        if unicodedata.category(c) not in ("Cf", "Zs") and not 0xFE00 <= ord(c) < 0xFE10
    ]


@cache
def _fc_has(codepoint: int) -> bool | None:
    """Whether fontconfig knows a font with this character (None without fontconfig)."""
    exe = shutil.which("fc-list")
    if exe is None:
        return None
    out = subprocess.run([exe, f":charset={codepoint:x}", "file"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def require_fonts(script: str) -> None:
    """Skip (or fail, in CI) when this machine has no font for the script."""
    missing = []
    for text in SCRIPTS[script]:
        for ch in _visible(text):
            known = _fc_has(ord(ch))
            if known is None:
                from huggingtweets.card.fonts import has_font

                known = has_font(ch)
            if not known:
                missing.append(ch)
    if missing:
        why = (
            f"no font here for {script} ({''.join(missing[:5])}): "
            f"install {PACKAGE.get(script, 'fonts-noto-core')}"
        )
        if os.environ.get("HUGGINGTWEETS_REQUIRE_FONTS") == "1":
            pytest.fail(why)
        pytest.skip(why)


def _disc(colour=(120, 120, 120)) -> Image.Image:
    image = Image.new("RGBA", (150, 150), (0, 0, 0, 0))
    image.paste(Image.new("RGBA", (150, 150), (*colour, 255)), (0, 0))
    return image


def _preview(name: str, post: str, handle: str = "someone", language: str | None = None):
    # The same avatar both times: only the text differs between two pictures.
    extra = {"language": language} if language else {}
    return draw_preview([Person(handle, name)], post, avatars=[_disc()], **extra)


def _ink(image: Image.Image, box) -> int:
    """Pixels in ``box`` that are not the background (white, or the post box's grey)."""
    region = np.asarray(image.crop(box).convert("RGB")).reshape(-1, 3)
    background = np.all(region == 255, axis=1) | np.all(region == (243, 246, 249), axis=1)
    return int((~background).sum())


def _changed(a: Image.Image, b: Image.Image, box=None) -> int:
    """Pixels (colour and transparency) that differ clearly between two pictures."""
    a, b = (im.crop(box) if box else im for im in (a, b))
    diff = np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int))
    return int((diff.reshape(diff.shape[0], diff.shape[1], -1).max(axis=2) > 60).sum())


# -- different strings, different pixels -------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_two_strings_of_a_script_draw_different_pixels(script):
    require_fonts(script)
    name_a, name_b, post_a, post_b = SCRIPTS[script]
    assert len(name_a) == len(name_b) and len(post_a) == len(post_b)  # boxes would match
    a, b = _preview(name_a, post_a), _preview(name_b, post_b)
    for box in (NAMES, POST):
        assert _ink(a, box) > 200 and _ink(b, box) > 200, f"{script}: no text drawn in {box}"
        changed = _changed(a, b, box)
        assert changed > 0.15 * min(_ink(a, box), _ink(b, box)), f"{script}: same pixels {box}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_initials_avatar_draws_the_names_letter(script):
    require_fonts(script)
    name_a, name_b, _, _ = SCRIPTS[script]
    a = initials_avatar(Person("someone", name_a), 150)
    b = initials_avatar(Person("someone", name_b), 150)
    assert _changed(a, b) > 100, f"{script}: same initials"
    # Not the handle's "S": the name's own letter was drawn.
    s = initials_avatar(Person("someone", "someone"), 150)
    assert _changed(a, s) > 100 and _changed(b, s) > 100, f"{script}: the handle's initial"


def test_right_to_left_posts_start_at_the_right():
    require_fonts("arabic")
    for script in ("arabic", "hebrew"):
        image = _preview(SCRIPTS[script][0], SCRIPTS[script][2])
        box = image.crop(POST).convert("L").point(lambda v: 255 if v < 128 else 0).getbbox()
        assert box is not None
        left, right = POST[0] + box[0], POST[0] + box[2]
        assert right > POST[2] - 50 and left > POST[0] + 100, (script, left, right)


# -- no .notdef glyph --------------------------------------------------------------


@cache
def _cmap(path: str, index: int) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=index & 0xFFFF, lazy=True) as font:
        return frozenset(font.getBestCmap())


@cache
def _notdef_mask(path: str, index: int) -> bytes | None:
    """The picture of the font's .notdef glyph (what a missing character draws)."""
    try:
        font = ImageFont.truetype(path, 40, index=index)
    except OSError:  # a bitmap font (colour emoji): checked by its character map only
        return None
    return bytes(font.getmask("\U0010fffd"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_notdef_glyph_is_drawn(script):
    from huggingtweets.card.fonts import fonts_for

    require_fonts(script)
    for text in SCRIPTS[script]:
        for bold in (False, True):
            chosen = fonts_for(text, 40, bold)
            drawn = [ch for ch, _ in chosen]
            assert _visible("".join(drawn)) == _visible(text), f"{script}: characters left out"
            for ch, font in chosen:
                if ch not in _visible(ch):
                    continue
                assert ord(ch) in _cmap(font.path, font.index), (script, ch, font.path)
                notdef = _notdef_mask(font.path, font.index)
                if notdef is not None and unicodedata.category(ch)[0] == "L":
                    glyph = ImageFont.truetype(font.path, 40, index=font.index).getmask(ch)
                    assert bytes(glyph) != notdef, (script, ch, font.path)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_character_changes_the_line(script):
    """Every character is drawn as itself: swapping any one changes the pixels (two boxes
    would not)."""
    from huggingtweets.card.fonts import face
    from huggingtweets.card.scripts import clusters

    require_fonts(script)
    _, _, post_a, post_b = SCRIPTS[script]
    parts_a, parts_b = clusters(post_a), clusters(post_b)
    style = face(40)

    def line(parts: list[str]) -> Image.Image:
        image = Image.new("RGB", (1800, 80), "white")
        style.draw(image, (10, 10), "".join(parts), fill="black")
        return image

    base = line(parts_a)
    for i in range(min(len(parts_a), len(parts_b))):
        if parts_a[i] == parts_b[i] or parts_a[i].isspace() or parts_b[i].isspace():
            continue
        swapped = line([*parts_a[:i], parts_b[i], *parts_a[i + 1 :]])
        assert _changed(base, swapped) > 0, (script, i, parts_b[i])


def test_emoji_are_in_colour():
    require_fonts("emoji")
    image = _preview("🦊🌈", "🍀🍀🍀")
    fox = np.asarray(image.crop(NAMES).convert("RGB"), dtype=int).reshape(-1, 3)
    saturated = fox[fox.max(axis=1) - fox.min(axis=1) > 80]
    assert (
        len({tuple(p) for p in saturated}) > 50
    )  # the fox's orange, the rainbow's colours: not grey outlines


# -- without raqm (Pillow without FriBiDi) -----------------------------------------


@pytest.fixture
def basic_layout(monkeypatch):
    from huggingtweets.card import fonts

    monkeypatch.setattr(fonts, "LAYOUT", ImageFont.Layout.BASIC)
    fonts.clear_caches()
    yield fonts
    monkeypatch.undo()
    fonts.clear_caches()


@pytest.mark.skipif(not features.check("raqm"), reason="compares with raqm's shaping")
@pytest.mark.parametrize("script", ["arabic", "hebrew"])
def test_without_raqm_right_to_left_text_is_joined_and_ordered(script):
    """Without raqm, Arabic takes its joined forms and both scripts run right to left
    here: the line looks like the one HarfBuzz shaped."""
    from huggingtweets.card import fonts

    require_fonts(script)
    text = SCRIPTS[script][2] + " (2024)"

    def line() -> Image.Image:
        image = Image.new("L", (1400, 80), 255)
        fonts.face(40).draw(image, (10, 10), text, fill=0)
        return image.point(lambda v: 255 - v)  # ink as light

    shaped = line()
    fonts.LAYOUT = ImageFont.Layout.BASIC
    fonts.clear_caches()
    try:
        basic = line()
    finally:
        fonts.LAYOUT = ImageFont.Layout.RAQM
        fonts.clear_caches()
    # Blurred, a pixel or two of kerning do not count; reversed words or unjoined
    # letters do (about 0.6 to 1.0 here, against 0.05 to 0.1 for the same line).
    blur = [np.asarray(im.filter(ImageFilter.BoxBlur(6)), dtype=float) for im in (shaped, basic)]
    distance = np.abs(blur[0] - blur[1]).sum() / np.asarray(shaped, dtype=float).sum()
    assert distance < 0.3, f"{script}: the line without raqm differs ({distance:.2f})"


# Without raqm the fallback joins Arabic and orders right-to-left text itself: checked
# against the libraries made for it (python-bidi, arabic-reshaper), text for text.
RIGHT_TO_LEFT = [
    "سلام عليكم ورحمة الله",
    "لا إله إلا الله",  # lam-alef ligatures
    "سلامة",  # ends in a letter after a ligature (the last letter was once dropped)
    "مرحبا بالعالم (2024)",
    "أنا أحب القراءة، والكتابة!",
    'قال: "مرحبا" 123 مرة',
    "שלום עולם",
    "Hello שלום world 42",
]


@pytest.mark.parametrize("text", RIGHT_TO_LEFT)
def test_the_fallback_joins_arabic_as_arabic_reshaper_does(text):
    reshaper = pytest.importorskip("arabic_reshaper")
    from huggingtweets.card.scripts import arabic_join

    # arabic-reshaper also draws the word Allah as one ligature; the fallback does not.
    no_allah = {"ARABIC LIGATURE ALLAH": False, "ARABIC LIGATURE ALLAH ISOLATED FORM": False}
    assert arabic_join(text) == reshaper.ArabicReshaper(configuration=no_allah).reshape(text)


@pytest.mark.parametrize("text", RIGHT_TO_LEFT)
def test_the_fallback_orders_right_to_left_text_as_python_bidi_does(text):
    bidi = pytest.importorskip("bidi")
    from huggingtweets.card.scripts import bidi_levels, clusters, visual_order

    items = clusters(text)
    _, levels = bidi_levels(items)
    # python-bidi leaves mirroring brackets to the renderer, as visual_order does.
    assert "".join(items[i] for i in visual_order(levels)) == bidi.get_display(text)


def test_without_raqm_the_notice_names_fribidi(basic_layout):
    fonts = basic_layout
    require_fonts("devanagari")
    fonts.reset_missing_fonts()
    _preview(*SCRIPTS["devanagari"][0::2])
    notice = fonts.missing_fonts()
    assert notice is not None and "libfribidi0" in notice and "Devanagari" in notice
    fonts.reset_missing_fonts()


# -- a machine without the fonts ----------------------------------------------------


@pytest.fixture
def only_dejavu(monkeypatch):
    """A system whose only fonts are DejaVu (no CJK, no emoji, no Thai, no Devanagari)."""
    from huggingtweets.card import fonts

    real = fonts._fc_sorted.__wrapped__

    @lru_cache
    def dejavu_only(pattern: str):
        return tuple(f for f in real(pattern) if f.family.startswith("DejaVu"))

    monkeypatch.setattr(fonts, "_fc_sorted", dejavu_only)
    monkeypatch.setattr(fonts, "_scanned", lru_cache(lambda: ()))
    fonts.clear_caches()
    fonts.reset_missing_fonts()
    yield fonts
    monkeypatch.undo()
    fonts.clear_caches()
    fonts.reset_missing_fonts()


def test_no_font_for_a_script_leaves_it_out_keeps_the_handle_and_says_once(only_dejavu):
    fonts = only_dejavu
    if not shutil.which("fc-match"):
        pytest.skip("simulated through fontconfig")
    chinese = _preview("王小明", "我的梦想是有一天能够去北京看长城", handle="wangxm")
    # The name has no drawable character left: the handle stands in, as its own line does.
    as_handle = _preview("@wangxm", "", handle="wangxm")
    assert _changed(chinese, as_handle) == 0  # no box anywhere
    mixed = _preview("Ann 🦊 李", "hello 世界 🎉 world", handle="ann")
    assert _ink(mixed, POST) > 200  # the Latin words are drawn
    for ch, font in fonts.fonts_for("hello 世界 🎉 world 王"):
        assert ord(ch) in _cmap(font.path, font.index)
    initials = initials_avatar(Person("wangxm", "王小明"), 150)
    assert initials == initials_avatar(Person("wangxm", "wangxm"), 150)  # the handle's "W"

    notice = fonts.missing_fonts()
    assert notice is not None and "\n" not in notice
    assert "fonts-noto-cjk" in notice and "fonts-noto-color-emoji" in notice
    assert notice.count("fonts-noto-cjk") == 2  # "install X (apt-get install X)": once each
    _preview("王小明", "我的梦想是", handle="wangxm")
    assert fonts.missing_fonts() == notice  # the same single line, however many pictures


def test_nothing_missing_is_no_notice():
    from huggingtweets.card import fonts

    fonts.reset_missing_fonts()
    _preview("Romeo", "My dream is to see the world")
    assert fonts.missing_fonts() is None


# -- the prompt in the posts' language ----------------------------------------------


def test_default_prompt_follows_the_language():
    from huggingtweets.core.language import default_prompt

    assert default_prompt("ja") == "私の夢は"
    assert default_prompt("zh") == "我的梦想是"
    assert default_prompt("zh-TW") == default_prompt("zh-Hant") == "我的夢想是"
    assert default_prompt("ko") == "내 꿈은"
    assert default_prompt("de") == "Mein Traum ist"
    assert default_prompt("fr") == "Mon rêve est"
    assert default_prompt("es") == "Mi sueño es"
    assert default_prompt("pt-BR") == "Meu sonho é" and default_prompt("pt-PT") == "O meu sonho é"
    for english in ("en", "en-GB", None, "", "xx", "und", "tlh"):
        assert default_prompt(english) == "My dream is"


def test_the_card_prompts_in_the_posts_language(tmp_path_factory):
    from conftest import run_cli
    from demo_run import copy_model, demo_run
    from exports import tweet, write_x_export

    from huggingtweets.card import fonts
    from huggingtweets.card.model_card import write_card

    require_fonts("japanese")
    demo = demo_run(tmp_path_factory)
    root = tmp_path_factory.mktemp("ja")
    posts = [
        f"{i}回目の投稿です。今日はとても良い天気ですね、みんなで公園まで散歩に行きましょう。"
        for i in range(200)
    ]
    export = write_x_export(
        root / "export",
        [tweet(str(i), text, lang="ja") for i, text in enumerate(posts)],
        account={"username": "shiikazuo", "accountDisplayName": "志位和夫", "accountId": "1"},
    )
    run = root / "run"
    run_cli("prepare", export, "--out", run)
    copy_model(demo, run)
    fonts.reset_missing_fonts()
    card = write_card(run, samples=2, seed=1).read_text(encoding="utf-8")
    assert "language: ja" in card
    assert "- text: 私の夢は" in card  # the widget
    assert 'generator("私の夢は", num_return_sequences=5)' in card
    assert '"私の夢は" -n 5' in card
    assert 'for the prompt "私の夢は"' in card
    assert "My dream is" not in card
    assert fonts.missing_fonts() is None  # the picture drew every character
