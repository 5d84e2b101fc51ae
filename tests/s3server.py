"""A real S3-compatible server for the tests: moto's server mode
(``python -m moto.server``, from the dev extra ``moto[server]``) started as a
subprocess on a free port of 127.0.0.1, once per test session, stopped at
the end. Each test gets a bucket of its own whose objects under the media
prefix anyone may read over plain HTTP, as a public bucket (or a CDN) lets
Viber read them.

Nothing is installed here: ``make`` installs ``moto[server]`` and ``boto3``
(the ``dev`` and ``s3`` extras). Where they cannot be had, the S3 tests are
skipped saying why.

tests/conftest.py imports the fixtures, so every test module can use them.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from publisher.adapters.s3media import S3MediaStore

#: Credentials moto accepts (it checks none); never real ones.
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"
PREFIX = "media"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def env(self) -> dict[str, str]:
        """What a deployment puts in the service's environment."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }


@dataclass(frozen=True)
class Bucket:
    server: S3Server
    name: str
    prefix: str
    client: Any

    @property
    def media_url(self) -> str:
        """``[storage] media_url``."""
        return f"s3://{self.name}/{self.prefix}"

    @property
    def public_media_url(self) -> str:
        """``[storage] public_media_url``: where moto serves the objects."""
        return f"{self.server.endpoint}/{self.name}/{self.prefix}"

    def store(self) -> S3MediaStore:
        from publisher.adapters.s3media import S3MediaStore

        return S3MediaStore(self.name, self.prefix, self.public_media_url, client=self.client)

    def object_keys(self) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=self.name)
        return sorted(obj["Key"] for obj in answer.get("Contents", ()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing() -> str | None:
    for module, extra in (("boto3", "s3"), ("moto", "dev"), ("flask", "dev")):
        if importlib.util.find_spec(module) is None:
            return (
                f"S3 tests skipped: {module} is not installed; run make (it installs "
                f"the {extra} extra: pip install -e '.[dev,video,s3]')"
            )
    return None


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """moto's server on a free port of 127.0.0.1 until the block ends;
    RuntimeError (with its output) when it does not start. The tests' fixture
    and bench/replicas.py both start it this way."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"moto's server exited: {output}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("moto's server did not listen within 30 s") from None
                    time.sleep(0.1)
            yield S3Server(f"http://127.0.0.1:{port}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def public_bucket(server: S3Server, name: str, prefix: str = PREFIX) -> Bucket:
    """A new bucket ``name`` whose objects under ``prefix`` anyone may read."""
    client = server.client()
    client.create_bucket(Bucket=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                # AWS grants HEAD with s3:GetObject; moto asks for s3:HeadObject too.
                "Action": ["s3:GetObject", "s3:HeadObject"],
                "Resource": f"arn:aws:s3:::{name}/{prefix}/*",
            }
        ],
    }
    client.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return Bucket(server, name, prefix, client)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    why = _missing()
    if why:
        pytest.skip(why)
    try:
        with moto_server() as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Bucket:
    """A fresh bucket whose objects under :data:`PREFIX` anyone may read."""
    return public_bucket(s3_server, f"media-{os.getpid()}-{next(_numbers)}")
