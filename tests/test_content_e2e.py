"""Done when: any item becomes Viber posts that pass every limit, with the
media hosted — checked by the stand-in, which fetches every media URL over a
socket and checks it as Viber does (JPEG, sizes, Content-Type/Length)."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import MediaHost
from helpers import STANDIN_TOKEN, free_port
from PIL import Image

from publisher.adapters.fetch import Fetcher
from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.standin import ViberStandIn
from publisher.adapters.viber.client import ChannelClient
from publisher.adapters.web import make_app
from publisher.cli import cli
from publisher.core.config import Config, FetchConfig, ServerConfig, SourceConfig
from publisher.core.items import Item, MediaCandidate
from publisher.core.limits import CAPTION_MAX, TEXT_MAX
from publisher.core.messages import utf16_len
from publisher.pipeline.transform import Transformer, fetch_media_with

IMAGES = Path(__file__).parent / "data" / "images"
VIDEO = Path(__file__).parent / "data" / "video"
ENV = "TEST_E2E_TOKEN"


@pytest.fixture
def config(tmp_path: Path, standin: ViberStandIn) -> Path:
    port = free_port()
    path = tmp_path / "sources.toml"
    path.write_text(
        f'[viber]\napi_url = "{standin.api_url}"\ntoken_env = "{ENV}"\ntimeout = "10s"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    return path


def post(config: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(config), "post", *args], env={ENV: STANDIN_TOKEN}
    )


def twelve_megapixels() -> bytes:
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    rgb = Image.merge("RGB", (gradient, gradient.rotate(180), gradient))
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "photo.png",
        "12mp.jpg",
        "pil_sample_cmyk.jpg",
        "hopper_orientation_6.jpg",
        "transparent.png",
        "dispose_bgnd.gif",
    ],
)
def test_post_picture_is_accepted(
    config: Path, standin: ViberStandIn, png_bytes: bytes, name: str
) -> None:
    path = config.parent / name
    if name == "photo.png":
        path.write_bytes(png_bytes)
    elif name == "12mp.jpg":
        path.write_bytes(twelve_megapixels())
    else:
        shutil.copy(IMAGES / name, path)
    result = post(config, str(path), "--caption", f"Picture {name}")
    assert result.exit_code == 0, result.output
    assert len(standin.posts) == 1
    payload = standin.posts[0].payload
    assert payload["type"] == "picture" and payload["text"] == f"Picture {name}"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/media/[0-9a-f]{32}\.jpg", payload["media"])
    stored = config.parent / "data" / "media" / payload["media"].rsplit("/", 1)[1]
    with Image.open(stored) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and max(im.size) <= 2560
        if name == "hopper_orientation_6.jpg":
            assert not im.getexif().get(0x0112)
    assert stored.stat().st_size < 1_000_000


def test_video_post_is_accepted(config: Path, standin: ViberStandIn) -> None:
    path = config.parent / "clip.mp4"
    shutil.copy(VIDEO / "h264_2s.mp4", path)
    result = post(config, str(path), "--caption", "A clip")
    assert result.exit_code == 0, result.output
    payloads = [p.payload for p in standin.posts]
    assert [p["type"] for p in payloads] == ["video", "text"]
    assert payloads[0]["size"] == path.stat().st_size and payloads[0]["duration"] == 2
    assert payloads[1]["text"] == "A clip"


def test_file_post_is_accepted(config: Path, standin: ViberStandIn) -> None:
    path = config.parent / "notes.pdf"
    path.write_bytes(b"%PDF-1.4\n" + b"x" * 2000)
    result = post(config, str(path))
    assert result.exit_code == 0, result.output
    assert standin.posts[0].payload["file_name"] == "notes.pdf"


def test_forbidden_extension_is_refused_with_a_reason(config: Path, standin: ViberStandIn) -> None:
    path = config.parent / "setup.exe"
    path.write_bytes(b"MZ" + b"\0" * 200)
    result = post(config, str(path), "--caption", "Install me")
    assert result.exit_code == 1
    assert "refused" in result.stderr and ".exe" in result.stderr
    assert standin.posts == []


def test_dry_run_posts_nothing(config: Path, standin: ViberStandIn, png_bytes: bytes) -> None:
    import json

    path = config.parent / "photo.png"
    path.write_bytes(png_bytes)
    result = post(config, "--dry-run", str(path), "--caption", "Dry")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [p["type"] for p in out["posts"]] == ["picture"]
    assert out["posts"][0]["text"] == "Dry"
    names = {m["name"] for m in out["media"]}
    assert out["posts"][0]["media"].rsplit("/", 1)[1] in names and len(names) == 2
    assert standin.requests == []  # no channel contact at all
    assert not (config.parent / "data").exists()  # no state, no media written


def test_long_html_article_becomes_posts_within_every_cap(
    tmp_path: Path, standin: ViberStandIn, media_host: MediaHost, png_bytes: bytes
) -> None:
    link = "https://news.example.org/2024/05/a-long-read?utm=x&id=7"
    paragraphs = "".join(
        f"<p>Paragraph {i}: <b>bold</b> words &amp; more words, and a sentence ends here.</p>"
        for i in range(140)
    )
    assert len(paragraphs) >= 10_000
    image_url = media_host.add("/pic.png", png_bytes, "image/png")
    item = Item(
        source="news",
        key="long",
        title="A long read",
        html=paragraphs,
        link=link,
        attached=(MediaCandidate(url=image_url, kind="image", origin="enclosure"),),
    )
    config = Config(fetch=FetchConfig(allow_private=True), server=ServerConfig())
    media = MediaStore(tmp_path / "media")
    app = make_app(media=media, webhook_path="/viber/webhook", token_provider=lambda: None)
    fetcher = Fetcher(config.fetch)
    with HTTPServer(app) as server, ChannelClient(STANDIN_TOKEN, standin.api_url) as client:
        transformer = Transformer(config, media, fetch_media_with(fetcher), server.url)
        for source in (
            SourceConfig(name="news", type="rss", caption_overflow="split"),
            SourceConfig(name="news", type="rss", caption_overflow="truncate"),
        ):
            rendered = transformer.render(item, source)
            for message in rendered.messages:
                client.post(message.payload)
        fetcher.close()
    payloads = [p.payload for p in standin.posts]
    # split: the picture, then the whole text in text posts; truncate: one picture
    assert [p["type"] for p in payloads] == ["picture", "text", "text", "picture"]
    split_caption, *follow_up, truncated = (p["text"] for p in payloads)
    assert utf16_len(split_caption) <= CAPTION_MAX and link in split_caption
    assert all(utf16_len(text) <= TEXT_MAX for text in follow_up)
    assert follow_up[0].startswith("(1/2) ") and follow_up[-1].endswith(link)
    assert "Paragraph 0: bold words & more words" in follow_up[0]
    assert "Paragraph 139: bold words & more words" in follow_up[-1]
    assert utf16_len(truncated) <= CAPTION_MAX and truncated.endswith(link)
