"""Media in an S3-compatible store: the [storage] keys, the choice in
compose.open_media, ``check``, and a picture posted end to end through the
local channel with its media in a real S3 server (moto's, tests/s3server.py)
that the stand-in fetches from ``public_media_url``, as Viber would."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from s3server import Bucket

from publisher.cli import cli
from publisher.compose import media_base, open_media
from publisher.config import load_config, parse_config
from publisher.core.config import parse_s3_url
from publisher.core.errors import ConfigError
from publisher.service.runner import Service

MTIME = 1_790_000_000.0
S3 = """
[storage]
media_url = "s3://my-bucket/media"
public_media_url = "https://cdn.example.org/media/"
"""


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so that boto3 asks no instance metadata
    service and no real account is ever used."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    return info.value.problems


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://my-bucket", ("my-bucket", "")),
        ("s3://my-bucket/", ("my-bucket", "")),
        ("s3://my-bucket/media", ("my-bucket", "media/")),
        ("S3://media.example.org/a/b/", ("media.example.org", "a/b/")),
    ],
)
def test_s3_urls(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://my-bucket/media",
        "s3:/my-bucket",
        "s3://",
        "s3://My_Bucket/m",
        "s3://b/m",
        "s3://bucket/a//b",
        "s3://bucket/../x",
    ],
)
def test_bad_s3_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_s3_url(url)
    (line,) = problems(
        f'[storage]\nmedia_url = "{url}"\npublic_media_url = "https://c.example.org"'
    )
    assert line.startswith("storage.media_url: ") and "s3://" in line


def test_the_folder_stays_the_default() -> None:
    storage = parse_config({}).storage
    assert storage.media_url is None and storage.media_bucket is None
    assert type(open_media(parse_config({"storage": {"media_dir": "/tmp/m"}}))).__name__ == (
        "MediaStore"
    )


def test_s3_keys_are_read() -> None:
    config = parse_config(tomllib.loads(S3 + 's3_endpoint = "https://minio.example.org:9000"\n'))
    assert config.storage.media_bucket == ("my-bucket", "media/")
    assert config.storage.public_media_url == "https://cdn.example.org/media"
    assert config.storage.s3_endpoint == "https://minio.example.org:9000"
    assert not config.warnings
    # Viber is given the bucket's (or CDN's) address, not the service's
    assert media_base(config, "https://bot.example.org") == "https://cdn.example.org/media"
    assert media_base(parse_config({}), "https://bot.example.org") == "https://bot.example.org"


def test_s3_without_public_media_url_says_what_to_do() -> None:
    (line,) = problems('[storage]\nmedia_url = "s3://my-bucket/media"\n')
    assert line.startswith("storage.media_url: media in S3 need [storage] public_media_url")
    assert "https://" in line


def test_public_media_url_must_be_a_url_and_should_be_https() -> None:
    (line,) = problems('[storage]\nmedia_url = "s3://b-1/m"\npublic_media_url = "cdn"\n')
    assert line.startswith("storage.public_media_url: ")
    plain = parse_config(
        tomllib.loads('[storage]\nmedia_url = "s3://b-1/m"\npublic_media_url = "http://x.org"\n')
    )
    assert any("not HTTPS" in w for w in plain.warnings)


def test_s3_keys_without_media_url_are_a_warning() -> None:
    config = parse_config(tomllib.loads('[storage]\npublic_media_url = "https://c.example.org"\n'))
    assert config.storage.media_bucket is None
    assert any("public_media_url is used only with media in S3" in w for w in config.warnings)


def test_open_media_chooses_s3_with_the_configured_endpoint() -> None:
    from publisher.adapters.s3media import S3MediaStore

    config = parse_config(tomllib.loads(S3 + 's3_endpoint = "http://127.0.0.1:9"\n'))
    store = open_media(config)
    assert isinstance(store, S3MediaStore)
    assert store.location == "s3://my-bucket/media/"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert store.url("https://bot.example.org", "0" * 32 + ".jpg") == (
        "https://cdn.example.org/media/" + "0" * 32 + ".jpg"
    )


def test_check_names_the_missing_key(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_text('[viber]\napi_url = "local"\n[storage]\nmedia_url = "s3://b-1/m"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code != 0
    assert "storage.media_url: media in S3 need [storage] public_media_url" in result.output
    assert "Traceback" not in result.output


def test_the_store_being_unreachable_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint nobody answers on, or no credentials: an OSError saying what to do."""
    from publisher.adapters.s3media import S3MediaError

    config = parse_config(tomllib.loads(S3 + 's3_endpoint = "http://127.0.0.1:9"\n'))
    store = open_media(config)
    store.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(S3MediaError, match="s3_endpoint") as info:
        store.put(b"x", ".jpg")
    assert "\n" not in str(info.value)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(S3MediaError, match="no S3 credentials; set AWS_ACCESS_KEY_ID"):
        open_media(config).put(b"x", ".jpg")


def write_config(tmp: Path, media_url: str, public_media_url: str, more: str = "") -> Path:
    inbox = tmp / "inbox"
    inbox.mkdir()
    config = tmp / "sources.toml"
    config.write_text(
        f"""
[viber]
api_url = "local"

[server]
listen = "127.0.0.1:0"

[storage]
path = "state/publisher.sqlite3"
media_dir = "state/media"
media_url = "{media_url}"
public_media_url = "{public_media_url}"
{more}

[delivery]
min_interval = "0s"

[[sources]]
name = "inbox"
type = "folder"
path = "inbox"
""",
        encoding="utf-8",
    )
    return config


def test_a_picture_is_posted_with_its_media_in_s3(
    tmp_path: Path, s3_bucket: Bucket, jpeg_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The picture and its thumbnail go to the bucket; the post names them at
    public_media_url; the stand-in fetches them from there (as Viber does)
    and accepts the post; nothing is written to the media folder."""
    for key, value in s3_bucket.server.env().items():
        monkeypatch.setenv(key, value)
    config_path = write_config(tmp_path, s3_bucket.media_url, s3_bucket.public_media_url)
    picture = tmp_path / "inbox" / "001-photo.jpg"
    picture.write_bytes(jpeg_bytes)
    os.utime(picture, (MTIME, MTIME))
    service = Service(load_config(config_path))
    service.start()
    try:
        service.run_once()
        posts = [p.payload for p in service.local_channel.posts if p.payload["type"] == "picture"]
        own = httpx.get(service.server.url + "/media/" + posts[0]["media"].rsplit("/", 1)[1])
    finally:
        service.close()
    (post,) = posts
    assert post["media"].startswith(s3_bucket.public_media_url + "/")
    assert post["thumbnail"].startswith(s3_bucket.public_media_url + "/")
    names = {post["media"].rsplit("/", 1)[1], post["thumbnail"].rsplit("/", 1)[1]}
    assert set(s3_bucket.object_keys()) == {f"{s3_bucket.prefix}/{n}" for n in names}
    media = httpx.get(post["media"])
    assert media.status_code == 200 and media.content[:2] == b"\xff\xd8"
    assert not (tmp_path / "state" / "media").exists() or not os.listdir(
        tmp_path / "state" / "media"
    )
    # the built-in server still answers /media/<name>, reading from the bucket
    assert own.status_code == 200 and own.content == media.content
    assert (tmp_path / "inbox" / "posted" / "001-photo.jpg").exists()


def test_the_image_can_keep_media_in_s3() -> None:
    """The container's pins hold boto3 within the s3 extra's range (docker/pin.py)."""
    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = dict(
        line.split("==", 1)
        for line in (root / "docker" / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    for text in project["optional-dependencies"]["s3"]:
        req = Requirement(text)
        assert req.specifier.contains(pins[req.name], prereleases=True), text


def test_a_store_that_cannot_be_reached_delays_the_poll(
    tmp_path: Path,
    jpeg_bytes: bytes,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is posted without its media: the source's poll fails with one
    line naming what to fix and is tried again later; pruning says where."""
    config_path = write_config(
        tmp_path,
        "s3://bucket-x/m",
        "https://cdn.example.org/m",
        's3_endpoint = "http://127.0.0.1:9"',
    )
    picture = tmp_path / "inbox" / "001-photo.jpg"
    picture.write_bytes(jpeg_bytes)
    os.utime(picture, (MTIME, MTIME))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    service = Service(load_config(config_path))
    service.start()
    try:
        service.run_once()
        posts = list(service.local_channel.posts)
    finally:
        service.close()
    assert posts == []
    assert picture.exists()  # still in the inbox, for the next poll
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        line.startswith("source inbox: ")
        and "check [storage] s3_endpoint" in line
        and "next try at" in line
        for line in lines
    ), lines
    assert any(line.startswith("media: pruning s3://bucket-x/m failed") for line in lines), lines
