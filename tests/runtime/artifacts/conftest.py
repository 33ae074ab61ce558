"""moto's S3 in server mode, as a separate process over real HTTP on a free port (one per
test module, its state reset for each test), and the settings that point a store at it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agentfleet_runtime.artifacts.settings import S3Settings
from agentfleet_runtime.testing.servers import free_port

BUCKET = "agentfleet-artifacts"
REGION = "us-east-1"
KEY = "testing"


@dataclass
class MotoS3:
    url: str

    def client(self, service: str = "s3", *, key: str = KEY, secret: str = KEY) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    def settings(self, *, url: str | None = None, **overrides: Any) -> S3Settings:
        values: dict[str, Any] = {
            "bucket": BUCKET,
            "endpoint_url": url or self.url,
            "region": REGION,
            "addressing_style": "path",
            "access_key_id": KEY,
            "secret_access_key": KEY,
            "connect_timeout_seconds": 2.0,
            "read_timeout_seconds": 5.0,
        }
        values.update(overrides)
        return S3Settings.model_validate(values)

    def post(self, path: str, body: bytes = b"") -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read() or b"{}")
            return result

    def require_auth(self, on: bool) -> None:
        """moto checks credentials and IAM policies from now on (``on``), or not."""
        self.post("/moto-api/reset-auth", b"0" if on else b"inf")

    def objects(self, prefix: str = "") -> dict[str, int]:
        listing = self.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return {item["Key"]: item["Size"] for item in listing.get("Contents", [])}


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def s3(moto_server: str) -> MotoS3:
    """A fresh moto (no buckets, no IAM users, auth off) with the artifacts bucket."""
    moto = MotoS3(moto_server)
    moto.require_auth(False)
    moto.post("/moto-api/reset")
    moto.client().create_bucket(Bucket=BUCKET)
    return moto
