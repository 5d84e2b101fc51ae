"""The Viber stand-in: auth, webhook, every post check, media fetching, faults."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import STANDIN_TOKEN as TOKEN
from PIL import Image

from publisher.adapters.standin import ADMIN_ID, SUPERADMIN_ID, ViberStandIn
from publisher.adapters.viber.signature import verify_signature
from publisher.core.limits import PICTURE_MAX_BYTES, REQUEST_MAX_BYTES, THUMBNAIL_MAX_BYTES

#: One client for the whole module (building one costs ~0.1 s).
HTTP = httpx.Client(timeout=10)
VIDEOS = Path(__file__).parent / "data" / "video"
MP4 = (VIDEOS / "h264_2s.mp4").read_bytes()


def call(
    standin: ViberStandIn,
    endpoint: str,
    body: dict[str, Any] | bytes | None = None,
    *,
    token: str | None = TOKEN,
    where: str = "both",
    method: str = "POST",
) -> dict[str, Any]:
    headers = {}
    if token is not None and where in ("both", "header"):
        headers["X-Viber-Auth-Token"] = token
    if isinstance(body, dict):
        body = dict(body)
        if token is not None and where in ("both", "body"):
            body["auth_token"] = token
        content = json.dumps(body).encode()
    else:
        content = body or b""
    response = HTTP.request(
        method, f"{standin.api_url}/{endpoint}", content=content, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def post(standin: ViberStandIn, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return call(standin, "post", {"from": SUPERADMIN_ID, **payload}, **kw)


def padded_jpeg(size: int) -> bytes:
    """A real JPEG padded after its end marker to exactly ``size`` bytes."""
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(out, "JPEG")
    data = out.getvalue()
    assert len(data) <= size
    return data + b"\x00" * (size - len(data))


# --------------------------------------------------------------------------
# auth and routing


def test_account_info_by_post_and_get(standin: ViberStandIn) -> None:
    by_post = call(standin, "get_account_info", {})
    by_get = call(standin, "get_account_info", None, method="GET")
    assert by_post == by_get
    assert by_post["status"] == 0 and by_post["name"] == "Stand-in Channel"
    roles = {m["id"]: m["role"] for m in by_post["members"]}
    assert roles == {SUPERADMIN_ID: "superadmin", ADMIN_ID: "admin"}


@pytest.mark.parametrize(
    ("token", "where", "status", "message"),
    [
        (TOKEN, "header", 0, "ok"),
        (TOKEN, "body", 0, "ok"),
        (None, "both", 2, "missing_auth_token"),
        ("wrong", "header", 2, "invalidAuthToken"),
        ("wrong", "body", 2, "invalidAuthToken"),
    ],
)
def test_auth(
    standin: ViberStandIn, token: str | None, where: str, status: int, message: str
) -> None:
    answer = call(standin, "get_account_info", {}, token=token, where=where)
    assert (answer["status"], answer["status_message"]) == (status, message)


def test_header_and_body_tokens_must_both_be_right(standin: ViberStandIn) -> None:
    response = HTTP.post(
        f"{standin.api_url}/get_account_info",
        json={"auth_token": "wrong"},
        headers={"X-Viber-Auth-Token": TOKEN},
    )
    assert response.json()["status"] == 2


def test_unknown_paths_and_methods(standin: ViberStandIn) -> None:
    assert HTTP.post(f"{standin.api_url}/send_message", json={}).status_code == 404
    assert HTTP.post(f"{standin.url}/post", json={}).status_code == 404
    assert HTTP.get(f"{standin.api_url}/post").status_code == 405


def test_token_is_never_logged(standin: ViberStandIn) -> None:
    post(standin, {"type": "text", "text": "hi"})
    assert TOKEN not in repr(standin.requests) and TOKEN not in repr(standin.posts)


# --------------------------------------------------------------------------
# webhook


def test_set_webhook_calls_the_url_signed(standin: ViberStandIn, webhook_receiver: Any) -> None:
    standin.preset_webhook(None)
    answer = call(standin, "set_webhook", {"url": webhook_receiver.url})
    assert answer["status"] == 0
    assert standin.webhook_url == webhook_receiver.url
    ((body, headers),) = webhook_receiver.calls
    assert verify_signature(body, headers["X-Viber-Content-Signature"], TOKEN)
    event = json.loads(body)
    assert event["event"] == "webhook"
    assert isinstance(event["timestamp"], int) and event["message_token"] > 2**53
    assert event["chat_hostname"]


@pytest.mark.parametrize("code", [201, 404, 500])
def test_set_webhook_needs_200(standin: ViberStandIn, webhook_receiver: Any, code: int) -> None:
    webhook_receiver.status = code
    answer = call(standin, "set_webhook", {"url": webhook_receiver.url + "/new"})
    assert answer["status"] == 1 and str(code) in answer["status_message"]
    assert standin.webhook_url == webhook_receiver.url  # unchanged


def test_set_webhook_unreachable_and_bad_urls(standin: ViberStandIn) -> None:
    dead = standin.url.rsplit(":", 1)[0] + ":1/hook"
    assert call(standin, "set_webhook", {"url": dead})["status"] == 1
    assert call(standin, "set_webhook", {"url": "not a url"})["status"] == 1
    assert call(standin, "set_webhook", {})["status"] == 4
    assert call(standin, "set_webhook", {"url": 5})["status"] == 3


def test_remove_webhook_then_posts_need_one(standin: ViberStandIn) -> None:
    assert call(standin, "set_webhook", {"url": ""})["status"] == 0
    assert standin.webhook_url is None
    answer = post(standin, {"type": "text", "text": "hi"})
    assert answer["status"] == 10
    assert standin.posts == []


def test_require_https_refuses_http_webhooks(webhook_receiver: Any) -> None:
    with ViberStandIn(TOKEN, require_https=True).serve() as standin:
        answer = call(standin, "set_webhook", {"url": webhook_receiver.url})
    assert answer["status"] == 1 and "HTTPS" in answer["status_message"]
    assert webhook_receiver.calls == []


# --------------------------------------------------------------------------
# posts


def test_text_post_is_recorded(standin: ViberStandIn) -> None:
    first = post(standin, {"type": "text", "text": "one"})
    second = post(standin, {"type": "text", "text": "two"}, where="header")
    assert first["status"] == second["status"] == 0
    assert first["message_token"] != second["message_token"]
    assert all(a["message_token"] > 2**53 for a in (first, second))
    assert [p.message_token for p in standin.posts] == [
        first["message_token"],
        second["message_token"],
    ]
    assert standin.posts[0].payload == {"from": SUPERADMIN_ID, "type": "text", "text": "one"}
    assert standin.counts["post"] == 2
    assert all("auth_token" not in (r.payload or {}) for r in standin.requests)


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"type": "text", "text": "a" * 7000}, 0, "ok"),
        ({"type": "text", "text": "a" * 7001}, 3, "text.text"),
        ({"type": "text"}, 4, "missingData: text.text: missing"),
        ({}, 4, "missingData: type: missing"),
        ({"type": "location", "location": {"lat": 1}}, 4, "missingData: location.location.lon"),
        ({"type": "poll"}, 3, "type"),
        ({"type": "url", "media": "https://e.org/x", "text": "t" * 121}, 3, "url.text"),
        ({"type": "contact", "contact": {"name": "n" * 29, "phone_number": "1"}}, 3, "name"),
        ({"type": "location", "location": {"lat": 91, "lon": 0}}, 3, "location.lat"),
        ({"type": "sticker", "sticker_id": 40133}, 0, "ok"),
        ({"type": "picture", "text": "", "media": "https://e.org/a.png"}, 3, ".jpg"),
        ({"type": "file", "media": "https://e.org/f", "size": 1, "file_name": "a.exe"}, 3, ".exe"),
    ],
)
def test_post_checks_each_type(
    standin: ViberStandIn, payload: dict[str, Any], status: int, words: str
) -> None:
    answer = post(standin, payload)
    assert answer["status"] == status
    assert words in answer["status_message"]
    assert len(standin.posts) == (1 if status == 0 else 0)


def test_post_sender_rules(standin: ViberStandIn) -> None:
    text = {"type": "text", "text": "hi"}
    assert call(standin, "post", text)["status"] == 4  # no "from"
    answer = call(standin, "post", {**text, "from": ADMIN_ID})
    assert answer["status"] == 3 and "superadmin" in answer["status_message"]
    assert call(standin, "post", {**text, "from": "nobody"})["status"] == 3
    assert standin.posts == []


def test_request_over_30kb_is_bad_data(standin: ViberStandIn) -> None:
    payload = {"type": "text", "text": "\x01" * 6000, "from": SUPERADMIN_ID}
    content = json.dumps({**payload, "auth_token": TOKEN}).encode()
    assert len(content) > REQUEST_MAX_BYTES
    answer = call(standin, "post", content, where="header")
    assert answer["status"] == 3
    assert answer["status_message"].startswith(f"badData: request: {len(content)} bytes")
    assert "30 KB" in answer["status_message"]


def test_body_that_is_not_json(standin: ViberStandIn) -> None:
    assert call(standin, "post", b"{nope", where="header")["status"] == 3
    assert call(standin, "post", b"[1]", where="header")["status"] == 3


def test_local_channel_mode_needs_no_webhook() -> None:
    standin = ViberStandIn(TOKEN, require_webhook=False)
    with httpx.Client(transport=httpx.WSGITransport(app=standin.app)) as client:
        answer = client.post(
            "http://local/pa/post",
            json={"auth_token": TOKEN, "from": SUPERADMIN_ID, "type": "text", "text": "hi"},
        ).json()
    assert answer["status"] == 0
    assert standin.posts[0].message_token == answer["message_token"]


def test_concurrent_posts_are_all_recorded(standin: ViberStandIn) -> None:
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(5):
            a = post(standin, {"type": "text", "text": f"{n}-{i}"})
            with lock:
                answers.append(a)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a["status"] for a in answers] == [0] * 20
    assert len(standin.posts) == 20
    assert len({p.message_token for p in standin.posts}) == 20
    assert standin.counts["post"] == 20


# --------------------------------------------------------------------------
# media: fetched like Viber does


def picture(url: str, thumbnail: str | None = None) -> dict[str, Any]:
    payload = {"type": "picture", "text": "", "media": url}
    if thumbnail:
        payload["thumbnail"] = thumbnail
    return payload


def test_real_jpeg_is_accepted(standin: ViberStandIn, media_host: Any, jpeg_bytes: bytes) -> None:
    url = media_host.add("/a/photo.JPEG", jpeg_bytes, "image/jpeg")
    assert post(standin, picture(url, thumbnail=url))["status"] == 0
    assert media_host.hits.count(("HEAD", "/a/photo.JPEG")) == 2
    assert media_host.hits.count(("GET", "/a/photo.JPEG")) == 2


@pytest.mark.parametrize(
    ("path", "kind", "options", "words"),
    [
        ("/png.jpg", "png", {}, "not a JPEG"),
        ("/type.jpg", "jpeg", {"content_type": "image/png"}, "Content-Type 'image/png'"),
        ("/nohead.jpg", "jpeg", {"head": False}, "HEAD"),
        ("/gone.jpg", "jpeg", {"status": 404}, "HTTP 404"),
        ("/short.jpg", "jpeg", {"content_length": 100}, "not a readable image"),
        ("/junk.jpg", "junk", {}, "not a readable image"),
    ],
)
def test_bad_pictures_are_refused(
    standin: ViberStandIn,
    media_host: Any,
    jpeg_bytes: bytes,
    png_bytes: bytes,
    path: str,
    kind: str,
    options: dict[str, Any],
    words: str,
) -> None:
    body = {"png": png_bytes, "jpeg": jpeg_bytes, "junk": b"\xff\xd8 not really"}[kind]
    content_type = options.pop("content_type", "image/jpeg")
    url = media_host.add(path, body, content_type, **options)
    answer = post(standin, picture(url))
    assert answer["status"] == 3
    assert answer["status_message"].startswith("badData: picture.media:")
    assert words in answer["status_message"]
    assert standin.posts == []


def test_missing_media_url(standin: ViberStandIn, media_host: Any) -> None:
    answer = post(standin, picture(media_host.base + "/nothing.jpg"))
    assert answer["status"] == 3 and "404" in answer["status_message"]


@pytest.mark.parametrize(
    ("field", "limit"),
    [("media", PICTURE_MAX_BYTES), ("thumbnail", THUMBNAIL_MAX_BYTES)],
)
def test_picture_size_limits_both_sides(
    standin: ViberStandIn, media_host: Any, jpeg_bytes: bytes, field: str, limit: int
) -> None:
    small = media_host.add("/small.jpg", jpeg_bytes, "image/jpeg")
    at = media_host.add("/at.jpg", padded_jpeg(limit), "image/jpeg")
    over = media_host.add("/over.jpg", padded_jpeg(limit + 1), "image/jpeg")
    make = (lambda u: picture(u)) if field == "media" else (lambda u: picture(small, u))
    assert post(standin, make(at))["status"] == 0
    answer = post(standin, make(over))
    assert answer["status"] == 3
    assert f"picture.{field}" in answer["status_message"] and str(limit) in answer["status_message"]


def test_private_media_refused_when_told(media_host: Any, jpeg_bytes: bytes) -> None:
    url = media_host.add("/p.jpg", jpeg_bytes, "image/jpeg")
    standin = ViberStandIn(TOKEN, allow_private_media=False, require_webhook=False)
    with standin.serve():
        answer = post(standin, picture(url))
    assert answer["status"] == 3 and "private" in answer["status_message"]
    assert media_host.hits == []


def test_video_checks(standin: ViberStandIn, media_host: Any) -> None:
    url = media_host.add("/v/clip.mp4", MP4, "video/mp4")
    ok = {"type": "video", "media": url, "size": len(MP4), "duration": 3}
    assert post(standin, ok)["status"] == 0
    wrong_size = post(standin, {**ok, "size": len(MP4) + 1})
    assert wrong_size["status"] == 3 and "size" in wrong_size["status_message"]
    fake = media_host.add("/v/fake.mp4", b"\x00" * 50, "video/mp4")
    not_mp4 = post(standin, {**ok, "media": fake, "size": 50})
    assert not_mp4["status"] == 3 and "MP4" in not_mp4["status_message"]
    mov = media_host.add("/v/clip.mov", MP4, "video/mp4")
    assert post(standin, {**ok, "media": mov})["status"] == 3
    assert len(standin.posts) == 1


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("hevc_1s.mp4", "hvc1, not H.264"),
        ("mpeg4_2s.mp4", "mp4v, not H.264"),
        ("h264_190s.mp4", "over Viber's limit of 180 s"),
    ],
)
def test_video_judged_by_the_cores_rules(
    standin: ViberStandIn, media_host: Any, name: str, words: str
) -> None:
    # The duration a post states is not enough: the stand-in reads the file,
    # with the same check_video the publisher applies before posting.
    data = (VIDEOS / name).read_bytes()
    url = media_host.add(f"/v/{name}", data, "video/mp4")
    answer = post(standin, {"type": "video", "media": url, "size": len(data), "duration": 2})
    assert answer["status"] == 3
    assert answer["status_message"].startswith("badData: video.media:")
    assert words in answer["status_message"]
    assert standin.posts == []


def test_file_size_must_match(standin: ViberStandIn, media_host: Any) -> None:
    url = media_host.add("/f/report.pdf", b"%PDF-1.4 ...", "application/pdf")
    ok = {"type": "file", "media": url, "size": 12, "file_name": "report.pdf"}
    assert post(standin, ok)["status"] == 0
    assert post(standin, {**ok, "size": 13})["status"] == 3


# --------------------------------------------------------------------------
# faults


def test_fault_queue(standin: ViberStandIn) -> None:
    text = {"type": "text", "text": "hi"}
    standin.fail_next("status", 2, status=5, status_message="receiverNotRegistered")
    standin.fail_next("status12", endpoint=None)
    # the any-endpoint fault is taken by the first call of any kind
    assert call(standin, "get_account_info", {})["status"] == 12
    assert post(standin, text)["status"] == 5
    assert post(standin, text)["status"] == 5
    assert post(standin, text)["status"] == 0
    assert [r.fault for r in standin.requests] == ["status12", "status", "status", None]
    assert len(standin.posts) == 1


def test_http500_fault(standin: ViberStandIn) -> None:
    standin.fail_next("http500")
    response = HTTP.post(
        f"{standin.api_url}/post",
        json={"auth_token": TOKEN, "from": SUPERADMIN_ID, "type": "text", "text": "x"},
    )
    assert response.status_code == 500
    assert standin.posts == []


@pytest.mark.parametrize(("kind", "recorded"), [("drop_before", 0), ("drop_after", 1)])
def test_drop_faults_close_without_answer(standin: ViberStandIn, kind: str, recorded: int) -> None:
    standin.fail_next(kind)
    with pytest.raises(httpx.RemoteProtocolError):
        HTTP.post(
            f"{standin.api_url}/post",
            json={"auth_token": TOKEN, "from": SUPERADMIN_ID, "type": "text", "text": "x"},
        )
    assert len(standin.posts) == recorded


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("explode",), {}),
        (("status",), {}),
        (("http500",), {"endpoint": "send_message"}),
    ],
)
def test_fail_next_refuses_nonsense(
    standin: ViberStandIn, args: tuple[str], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        standin.fail_next(*args, **kwargs)


def test_reset_restores_the_channel(standin: ViberStandIn) -> None:
    standin.members.append({"id": "x", "name": "X", "role": "superadmin"})
    standin.channel_name = "Renamed"
    post(standin, {"type": "text", "text": "x"})
    standin.fail_next("http500")
    standin.reset()
    assert standin.posts == [] and standin.requests == [] and standin.webhook_url is None
    assert standin.channel_name == "Stand-in Channel" and len(standin.members) == 2
    standin.preset_webhook("http://127.0.0.1:9/hook")
    assert post(standin, {"type": "text", "text": "x"})["status"] == 0
