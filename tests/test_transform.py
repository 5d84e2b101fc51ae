"""The render stage's choices and fallbacks: item → posts within every limit.

Media come from real files (tests/data) through a recording fetch function,
or through the real Fetcher from the media_host server; what is stored is a
real MediaStore in tmp_path.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import MediaHost
from PIL import Image

from publisher.adapters.fetch import Fetcher
from publisher.adapters.mediafolder import MediaStore
from publisher.core.config import (
    ChannelConfig,
    Config,
    FetchConfig,
    ServerConfig,
    SourceConfig,
    ViberConfig,
)
from publisher.core.errors import MediaError
from publisher.core.items import Item, MediaCandidate, RenderedItem
from publisher.core.limits import CAPTION_MAX, TEXT_MAX
from publisher.core.messages import utf16_len, validate_payload
from publisher.pipeline.transform import Transformer, fetch_media_with

DATA = Path(__file__).parent / "data"
PUBLIC = "https://pub.example.org"
LINK = "https://news.example.org/2024/05/the-article?id=42"
SOURCE = SourceConfig(name="news", type="rss", url="https://news.example.org/feed")


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "JPEG", quality=85)
    return out.getvalue()


class FakeFetch:
    """A media URL → bytes table; records the URLs asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.calls: list[str] = []

    def __call__(self, url: str) -> tuple[bytes, str | None]:
        self.calls.append(url)
        if url not in self.files:
            raise MediaError(f"{url}: unexpected HTTP 404; the media cannot be used")
        return self.files[url], None


def make(
    tmp_path: Path, files: dict[str, bytes] | None = None, public_url: str | None = PUBLIC
) -> tuple[Transformer, FakeFetch]:
    config = Config(
        channels=(ChannelConfig(viber=ViberConfig(api_url="https://chatapi.viber.com/pa")),),
        server=ServerConfig(public_url=public_url),
    )
    fetch = FakeFetch(files or {})
    return Transformer(config, MediaStore(tmp_path / "media"), fetch, public_url=public_url), fetch


def item(*media: MediaCandidate, **fields: object) -> Item:
    base = Item(source="news", key="k1", title="A title", text="Some words.", link=LINK)
    return replace(base, attached=media, **fields)  # type: ignore[arg-type]


def image(url: str) -> MediaCandidate:
    return MediaCandidate(url=url, kind="image", origin="enclosure")


def video(url: str) -> MediaCandidate:
    return MediaCandidate(url=url, kind="video", mime="video/mp4", origin="enclosure")


def types(rendered: RenderedItem) -> list[str]:
    return [m.type for m in rendered.messages]


def codes(rendered: RenderedItem) -> list[str]:
    return [d.code for d in rendered.decisions]


def assert_valid(rendered: RenderedItem) -> None:
    for message in rendered.messages:
        validate_payload(message.payload)


# --------------------------------------------------------------------------
# the fallback table

BROKEN = (DATA / "images" / "broken.png").read_bytes()
MPEG4 = (DATA / "video" / "mpeg4_2s.mp4").read_bytes()
HEVC = (DATA / "video" / "hevc_1s.mp4").read_bytes()
LONG = (DATA / "video" / "h264_190s.mp4").read_bytes()


@pytest.mark.parametrize(
    ("case", "media", "files", "expect_types", "expect_in_fallback"),
    [
        (
            "broken image",
            image("http://m.example/a.png"),
            {"http://m.example/a.png": BROKEN},
            ["text"],
            "a.png",
        ),
        ("image 404", image("http://m.example/b.jpg"), {}, ["text"], "404"),
        (
            "mpeg4 video",
            video("http://m.example/v.mp4"),
            {"http://m.example/v.mp4": MPEG4},
            ["url"],
            "H.264",
        ),
        (
            "hevc video",
            video("http://m.example/h.mp4"),
            {"http://m.example/h.mp4": HEVC},
            ["url"],
            "hvc1",
        ),
        (
            "video over 180 s",
            video("http://m.example/l.mp4"),
            {"http://m.example/l.mp4": LONG},
            ["url"],
            "180",
        ),
        ("video 404", video("http://m.example/x.mp4"), {}, ["url"], "404"),
    ],
)
def test_fallbacks(
    tmp_path: Path,
    case: str,
    media: MediaCandidate,
    files: dict[str, bytes],
    expect_types: list[str],
    expect_in_fallback: str,
) -> None:
    transformer, _ = make(tmp_path, files)
    rendered = transformer.render(item(media), SOURCE)
    assert rendered.refused is None
    assert types(rendered) == expect_types, case
    fallbacks = [d.detail for d in rendered.decisions if d.code == "fallback"]
    assert fallbacks and expect_in_fallback in " ".join(fallbacks), rendered.decisions
    assert_valid(rendered)
    if expect_types[0] == "url":
        # One post (not a url post and then a text post repeating title and link):
        # the title and the body fit a url post's 120 characters.
        assert rendered.messages[0].payload == {
            "type": "url",
            "media": LINK,
            "text": "A title\n\nSome words.",
        }
    # The link is never lost.
    assert any(LINK in str(m.payload.get("text", "")) for m in rendered.messages) or (
        rendered.messages[0].payload.get("media") == LINK
    )


def test_unusable_video_without_link_is_text(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path, {"http://m.example/v.mp4": MPEG4})
    rendered = transformer.render(item(video("http://m.example/v.mp4"), link=None), SOURCE)
    assert types(rendered) == ["text"]
    assert "fallback" in codes(rendered)


def test_unusable_video_of_a_title_only_item_is_one_url_post(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path, {"http://m.example/v.mp4": MPEG4})
    rendered = transformer.render(item(video("http://m.example/v.mp4"), text=""), SOURCE)
    assert types(rendered) == ["url"]


def test_nothing_usable_is_refused_with_the_reason(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path, {"http://m.example/a.png": BROKEN})
    bare = item(image("http://m.example/a.png"), title="", text="", link=None)
    rendered = transformer.render(bare, SOURCE)
    assert rendered.messages == ()
    assert rendered.refused is not None and "a.png" in rendered.refused
    assert codes(rendered)[-1] == "refused"


def test_duplicate_candidates_are_fetched_once(tmp_path: Path) -> None:
    transformer, fetch = make(tmp_path)
    url = "http://m.example/gone.jpg"
    transformer.render(item(image(url), MediaCandidate(url=url, origin="body")), SOURCE)
    assert fetch.calls == [url]


# --------------------------------------------------------------------------
# without a public_url


def test_no_public_url_compliant_https_jpeg_is_posted_from_its_url(tmp_path: Path) -> None:
    url = "https://cdn.example.org/photo.JPG"
    transformer, fetch = make(tmp_path, {url: jpeg()}, public_url=None)
    rendered = transformer.render(item(image(url)), SOURCE)
    assert types(rendered) == ["picture"]
    assert rendered.messages[0].payload["media"] == url
    assert "thumbnail" not in rendered.messages[0].payload
    assert fetch.calls == [url]  # fetched once, to check it is a JPEG under 1 MB
    assert list((tmp_path / "media").iterdir()) == []
    assert_valid(rendered)


def test_no_public_url_https_jpg_that_is_a_png_is_text(tmp_path: Path, png_bytes: bytes) -> None:
    url = "https://cdn.example.org/photo.jpg"
    transformer, _ = make(tmp_path, {url: png_bytes}, public_url=None)
    rendered = transformer.render(item(image(url)), SOURCE)
    assert types(rendered) == ["text"] and LINK in rendered.messages[0].payload["text"]
    assert "fallback" in codes(rendered)


@pytest.mark.parametrize(
    "url", ["http://cdn.example.org/photo.jpg", "https://cdn.example.org/photo.png"]
)
def test_no_public_url_noncompliant_url_is_text_without_fetching(tmp_path: Path, url: str) -> None:
    transformer, fetch = make(tmp_path, {url: jpeg()}, public_url=None)
    rendered = transformer.render(item(image(url)), SOURCE)
    assert types(rendered) == ["text"]
    assert fetch.calls == []
    assert any("public_url" in d.detail for d in rendered.decisions if d.code == "fallback")


def test_no_public_url_video_is_a_url_post_without_fetching(tmp_path: Path) -> None:
    transformer, fetch = make(tmp_path, {"https://m.example/v.mp4": b"never read"}, public_url=None)
    rendered = transformer.render(item(video("https://m.example/v.mp4")), SOURCE)
    assert types(rendered)[0] == "url" and fetch.calls == []


# --------------------------------------------------------------------------
# captions, images = false


def long_item(url: str) -> Item:
    body = " ".join(f"Sentence number {i} says something." for i in range(200))
    return item(image(url), text=body)


def test_long_caption_split(tmp_path: Path) -> None:
    url = "http://m.example/p.jpg"
    transformer, _ = make(tmp_path, {url: jpeg()})
    rendered = transformer.render(long_item(url), SOURCE)
    # the whole text follows the picture, split as a text post's is
    assert types(rendered) == ["picture", "text", "text"]
    picture, first, second = (m.payload for m in rendered.messages)
    assert utf16_len(picture["text"]) <= CAPTION_MAX and LINK in picture["text"]
    assert first["text"].startswith("(1/2) ") and second["text"].startswith("(2/2) ")
    assert all(utf16_len(m["text"]) <= TEXT_MAX for m in (first, second))
    assert second["text"].endswith(LINK)
    assert "Sentence number 150" in first["text"] + second["text"]
    assert "split" in codes(rendered)
    assert picture["media"].startswith(PUBLIC + "/media/") and picture["media"].endswith(".jpg")
    assert_valid(rendered)


def test_long_caption_truncate(tmp_path: Path) -> None:
    url = "http://m.example/p.jpg"
    transformer, _ = make(tmp_path, {url: jpeg()})
    source = replace(SOURCE, caption_overflow="truncate")
    rendered = transformer.render(long_item(url), source)
    assert types(rendered) == ["picture"]
    caption = rendered.messages[0].payload["text"]
    assert utf16_len(caption) <= CAPTION_MAX and caption.endswith(LINK)
    assert "truncated" in codes(rendered) and "split" not in codes(rendered)


def test_images_false_posts_text_only_without_fetching(tmp_path: Path) -> None:
    url = "http://m.example/p.jpg"
    transformer, fetch = make(tmp_path, {url: jpeg()})
    rendered = transformer.render(item(image(url)), replace(SOURCE, images=False))
    assert types(rendered) == ["text"] and fetch.calls == []


# --------------------------------------------------------------------------
# local files: sniffed, stored, extensions kept


def folder_item(path: Path, text: str = "") -> Item:
    media = MediaCandidate(path=path, kind="unknown", origin="folder")
    return Item(source="inbox", key=path.name, text=text, attached=(media,))


def test_local_file_kind_is_sniffed(tmp_path: Path, png_bytes: bytes) -> None:
    path = tmp_path / "picture.dat"
    path.write_bytes(png_bytes)
    transformer, _ = make(tmp_path)
    rendered = transformer.render(folder_item(path), SOURCE)
    assert types(rendered) == ["picture"]
    assert_valid(rendered)


def test_local_file_keeps_its_extension_then_text(tmp_path: Path) -> None:
    path = tmp_path / "Report 2024.PDF"
    path.write_bytes(b"%PDF-1.4\n" + b"x" * 5000)
    transformer, _ = make(tmp_path)
    rendered = transformer.render(folder_item(path, "The report."), SOURCE)
    assert types(rendered) == ["file", "text"]
    payload = rendered.messages[0].payload
    assert payload["file_name"] == "Report 2024.PDF" and payload["size"] == path.stat().st_size
    stored = rendered.messages[0].media[0].name
    assert stored.endswith(".pdf")
    assert (tmp_path / "media" / stored).read_bytes() == path.read_bytes()
    assert_valid(rendered)


def test_forbidden_extension_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "setup.exe"
    path.write_bytes(b"MZ" + b"\0" * 100)
    transformer, _ = make(tmp_path)
    rendered = transformer.render(folder_item(path), SOURCE)
    assert rendered.messages == ()
    assert rendered.refused is not None and ".exe" in rendered.refused


def test_local_video_is_stored_with_whole_seconds(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes((DATA / "video" / "h264_2s.mp4").read_bytes())
    transformer, _ = make(tmp_path)
    rendered = transformer.render(folder_item(path, "Clip."), SOURCE)
    assert types(rendered) == ["video", "text"]
    payload = rendered.messages[0].payload
    assert payload["duration"] == 2 and isinstance(payload["duration"], int)
    assert payload["size"] == path.stat().st_size
    assert payload["media"].endswith(".mp4")
    assert_valid(rendered)


def folder_picture(tmp_path: Path, name: str, data: bytes, caption: str = "") -> Item:
    path = tmp_path / name
    path.write_bytes(data)
    media = MediaCandidate(path=path, kind="image", mime="image/jpeg", origin="folder")
    return Item(source="inbox", key=name, text=caption, attached=(media,), files=(path,))


FOLDER = SourceConfig(name="inbox", type="folder", path=DATA)


@pytest.mark.parametrize("caption", ["", "A caption for a picture that cannot be read."])
def test_a_broken_folder_picture_refuses_its_item_naming_the_file_and_the_cause(
    tmp_path: Path, caption: str
) -> None:
    truncated = (DATA / "images" / "truncated_jpeg.jpg").read_bytes()
    transformer, _ = make(tmp_path)
    rendered = transformer.render(
        folder_picture(tmp_path, "001-photo.jpg", truncated, caption), FOLDER
    )
    # the caption alone is not posted: that would silently drop the picture
    assert rendered.messages == ()
    assert rendered.refused is not None
    assert rendered.refused.startswith("001-photo.jpg: JPEG image is truncated or corrupt")
    assert "nothing to post" not in rendered.refused
    assert "fix or replace the file" in rendered.refused
    assert [d for d in rendered.decisions if d.code == "refused"][-1].detail == rendered.refused
    assert codes(rendered)[-1] == "refused" and codes(rendered).count("refused") == 1


def test_a_folder_picture_without_a_public_url_is_refused_with_the_config_to_fix(
    tmp_path: Path,
) -> None:
    transformer, _ = make(tmp_path, public_url=None)
    rendered = transformer.render(folder_picture(tmp_path, "2-sea.jpg", jpeg(), "Sea."), FOLDER)
    assert rendered.messages == ()
    assert rendered.refused is not None and rendered.refused.startswith("2-sea.jpg: ")
    assert "public_url" in rendered.refused and "change the config" in rendered.refused


def test_a_folder_picture_with_images_false_is_refused(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path)
    source = replace(FOLDER, images=False)
    rendered = transformer.render(folder_picture(tmp_path, "3-p.jpg", jpeg(), "Words."), source)
    assert rendered.messages == ()
    assert rendered.refused is not None and rendered.refused.startswith("3-p.jpg: ")
    assert "images = false" in rendered.refused


def test_a_good_folder_picture_is_still_a_picture_post(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path)
    rendered = transformer.render(folder_picture(tmp_path, "4-ok.jpg", jpeg(), "Fine."), FOLDER)
    assert rendered.refused is None and types(rendered) == ["picture"]


def test_a_broken_feed_picture_still_falls_back_to_text(tmp_path: Path) -> None:
    """The rule is the folder's: a feed's broken picture is a fallback, not a refusal."""
    truncated = (DATA / "images" / "truncated_jpeg.jpg").read_bytes()
    transformer, _ = make(tmp_path, {"http://m.example/t.jpg": truncated})
    rendered = transformer.render(item(image("http://m.example/t.jpg")), SOURCE)
    assert rendered.refused is None and types(rendered) == ["text"]


# --------------------------------------------------------------------------
# url posts


def test_render_url_short_words_is_a_url_post(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path)
    rendered = transformer.render_url(Item("cli", "k", text="Read this", link=LINK), SOURCE)
    assert [m.payload for m in rendered.messages] == [
        {"type": "url", "media": LINK, "text": "Read this"}
    ]


def test_render_url_long_words_become_a_text_post_with_the_link(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path)
    words = "word " * 100
    rendered = transformer.render_url(Item("cli", "k", text=words, link=LINK), SOURCE)
    assert types(rendered) == ["text"] and rendered.messages[0].payload["text"].endswith(LINK)
    assert "fallback" in codes(rendered)


def test_render_url_refuses_a_non_http_url(tmp_path: Path) -> None:
    transformer, _ = make(tmp_path)
    rendered = transformer.render_url(Item("cli", "k", link="ftp://x.example/a"), SOURCE)
    assert rendered.refused is not None and "http" in rendered.refused


# --------------------------------------------------------------------------
# feed media go through the real Fetcher


def test_feed_media_through_the_fetcher(tmp_path: Path, media_host: MediaHost) -> None:
    url = media_host.add("/img/photo", jpeg(800, 600), "application/octet-stream")
    config = Config(fetch=FetchConfig(allow_private=True))
    fetcher, strict = Fetcher(config.fetch), Fetcher(FetchConfig())
    try:
        store = MediaStore(tmp_path / "m")
        rendered = Transformer(config, store, fetch_media_with(fetcher), PUBLIC).render(
            item(image(url)), SOURCE
        )
        refused = Transformer(Config(), store, fetch_media_with(strict), PUBLIC).render(
            item(image(url)), SOURCE
        )
    finally:
        fetcher.close()
        strict.close()
    assert types(rendered) == ["picture"]  # sniffed as JPEG despite the Content-Type
    # Without allow_private, the loopback address is refused: text with the link.
    assert types(refused) == ["text"] and "fallback" in codes(refused)
