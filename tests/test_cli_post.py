"""``viber-publisher post``: usage, text and url posts, exit codes, a running
service serving the media, and the local channel — against the stand-in."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import STANDIN_TOKEN, free_port

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.adapters.web import make_app
from publisher.cli import cli
from publisher.core.records import OutboxRow

ENV = "TEST_POST_TOKEN"


def write_config(
    tmp_path: Path, api_url: str, port: int, public: bool = True, delivery: str = ""
) -> Path:
    public_line = f'public_url = "http://127.0.0.1:{port}"' if public else ""
    path = tmp_path / "sources.toml"
    path.write_text(
        f'[viber]\napi_url = "{api_url}"\ntoken_env = "{ENV}"\ntimeout = "5s"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\n{public_line}\n'
        f"[delivery]\n{delivery}\n",
        encoding="utf-8",
    )
    return path


def outbox(config: Path) -> list[OutboxRow]:
    with Store.open(config.parent / "data" / "publisher.sqlite3") as store:
        return store.outbox()


def run(config: Path, *args: str, token: str = STANDIN_TOKEN) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "post", *args], env={ENV: token})


def listen_port(config: Path) -> int:
    found = re.search(r'listen = "127\.0\.0\.1:(\d+)"', config.read_text())
    assert found is not None
    return int(found.group(1))


@pytest.fixture
def config(tmp_path: Path, standin: ViberStandIn) -> Path:
    return write_config(tmp_path, standin.api_url, free_port())


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--text", "   "],
        ["--caption", "no file"],
        ["--url", "https://example.org/", "x.png"],
        ["--text", "a", "x.png"],
    ],
)
def test_usage_errors_exit_2(config: Path, standin: ViberStandIn, args: list[str]) -> None:
    Path(config.parent / "x.png").write_bytes(b"\x89PNG")
    result = run(config, *args)
    assert result.exit_code == 2, result.output
    assert standin.requests == []


def test_text_post_is_recorded_as_source_cli(config: Path, standin: ViberStandIn) -> None:
    result = run(config, "--text", "Hello, channel")
    assert result.exit_code == 0, result.output
    assert [p.payload["type"] for p in standin.posts] == ["text"]
    assert standin.posts[0].payload["text"] == "Hello, channel"
    with Store.open(config.parent / "data" / "publisher.sqlite3") as store:
        rows = store.outbox()
    assert [(r.source, r.status) for r in rows] == [("cli", "posted")]


def test_url_post(config: Path, standin: ViberStandIn) -> None:
    result = run(config, "--url", "https://example.org/a?b=1", "--text", "Read")
    assert result.exit_code == 0, result.output
    assert standin.posts[0].payload["type"] == "url"
    assert standin.posts[0].payload["media"] == "https://example.org/a?b=1"


def test_wrong_token_exits_3(config: Path, standin: ViberStandIn) -> None:
    result = run(config, "--text", "Hello", token="0000-wrong-0000")
    assert result.exit_code == 3, result.output
    assert standin.posts == [] and "0000-wrong-0000" not in result.output


def test_viber_refusal_exits_1_with_its_message(config: Path, standin: ViberStandIn) -> None:
    standin.fail_next("status", status=3, status_message="badData: nope")
    result = run(config, "--text", "Hello")
    assert result.exit_code == 1
    assert "badData: nope" in result.stderr
    with Store.open(config.parent / "data" / "publisher.sqlite3") as store:
        assert [r.status for r in store.outbox()] == ["failed"]


# --------------------------------------------------------------------------
# the service's table: passing failures are tried again, a wrong api_url is config


def test_too_many_requests_says_when_to_try_again(config: Path, standin: ViberStandIn) -> None:
    """Status 12 is not a refusal: the cool-down (5 minutes by default) is
    longer than --wait, so post says the post was not sent and when to try."""
    standin.fail_next("status12")
    result = run(config, "--text", "Hello")
    assert result.exit_code == 1, result.output
    assert "not sent: Viber status 12" in result.stderr
    assert re.search(r"try again after \d\d:\d\d:\d\d UTC \(in 5m1s", result.stderr)
    assert "refused" not in result.stderr
    assert [r.status for r in outbox(config)] == ["failed"]
    assert standin.posts == []


def test_too_many_requests_waits_the_cool_down_and_posts(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    config = write_config(
        tmp_path,
        standin.api_url,
        free_port(),
        delivery='rate_limit_cooldown = "1s"\nretry_backoff = "0.2s"',
    )
    standin.fail_next("status12")
    result = run(config, "--text", "Hello", "--wait", "30s")
    assert result.exit_code == 0, result.output
    assert "Viber status 12" in result.stderr and "trying again in 1 s" in result.stderr
    assert [p.payload["text"] for p in standin.posts] == ["Hello"]
    [row] = outbox(config)
    assert (row.status, row.attempts) == ("posted", 2)


def test_passing_failures_are_retried_up_to_max_attempts(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    config = write_config(
        tmp_path,
        standin.api_url,
        free_port(),
        delivery='retry_backoff = "0.05s"\nmax_attempts = 3',
    )
    standin.fail_next("http500", 2)
    assert run(config, "--text", "first", "--wait", "30s").exit_code == 0
    standin.fail_next("http500", 10)
    result = run(config, "--text", "second", "--wait", "30s")
    assert result.exit_code == 1
    assert "gave up after 3 attempts" in result.stderr and "HTTP 500" in result.stderr
    rows = sorted((r.id, r.status, r.attempts) for r in outbox(config))
    assert rows == [(1, "posted", 3), (2, "failed", 3)]
    assert [p.payload["text"] for p in standin.posts] == ["first"]


def test_a_wrong_api_url_exits_2_naming_the_url(tmp_path: Path, standin: ViberStandIn) -> None:
    wrong = standin.api_url.removesuffix("/pa") + "/api"
    config = write_config(tmp_path, wrong, free_port())
    result = run(config, "--text", "Hello")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {wrong}/get_account_info answered HTTP 404: [viber] api_url is wrong; "
        "the Viber API is https://chatapi.viber.com/pa\n"
    )
    assert [r.status for r in outbox(config)] == ["failed"]


def test_no_answer_leaves_the_post_unknown(config: Path, standin: ViberStandIn) -> None:
    standin.fail_next("drop_after")
    result = run(config, "--text", "Hello")
    assert result.exit_code == 1
    assert "`viber-publisher retry 1` or `skip 1`" in result.stderr
    assert [r.status for r in outbox(config)] == ["unknown"]
    assert len(standin.posts) == 1  # it did go out: never sent twice


def test_webhook_not_set_is_set_then_posted(config: Path, standin: ViberStandIn) -> None:
    standin.preset_webhook(None)
    result = run(config, "--text", "Hello")
    assert result.exit_code == 0, result.output
    assert standin.counts["set_webhook"] == 1
    assert [r.status for r in standin.requests if r.endpoint == "post"] == [10, 0]
    [row] = outbox(config)
    assert (row.status, row.attempts) == ("posted", 1)


def test_file_without_public_url_is_a_config_error(
    tmp_path: Path, standin: ViberStandIn, png_bytes: bytes
) -> None:
    config = write_config(tmp_path, standin.api_url, free_port(), public=False)
    (tmp_path / "p.png").write_bytes(png_bytes)
    result = run(config, str(tmp_path / "p.png"))
    assert result.exit_code == 2 and "public_url" in result.stderr


def test_a_running_service_serves_the_media(
    config: Path, standin: ViberStandIn, png_bytes: bytes
) -> None:
    """The address is taken by a service on the same media_dir: it serves the
    picture the stand-in fetches."""
    port = listen_port(config)
    media = MediaStore(config.parent / "data" / "media")
    app = make_app(media=media, webhook_path="/viber/webhook", token_provider=lambda: None)
    (config.parent / "p.png").write_bytes(png_bytes)
    with HTTPServer(app, port=port):
        result = run(config, str(config.parent / "p.png"), "--caption", "Served")
    assert result.exit_code == 0, result.output
    assert [p.payload["type"] for p in standin.posts] == ["picture"]
    assert "warning" not in result.stderr  # the service keeps serving it


UNSERVED = "may fetch this post's media later"


def test_a_picture_posted_without_a_service_warns_that_its_media_go_unserved(
    config: Path, standin: ViberStandIn, png_bytes: bytes
) -> None:
    """``post`` serves the picture only while it runs: one line on stderr
    says so, naming the media folder and the command that keeps serving it."""
    (config.parent / "p.png").write_bytes(png_bytes)
    result = run(config, str(config.parent / "p.png"), "--caption", "Alone")
    assert result.exit_code == 0, result.output
    assert [p.payload["type"] for p in standin.posts] == ["picture"]
    (line,) = [line for line in result.stderr.splitlines() if UNSERVED in line]
    assert line.startswith("warning: ") and "`viber-publisher run`" in line
    assert str(config.parent / "data" / "media") in line or "data/media" in line


def test_a_text_post_does_not_warn_about_media(config: Path, standin: ViberStandIn) -> None:
    result = run(config, "--text", "Hello")
    assert result.exit_code == 0, result.output
    assert UNSERVED not in result.stderr


def test_media_in_a_bucket_need_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from publisher.cli.post import _warn_unserved
    from publisher.config import load_config

    path = write_config(tmp_path, "local", free_port())
    _warn_unserved(load_config(path))
    assert UNSERVED in capsys.readouterr().err
    path.write_text(
        path.read_text()
        + '[storage]\nmedia_url = "s3://pictures/viber"\n'
        + 'public_media_url = "https://cdn.example.com/viber"\n'
    )
    _warn_unserved(load_config(path))
    assert capsys.readouterr().err == ""


def test_something_else_on_the_address_exits_1(config: Path, standin: ViberStandIn) -> None:
    port = listen_port(config)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        squatter.settimeout(0.1)
        result = run(config, "--text", "Hello")
    assert result.exit_code == 1 and "cannot listen" in result.stderr
    assert standin.posts == []


def test_local_channel_posts_through_a_temporary_local_channel(
    tmp_path: Path, png_bytes: bytes
) -> None:
    config = tmp_path / "sources.toml"
    config.write_text(
        f'[viber]\napi_url = "local"\n[server]\nlisten = "127.0.0.1:{free_port()}"\n',
        encoding="utf-8",
    )
    (tmp_path / "p.png").write_bytes(png_bytes)
    result = CliRunner().invoke(cli, ["--config", str(config), "post", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert "posted #1 (picture)" in result.stdout


def test_help() -> None:
    result = CliRunner().invoke(cli, ["post", "--help"])
    assert result.exit_code == 0 and "--dry-run" in result.output and '"cli"' in result.output
