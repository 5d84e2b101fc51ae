"""The channel client: the status table, transport failures, int64 tokens,
senders, the request cap, against fakes and against the real stand-in."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
from helpers import STANDIN_TOKEN

from publisher.adapters.standin import SUPERADMIN_ID, ViberStandIn
from publisher.adapters.viber.client import ChannelClient, check_answer, parse_message_token
from publisher.adapters.viber.signature import sign, verify_signature
from publisher.core.config import DEFAULT_API_URL
from publisher.core.errors import (
    ConfigError,
    MessageError,
    RateLimitedError,
    SenderError,
    ViberAmbiguousError,
    ViberAPIError,
    ViberConnectError,
    ViberError,
    ViberFatalError,
    ViberGeneralError,
    ViberHTTPError,
    ViberRejectedError,
    ViberTransportError,
    WebhookNotSetError,
    WebhookRefusedError,
    WrongAPIURLError,
)
from publisher.core.messages import PictureMessage, TextMessage
from publisher.core.records import AccountInfo, Member

TOKEN = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3"
MediaHost = Any  # fixtures from conftest
WebhookReceiver = Any


def answer(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


# --------------------------------------------------------------------------
# the status table: one row per documented status (and some undocumented)

_REJECTED = [(code, ViberRejectedError, False) for code in (3, 4, 5, 6, 11, *range(13, 25))]
STATUS_TABLE: list[tuple[int, type[ViberAPIError], bool]] = [
    (1, WebhookRefusedError, False),
    (2, ViberFatalError, False),
    (7, ViberFatalError, False),
    (8, ViberFatalError, False),
    (9, ViberFatalError, False),
    (10, WebhookNotSetError, True),
    (12, RateLimitedError, True),
    *_REJECTED,
    (25, ViberGeneralError, True),
    (99, ViberGeneralError, True),
    (-1, ViberGeneralError, True),
]


def test_status_0_is_the_answer() -> None:
    body = b'{"status":0,"status_message":"ok","message_token":5925484936191962157}'
    assert check_answer(200, body) == {
        "status": 0,
        "status_message": "ok",
        "message_token": 5925484936191962157,
    }
    assert check_answer(200, b'{"status":"0"}') == {"status": "0"}


@pytest.mark.parametrize(("status", "error", "retryable"), STATUS_TABLE)
def test_status_table(status: int, error: type[ViberAPIError], retryable: bool) -> None:
    with pytest.raises(ViberAPIError) as info:
        check_answer(200, answer(status=status, status_message="boom"))
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.status_message == "boom"
    assert info.value.retryable is retryable
    assert f"Viber status {status}" in str(info.value)


@pytest.mark.parametrize("status", [3, 12, 99])
def test_status_message_is_optional(status: int) -> None:
    with pytest.raises(ViberAPIError) as info:
        check_answer(200, answer(status=status))
    assert info.value.status == status


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (1, "server.public_url"),
        (2, "VIBER_TOKEN_HERE"),
        (8, "VIBER_TOKEN_HERE"),
        (7, "blocked"),
        (9, "suspended"),
        (10, "webhook set"),
    ],
)
def test_fatal_and_webhook_errors_say_what_to_do(status: int, words: str) -> None:
    with pytest.raises(ViberAPIError, match=words):
        check_answer(200, answer(status=status), token_source="VIBER_TOKEN_HERE")


@pytest.mark.parametrize(
    ("http_status", "body", "error", "retryable"),
    [
        (500, b"Internal Server Error", ViberHTTPError, True),
        (502, b"", ViberHTTPError, True),
        (503, answer(status=0), ViberHTTPError, True),
        (429, b"", ViberHTTPError, True),
        (400, b"Bad Request", ViberHTTPError, False),
        (303, b"", ViberHTTPError, False),  # "see other": it may have acted
        (200, b"<html>oops</html>", ViberAmbiguousError, True),
        (200, b"", ViberAmbiguousError, True),
        (200, b"\xff\xfe", ViberAmbiguousError, True),
        (200, b"[1, 2]", ViberAmbiguousError, True),
        (200, b'{"status_message": "ok"}', ViberAmbiguousError, True),
        (200, b'{"status": "zero"}', ViberAmbiguousError, True),
    ],
)
def test_answers_that_are_not_viber_json(
    http_status: int, body: bytes, error: type[ViberError], retryable: bool
) -> None:
    with pytest.raises(ViberTransportError) as info:
        check_answer(http_status, body)
    assert type(info.value) is error
    assert info.value.retryable is retryable
    if error is ViberHTTPError:
        assert info.value.http_status == http_status  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# a wrong api_url: nothing was posted, the configuration must change

WRONG = "https://x.example/pa"


@pytest.mark.parametrize(
    ("http_status", "location"),
    [
        (404, None),
        (405, None),
        (301, "https://chatapi.viber.com/pa/post"),
        (302, "/login"),
        (307, "https://elsewhere.example/pa/post"),
        (308, "https://elsewhere.example/pa/post"),
    ],
)
def test_answers_of_a_wrong_api_url(http_status: int, location: str | None) -> None:
    with pytest.raises(WrongAPIURLError) as info:
        check_answer(http_status, b"Not Found", url=f"{WRONG}/post", location=location)
    error = info.value
    assert isinstance(error, ConfigError) and not error.retryable
    assert (error.url, error.http_status) == (f"{WRONG}/post", http_status)
    assert str(error).startswith(f"{WRONG}/post answered HTTP {http_status}")
    assert str(error).endswith(
        "[viber] api_url is wrong; the Viber API is https://chatapi.viber.com/pa"
    )
    if location is not None:
        assert f"a redirect to {location}" in str(error)


@pytest.mark.parametrize(
    "body", [b"<html>Welcome</html>", b"", b"[1]", b'{"ok": true}', b'{"status": "zero"}']
)
def test_not_viber_json_from_a_read_only_call_is_a_wrong_api_url(body: bytes) -> None:
    """get_account_info changes nothing: an answer that is not Viber's is not
    ambiguous, it shows the URL does not lead to Viber."""
    with pytest.raises(WrongAPIURLError, match="not Viber's JSON"):
        check_answer(200, body, url=f"{WRONG}/get_account_info", read_only=True)
    with pytest.raises(ViberAmbiguousError):
        check_answer(200, body, url=f"{WRONG}/post")


def mock_client(handler: Any, api_url: str = WRONG) -> ChannelClient:
    return ChannelClient(TOKEN, api_url=api_url, transport=httpx.MockTransport(handler))


def test_client_names_the_url_that_answered_404() -> None:
    with (
        mock_client(lambda request: httpx.Response(404, text="Not Found")) as client,
        pytest.raises(WrongAPIURLError) as info,
    ):
        client.post(TextMessage("hi"), sender="S1")
    assert str(info.value) == (
        "https://x.example/pa/post answered HTTP 404: [viber] api_url is wrong; "
        "the Viber API is https://chatapi.viber.com/pa"
    )
    assert TOKEN not in str(info.value)


def test_client_shows_where_a_redirect_goes() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": "https://x.example/pa/v2/post"})

    with mock_client(redirect) as client, pytest.raises(WrongAPIURLError) as info:
        client.post(TextMessage("hi"), sender="S1")
    assert "HTTP 301 (a redirect to https://x.example/pa/v2/post)" in str(info.value)


def test_client_account_info_from_a_web_page_is_a_wrong_api_url() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Welcome</html>")

    with mock_client(page) as client, pytest.raises(WrongAPIURLError) as info:
        client.get_account_info()
    assert str(info.value).startswith("https://x.example/pa/get_account_info answered HTTP 200")
    with mock_client(page) as client, pytest.raises(ViberAmbiguousError):
        client.post(TextMessage("hi"), sender="S1")  # it may be a Viber that posted


def test_a_404_from_the_default_api_url_does_not_blame_the_config() -> None:
    with (
        mock_client(lambda request: httpx.Response(404), api_url=DEFAULT_API_URL) as client,
        pytest.raises(WrongAPIURLError) as info,
    ):
        client.get_account_info()
    assert "api_url is wrong" not in str(info.value)
    assert str(info.value).startswith(f"{DEFAULT_API_URL}/get_account_info answered HTTP 404")


def test_a_wrong_path_on_the_standin_is_a_wrong_api_url(standin: ViberStandIn) -> None:
    wrong = standin.api_url.removesuffix("/pa") + "/api"
    with (
        ChannelClient(STANDIN_TOKEN, api_url=wrong, timeout=5) as client,
        pytest.raises(WrongAPIURLError, match=r"/api/post answered HTTP 404"),
    ):
        client.post(TextMessage("hi"), sender=SUPERADMIN_ID)
    assert standin.posts == []


# --------------------------------------------------------------------------
# tokens, signature


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5925484936191962157, 5925484936191962157),
        ("5925484936191962157", 5925484936191962157),
        (" 9223372036854775807 ", 9223372036854775807),
        (None, None),
        (True, None),
        ("abc", None),
        (1.5, None),
    ],
)
def test_parse_message_token(value: object, expected: int | None) -> None:
    assert parse_message_token(value) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b'{"status":0,"message_token":5925484936191962157,"chat_hostname":"SN-CHAT-12_"}',
        b'{"status":0,"message_token":"5925484936191962157","chat_hostname":"SN-CHAT-12_"}',
    ],
)
def test_post_keeps_int64_token_exact(raw: bytes) -> None:
    client = ChannelClient(
        TOKEN,
        api_url="https://viber.invalid/pa",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=raw)),
    )
    result = client.post(TextMessage("hi"), sender="me")
    assert result.message_token == 5925484936191962157
    assert result.message_token != float(5925484936191962157)  # no float round trip
    assert result.chat_hostname == "SN-CHAT-12_"


def test_post_answer_without_optional_fields() -> None:
    client = ChannelClient(
        TOKEN,
        api_url="https://viber.invalid/pa",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b'{"status":0}')),
    )
    result = client.post(TextMessage("hi"), sender="me")
    assert (result.message_token, result.chat_hostname) == (None, None)


def test_signature_vector() -> None:
    body = b'{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}'
    expected = "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef"
    assert sign(body, TOKEN) == expected
    client = ChannelClient(TOKEN)
    try:
        assert client.verify_signature(body, expected)
        assert client.verify_signature(body, expected.upper())
        assert not client.verify_signature(body + b" ", expected)
        assert not client.verify_signature(body, None)
        assert not verify_signature(body, expected, TOKEN + "x")
    finally:
        client.close()


# --------------------------------------------------------------------------
# what goes on the wire


class Recorder:
    def __init__(self, body: bytes = b'{"status":0,"message_token":1}') -> None:
        self.requests: list[httpx.Request] = []
        self.body = body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, content=self.body)


def test_every_call_is_a_json_post_with_the_token_twice() -> None:
    recorder = Recorder()
    with ChannelClient(
        TOKEN, api_url="https://viber.invalid/pa/", transport=httpx.MockTransport(recorder)
    ) as client:
        client.post(TextMessage("héllo 😀"), sender="S1")
        client.set_webhook("https://bot.example.org/hook")
        client.remove_webhook()
    urls = [str(r.url) for r in recorder.requests]
    assert urls == [
        "https://viber.invalid/pa/post",
        "https://viber.invalid/pa/set_webhook",
        "https://viber.invalid/pa/set_webhook",
    ]
    bodies = [json.loads(r.content) for r in recorder.requests]
    for request, body in zip(recorder.requests, bodies, strict=True):
        assert request.method == "POST"
        assert request.headers["X-Viber-Auth-Token"] == TOKEN
        assert request.headers["Content-Type"].startswith("application/json")
        assert body["auth_token"] == TOKEN
    assert bodies[0] == {"type": "text", "text": "héllo 😀", "from": "S1", "auth_token": TOKEN}
    assert "héllo 😀".encode() in recorder.requests[0].content  # UTF-8, not \\u escapes
    assert bodies[1]["url"] == "https://bot.example.org/hook"
    assert bodies[2]["url"] == ""


def test_request_over_30kb_is_refused_before_sending() -> None:
    recorder = Recorder()
    with ChannelClient(
        TOKEN, api_url="https://viber.invalid/pa", transport=httpx.MockTransport(recorder)
    ) as client:
        payload = {"type": "text", "text": "\x01" * 6000}  # 36 KB once escaped
        with pytest.raises(MessageError, match="30000"):
            client.post(payload, sender="S1", validate=False)
        with pytest.raises(MessageError, match="30000"):
            client.post(payload, sender="S1")
        with pytest.raises(MessageError, match=r"text\.text"):
            client.post({"type": "text", "text": "a" * 7001}, sender="S1")
    assert recorder.requests == []


def test_token_never_in_repr_or_messages() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer(status=2, status_message="invalidAuthToken"))

    client = ChannelClient(
        TOKEN, api_url="https://viber.invalid/pa", transport=httpx.MockTransport(refuse)
    )
    assert TOKEN not in repr(client)
    with pytest.raises(ViberFatalError) as info:
        client.get_account_info()
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


# --------------------------------------------------------------------------
# senders


def info_with(*members: tuple[str, str]) -> AccountInfo:
    return AccountInfo(
        id="pa:1",
        name="News",
        uri=None,
        members=tuple(Member(id=i, name=f"name-{i}", role=role) for i, role in members),
    )


@pytest.mark.parametrize(
    ("sender_id", "members", "chosen", "words"),
    [
        (None, [("a", "admin"), ("s1", "superadmin"), ("s2", "superadmin")], "s1", ""),
        ("s2", [("s1", "superadmin"), ("s2", "superadmin")], "s2", ""),
        ("a", [("a", "admin"), ("s1", "superadmin")], None, "not a superadmin"),
        ("zz", [("s1", "superadmin")], None, "not a member"),
        (None, [("a", "admin")], None, "no superadmin"),
        (None, [], None, "no superadmin"),
    ],
)
def test_sender_selection(
    sender_id: str | None, members: list[tuple[str, str]], chosen: str | None, words: str
) -> None:
    client = ChannelClient(TOKEN, sender_id=sender_id)
    try:
        if chosen is not None:
            assert client.superadmin(info_with(*members)).id == chosen
        else:
            with pytest.raises(SenderError, match=words):
                client.superadmin(info_with(*members))
    finally:
        client.close()


def test_account_info_tolerates_missing_fields() -> None:
    info = AccountInfo.from_answer(
        {"status": 0, "members": [{"id": "x"}, "junk", {"name": "no id"}]}
    )
    assert info.id == "" and info.name == "" and info.uri is None
    assert info.members == (Member(id="x", name="", role=""),)


# --------------------------------------------------------------------------
# against the real stand-in


@pytest.fixture
def client(standin: ViberStandIn) -> Any:
    with ChannelClient(STANDIN_TOKEN, api_url=standin.api_url, timeout=5) as c:
        yield c


def test_account_info_and_sender(client: ChannelClient, standin: ViberStandIn) -> None:
    info = client.get_account_info()
    assert info.name == standin.channel_name
    assert {m.role for m in info.members} == {"superadmin", "admin"}
    assert client.sender() == SUPERADMIN_ID


def test_post_is_recorded_with_exact_token(client: ChannelClient, standin: ViberStandIn) -> None:
    result = client.post(TextMessage("hello"))
    (record,) = standin.posts
    assert result.message_token == record.message_token
    assert isinstance(result.message_token, int) and result.message_token > 2**53
    assert record.payload == {"type": "text", "text": "hello", "from": SUPERADMIN_ID}
    assert record.sender == SUPERADMIN_ID


def test_post_picture_from_a_media_host(
    client: ChannelClient, standin: ViberStandIn, media_host: MediaHost, jpeg_bytes: bytes
) -> None:
    url = media_host.add("/m/photo.jpg", jpeg_bytes, "image/jpeg")
    client.post(PictureMessage(url, "caption", thumbnail=url))
    assert standin.posts[-1].payload["media"] == url
    assert ("HEAD", "/m/photo.jpg") in media_host.hits and (
        "GET",
        "/m/photo.jpg",
    ) in media_host.hits


def test_wrong_token_is_fatal_and_hides_the_token(standin: ViberStandIn) -> None:
    wrong = "0000000000000000-1111111111111111-2222222222222222"
    with (
        ChannelClient(wrong, api_url=standin.api_url, token_source="$MY_TOKEN") as client,
        pytest.raises(ViberFatalError, match=r"\$MY_TOKEN") as info,
    ):
        client.get_account_info()
    assert info.value.status == 2
    assert wrong not in str(info.value) and STANDIN_TOKEN not in str(info.value)


def test_webhook_not_set(client: ChannelClient, standin: ViberStandIn) -> None:
    client.remove_webhook()
    assert standin.webhook_url is None
    with pytest.raises(WebhookNotSetError):
        client.post(TextMessage("hi"))
    assert standin.posts == []


def test_set_webhook_calls_back_signed(
    client: ChannelClient, standin: ViberStandIn, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.calls.clear()
    client.set_webhook(webhook_receiver.url)
    ((body, headers),) = webhook_receiver.calls
    assert client.verify_signature(body, headers["X-Viber-Content-Signature"])
    event = json.loads(body)
    assert event["event"] == "webhook" and event["message_token"] > 2**53
    webhook_receiver.status = 404
    with pytest.raises(WebhookRefusedError, match="404"):
        client.set_webhook(webhook_receiver.url + "/other")
    assert standin.webhook_url == webhook_receiver.url


@pytest.mark.parametrize(
    ("kind", "options", "error", "recorded"),
    [
        ("http500", {}, ViberHTTPError, False),
        ("status12", {}, RateLimitedError, False),
        ("status", {"status": 7}, ViberFatalError, False),
        ("status", {"status": 3, "status_message": "badData"}, ViberRejectedError, False),
        ("drop_before", {}, ViberAmbiguousError, False),
        ("drop_after", {}, ViberAmbiguousError, True),
        ("drop", {}, ViberAmbiguousError, True),
        ("slow", {"delay": 5.0}, ViberAmbiguousError, True),
    ],
)
def test_faults(
    standin: ViberStandIn,
    kind: str,
    options: dict[str, Any],
    error: type[ViberError],
    recorded: bool,
) -> None:
    with ChannelClient(STANDIN_TOKEN, api_url=standin.api_url, timeout=0.5) as client:
        sender = client.sender()
        standin.fail_next(kind, **options)
        with pytest.raises(ViberError) as info:
            client.post(TextMessage("hi"), sender=sender)
        assert type(info.value) is error
        assert len(standin.posts) == (1 if recorded else 0)
        # the fault is used up: the next post goes through
        client.post(TextMessage("again"), sender=sender)
    assert standin.posts[-1].payload["text"] == "again"


def test_ambiguous_and_connect_errors_are_distinguishable(standin: ViberStandIn) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # nothing listens on `port` now: the request cannot leave
    dead = f"http://127.0.0.1:{port}/pa"
    with (
        ChannelClient(STANDIN_TOKEN, api_url=dead, timeout=2) as c,
        pytest.raises(ViberConnectError) as connect,
    ):
        c.post(TextMessage("hi"), sender=SUPERADMIN_ID)
    assert not isinstance(connect.value, ViberAmbiguousError)
    assert connect.value.retryable
    assert isinstance(connect.value.__cause__, httpx.ConnectError)
    standin.fail_next("slow", delay=5.0)
    with (
        ChannelClient(STANDIN_TOKEN, api_url=standin.api_url, timeout=0.3) as client,
        pytest.raises(ViberAmbiguousError) as ambiguous,
    ):
        client.post(TextMessage("hi"), sender=SUPERADMIN_ID)
    assert not isinstance(ambiguous.value, ViberConnectError)
    assert isinstance(ambiguous.value.__cause__, httpx.ReadTimeout)


def test_bad_api_url_is_a_connect_error() -> None:
    with (
        ChannelClient(TOKEN, api_url="ftp://viber.invalid/pa") as client,
        pytest.raises(ViberConnectError, match=r"viber\.api_url"),
    ):
        client.get_account_info()


def test_standin_refusal_reaches_the_caller_with_its_message(
    client: ChannelClient, standin: ViberStandIn
) -> None:
    with pytest.raises(ViberRejectedError, match="not a superadmin"):
        client.post(TextMessage("hi"), sender="Sxyz0987654321=")
    with pytest.raises(ViberRejectedError, match=r"text\.text"):
        client.post({"type": "text", "text": "a" * 7001}, validate=False)
    assert standin.posts == []
