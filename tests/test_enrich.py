"""Pictures and article enrichment: ``enrich = ["image"]`` / ``["text"]`` read
the article page through the real Fetcher from a real server on 127.0.0.1,
``pictures = N`` makes N picture posts of one item, an image is known by its
content, and a media item that falls back makes one post."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import MediaHost
from PIL import Image

from publisher.adapters.fetch import Fetcher
from publisher.adapters.mediafolder import MediaStore
from publisher.config import parse_config
from publisher.core.config import Config, FetchConfig, MediaConfig, ServerConfig, SourceConfig
from publisher.core.errors import ConfigError, MediaError
from publisher.core.items import Item, MediaCandidate, RenderedItem
from publisher.core.media.identify import picture_type
from publisher.core.render.page import looks_like_summary, main_text_html, page_images
from publisher.pipeline.enrich import fetch_page_with
from publisher.pipeline.transform import Transformer, fetch_media_with

PUBLIC = "https://pub.example.org"
SOURCE = SourceConfig(name="news", type="rss", url="https://news.example.org/feed")
COLOURS = [(220, 20, 20), (20, 200, 20), (20, 20, 220), (200, 200, 20)]


def picture(
    colour: tuple[int, int, int], fmt: str = "PNG", size: tuple[int, int] = (64, 48)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def page(head: str = "", body: str = "<p>Short.</p>") -> bytes:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()


def make(tmp_path: Path, *, public_url: str | None = PUBLIC) -> tuple[Transformer, Fetcher]:
    config = Config(
        server=ServerConfig(public_url=public_url),
        fetch=FetchConfig(allow_private=True),
    )
    fetcher = Fetcher(config.fetch)
    transformer = Transformer(
        config,
        MediaStore(tmp_path / "media"),
        fetch_media_with(fetcher),
        public_url=public_url,
        fetch_page=fetch_page_with(fetcher),
    )
    return transformer, fetcher


def item(link: str, *media: MediaCandidate, **fields: object) -> Item:
    base = Item(source="news", key="k1", title="A title", text="Some words.", link=link)
    return replace(base, attached=media, **fields)  # type: ignore[arg-type]


def types(rendered: RenderedItem) -> list[str]:
    return [m.type for m in rendered.messages]


def details(rendered: RenderedItem, code: str) -> str:
    return " | ".join(d.detail for d in rendered.decisions if d.code == code)


def colour_of(transformer: Transformer, url: str) -> tuple[int, ...]:
    name = url.rsplit("/", 1)[1]
    with Image.open(transformer.store.path(name)) as im:
        pixel = im.convert("RGB").getpixel((im.width // 2, im.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


def near(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(abs(x - y) < 30 for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------
# the page, read purely


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param(
            '<meta property="og:image" content="/img/a.jpg">',
            ["https://site.org/img/a.jpg"],
            id="og",
        ),
        pytest.param(
            '<meta name="twitter:image" content="https://cdn.org/t.png">',
            ["https://cdn.org/t.png"],
            id="twitter",
        ),
        pytest.param(
            '<link rel="image_src" href="c.jpg">', ["https://site.org/news/c.jpg"], id="link"
        ),
        pytest.param(
            '<link rel="image_src" href="c.jpg"><meta name="twitter:image" content="t.jpg">'
            '<meta property="og:image" content="o.jpg">',
            [
                "https://site.org/news/o.jpg",
                "https://site.org/news/t.jpg",
                "https://site.org/news/c.jpg",
            ],
            id="og first, then twitter, then image_src",
        ),
        pytest.param(
            '<meta property="og:image" content="data:image/png;base64,AAAA">'
            '<meta property="og:image" content="javascript:alert(1)">',
            [],
            id="no data or javascript",
        ),
        pytest.param("", [], id="none"),
    ],
)
def test_page_images(head: str, expected: list[str]) -> None:
    html = page(head).decode()
    assert page_images(html, "https://site.org/news/p") == expected


def test_main_text_drops_menus_and_the_repeated_title() -> None:
    article = "<p>" + "The council met on Tuesday and decided many things. " * 8 + "</p>"
    html = page(body=f"<nav>Home | About</nav><article><h1>A title</h1>{article}</article>")
    text = main_text_html(html.decode(), "https://site.org/a", "A title")
    assert text is not None
    assert "council met" in text and "Home | About" not in text and "<h1>" not in text
    assert main_text_html(page(body="").decode(), "https://site.org/a") is None


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        ("Short teaser.", True),
        ("x " * 800, False),
        ("x " * 800 + "Read more", True),
        ("x " * 800 + "[…]", True),
    ],
)
def test_looks_like_summary(body: str, summary: bool) -> None:
    assert looks_like_summary(body) is summary


# --------------------------------------------------------------------------
# enrich = ["image"]


def test_enrich_image_makes_a_picture_post_from_og_image(
    tmp_path: Path, media_host: MediaHost
) -> None:
    media_host.add("/og.png", picture(COLOURS[1]), "image/png")
    link = media_host.add(
        "/article", page('<meta property="og:image" content="/og.png">'), "text/html"
    )
    transformer, fetcher = make(tmp_path)
    with fetcher:
        source = replace(SOURCE, enrich=("image",))
        rendered = transformer.render(item(link), source)
        again = transformer.render(replace(item(link), key="k2"), source)
    assert types(rendered) == ["picture"]
    assert "A title" in rendered.messages[0].payload["text"]
    assert near(colour_of(transformer, rendered.messages[0].payload["media"]), COLOURS[1])
    assert "article picture" in details(rendered, "enrich")
    assert types(again) == ["picture"]
    assert media_host.hits.count(("GET", "/article")) == 1  # cached by link
    # Without enrich nothing is fetched: a text post.
    media_host.hits.clear()
    plain, _ = make(tmp_path)
    assert types(plain.render(item(link), SOURCE)) == ["text"]
    assert ("GET", "/article") not in media_host.hits


def test_enrich_image_keeps_the_items_own_picture(tmp_path: Path, media_host: MediaHost) -> None:
    own = media_host.add("/own.png", picture(COLOURS[0]), "image/png")
    link = media_host.add(
        "/article", page('<meta property="og:image" content="/og.png">'), "text/html"
    )
    transformer, fetcher = make(tmp_path)
    with fetcher:
        candidate = MediaCandidate(url=own, kind="image", origin="enclosure")
        rendered = transformer.render(item(link, candidate), replace(SOURCE, enrich=("image",)))
    assert types(rendered) == ["picture"]
    assert near(colour_of(transformer, rendered.messages[0].payload["media"]), COLOURS[0])
    assert ("GET", "/article") not in media_host.hits


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        pytest.param("missing", "404", id="page 404"),
        pytest.param("refused", "connection refused", id="unreachable"),
        pytest.param("pdf", "not an HTML page", id="not HTML"),
        pytest.param("no og", "names no picture", id="no og:image"),
        pytest.param("bad og", "404", id="og:image 404"),
    ],
)
def test_enrich_image_falls_back_to_text_saying_why(
    tmp_path: Path, media_host: MediaHost, setup: str, why: str
) -> None:
    link = media_host.base + "/article"
    if setup == "refused":
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            link = f"http://127.0.0.1:{sock.getsockname()[1]}/article"
    elif setup == "pdf":
        media_host.add("/article", b"%PDF-1.4\n...", "application/pdf")
    elif setup == "no og":
        media_host.add("/article", page(), "text/html")
    elif setup == "bad og":
        media_host.add(
            "/article", page('<meta property="og:image" content="/gone.jpg">'), "text/html"
        )
    transformer, fetcher = make(tmp_path)
    with fetcher:
        rendered = transformer.render(item(link), replace(SOURCE, enrich=("image",)))
    assert types(rendered) == ["text"]
    assert why in details(rendered, "fallback")
    assert link in rendered.messages[0].payload["text"]


def test_enrich_refuses_a_private_page_unless_allowed(
    tmp_path: Path, media_host: MediaHost
) -> None:
    link = media_host.add(
        "/article", page('<meta property="og:image" content="/og.png">'), "text/html"
    )
    config = Config(server=ServerConfig(public_url=PUBLIC))
    with Fetcher(config.fetch) as fetcher:
        transformer = Transformer(
            config,
            MediaStore(tmp_path / "media"),
            fetch_media_with(fetcher),
            public_url=PUBLIC,
            fetch_page=fetch_page_with(fetcher),
        )
        rendered = transformer.render(item(link), replace(SOURCE, enrich=("image",)))
    assert types(rendered) == ["text"]
    assert "allow_private" in details(rendered, "fallback")
    assert media_host.hits == []


# --------------------------------------------------------------------------
# enrich = ["text"]

ARTICLE = "".join(
    f"<p>Paragraph {n}: the council met on Tuesday and decided many things about the market.</p>"
    for n in range(12)
)


def test_enrich_text_replaces_a_summary_with_the_article(
    tmp_path: Path, media_host: MediaHost
) -> None:
    link = media_host.add(
        "/article",
        page(body=f"<nav>Menu</nav><article><h1>A title</h1>{ARTICLE}</article>"),
        "text/html",
    )
    transformer, fetcher = make(tmp_path)
    with fetcher:
        rendered = transformer.render(item(link), replace(SOURCE, enrich=("text", "image")))
        plain = transformer.render(item(link), SOURCE)
    text = rendered.messages[0].payload["text"]
    assert "Paragraph 11" in text and "Menu" not in text and "Some words." not in text
    assert text.count("A title") == 1
    assert "article text" in details(rendered, "enrich")
    assert media_host.hits.count(("GET", "/article")) == 1  # one fetch for text and picture
    assert "Paragraph" not in plain.messages[0].payload["text"]


def test_enrich_text_keeps_full_feed_text_and_falls_back_on_failure(
    tmp_path: Path, media_host: MediaHost
) -> None:
    link = media_host.add("/article", page(body=f"<article>{ARTICLE}</article>"), "text/html")
    transformer, fetcher = make(tmp_path)
    long_text = "Whole story here, already in the feed. " * 40
    with fetcher:
        full = transformer.render(item(link, text=long_text), replace(SOURCE, enrich=("text",)))
        failed = transformer.render(
            item(media_host.base + "/nothing"), replace(SOURCE, enrich=("text",))
        )
    assert "Paragraph" not in full.messages[0].payload["text"]
    assert media_host.hits == [("GET", "/nothing")]  # a full text is not a summary
    assert "Some words." in failed.messages[0].payload["text"]
    assert "404" in details(failed, "fallback")


# --------------------------------------------------------------------------
# pictures = N


def test_three_pictures_make_three_posts_in_order(tmp_path: Path, media_host: MediaHost) -> None:
    urls = [media_host.add(f"/p{n}.png", picture(c), "image/png") for n, c in enumerate(COLOURS)]
    same = media_host.add("/again.png", picture(COLOURS[0]), "image/png")
    candidates = [
        MediaCandidate(url=u, kind="image", origin="body") for u in (urls[0], same, *urls[1:])
    ]
    transformer, fetcher = make(tmp_path)
    with fetcher:
        rendered = transformer.render(
            item("https://x.org/a", *candidates), replace(SOURCE, pictures=3)
        )
        one = transformer.render(item("https://x.org/a", *candidates), SOURCE)
    assert types(rendered) == ["picture", "picture", "picture"]
    shown = [colour_of(transformer, m.payload["media"]) for m in rendered.messages]
    assert all(near(s, c) for s, c in zip(shown, COLOURS[:3], strict=True))
    assert "A title" in rendered.messages[0].payload["text"]
    assert [m.payload["text"] for m in rendered.messages[1:]] == ["", ""]
    assert "same picture again" in details(rendered, "image")
    assert "3 picture post(s)" in details(rendered, "pictures")
    assert types(one) == ["picture"]


def test_several_pictures_with_a_long_caption_end_with_its_text(
    tmp_path: Path, media_host: MediaHost
) -> None:
    urls = [media_host.add(f"/p{n}.png", picture(c), "image/png") for n, c in enumerate(COLOURS)]
    candidates = [MediaCandidate(url=u, kind="image", origin="body") for u in urls[:2]]
    transformer, fetcher = make(tmp_path)
    with fetcher:
        rendered = transformer.render(
            item("https://x.org/a", *candidates, text="Long words. " * 100),
            replace(SOURCE, pictures=2),
        )
    assert types(rendered) == ["picture", "picture", "text"]


# --------------------------------------------------------------------------
# an image is known by its content


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "PPM", "SGI", "QOI"])
def test_any_format_pillow_decodes_is_a_picture(
    tmp_path: Path, media_host: MediaHost, fmt: str
) -> None:
    data = picture(COLOURS[2], fmt)
    assert picture_type(data) is not None
    url = media_host.add("/download", data, "application/octet-stream")
    folder_file = tmp_path / "photo.dat"
    folder_file.write_bytes(data)
    transformer, fetcher = make(tmp_path)
    with fetcher:
        from_url = transformer.render(
            item("https://x.org/a", MediaCandidate(url=url, kind="image", origin="enclosure")),
            SOURCE,
        )
        from_folder = transformer.render(
            item("", MediaCandidate(path=folder_file, kind="file", origin="folder")),
            replace(SOURCE, type="folder"),
        )
    assert types(from_url) == ["picture"]
    assert types(from_folder) == ["picture"]


@pytest.mark.parametrize(
    "data",
    [
        b"hello, world\n" * 40,
        b"%PDF-1.4\n" + b"x" * 200,
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
    ],
    ids=["text", "pdf", "eps (needs Ghostscript)"],
)
def test_what_pillow_cannot_decode_by_itself_is_not_a_picture(data: bytes) -> None:
    assert picture_type(data) is None


# --------------------------------------------------------------------------
# a media item that falls back makes one post


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "url"), ("A body long enough not to fit in a url post. " * 4, "text")],
)
def test_an_unusable_video_makes_one_post(
    tmp_path: Path, media_host: MediaHost, text: str, expected: str
) -> None:
    video = MediaCandidate(
        url=media_host.base + "/v.mp4", kind="video", mime="video/mp4", origin="enclosure"
    )
    transformer, fetcher = make(tmp_path)
    with fetcher:
        rendered = transformer.render(item("https://x.org/a", video, text=text), SOURCE)
    assert types(rendered) == [expected]
    assert "https://x.org/a" in str(rendered.messages[0].payload)


# --------------------------------------------------------------------------
# the keys


def test_check_reads_enrich_and_pictures() -> None:
    def source(**keys: object) -> dict[str, object]:
        return {"sources": [{"name": "a", "type": "rss", "url": "https://x.org/f", **keys}]}

    config = parse_config(source(enrich=["image", "text"], pictures=3))
    assert config.sources[0].enrich == ("image", "text")
    assert config.sources[0].pictures == 3
    assert parse_config(source()).sources[0].pictures == 1
    for keys, words in [
        ({"enrich": ["picture"]}, '"picture" is not something to enrich'),
        ({"enrich": 1}, "is not a list"),
        ({"pictures": 0}, "too small"),
        ({"pictures": 11}, "at most 10"),
    ]:
        with pytest.raises(ConfigError, match=words):
            parse_config(source(**keys))


def test_a_page_fetch_error_is_a_media_error() -> None:
    with Fetcher(FetchConfig()) as fetcher, pytest.raises(MediaError, match="private"):
        fetch_page_with(fetcher)("http://127.0.0.1:9/article")


def test_a_refused_bomb_names_max_pixels(tmp_path: Path, media_host: MediaHost) -> None:
    url = media_host.add("/big.png", picture(COLOURS[0], size=(400, 300)), "image/png")
    config = Config(
        server=ServerConfig(public_url=PUBLIC),
        fetch=FetchConfig(allow_private=True),
        media=MediaConfig(max_pixels=10_000),
    )
    with Fetcher(config.fetch) as fetcher:
        transformer = Transformer(
            config, MediaStore(tmp_path / "media"), fetch_media_with(fetcher), public_url=PUBLIC
        )
        rendered = transformer.render(
            item("https://x.org/a", MediaCandidate(url=url, kind="image", origin="enclosure")),
            SOURCE,
        )
    assert types(rendered) == ["text"]
    assert "[media] max_pixels (10,000)" in details(rendered, "fallback")
