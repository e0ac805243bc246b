"""A real S3-compatible server on 127.0.0.1 for tests: moto in server mode, in this process.

It speaks the S3 HTTP API, so pyarrow's S3 client (and any subprocess given `server.env`) talks to
it exactly as to AWS. It listens on 127.0.0.1 only, on a free port; nothing here ever names
another address (no AWS endpoint, no instance-metadata lookups).

Tests get one through the session fixture `s3` (tests/conftest.py); `s3.apply_env(monkeypatch)` points
this process's clients at it and `s3.create_bucket()` makes a fresh bucket.
A subprocess (the CLI in an integration test) gets the same variables with `env={**os.environ, **s3.env}`.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

ACCESS_KEY = "harness-test-key"
SECRET_KEY = "harness-test-secret-do-not-print"
REGION = "us-east-1"
# Variables that would make a client look elsewhere (a profile, another endpoint, a role): unset.
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_ROLE_ARN",
          "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
          "AWS_CONTAINER_CREDENTIALS_FULL_URI", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
          "ALL_PROXY", "all_proxy")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """moto's S3 on 127.0.0.1:<free port>; a context manager. `env` holds the AWS_* variables
    that point a client at it; `client()` is a boto3 client for setting up and inspecting."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self.env: dict[str, str] = {}

    def __enter__(self) -> S3Server:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        assert host == "127.0.0.1", host
        self.endpoint = f"http://127.0.0.1:{port}"
        self.env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint,
                    "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for a role
                    "AWS_CONFIG_FILE": "/nonexistent/harness-test/aws-config",
                    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/harness-test/aws-credentials",
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def apply_env(self, monkeypatch) -> None:
        """Point this process's AWS clients at the server (undone by pytest after the test)."""
        for name in _UNSET:
            monkeypatch.delenv(name, raising=False)
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it."""
        client = self.client()
        for key in self.keys(name):
            client.delete_object(Bucket=name, Key=key)
        client.delete_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        """Every object key under `prefix` (directory markers "x/" included)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

    def get(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    @contextmanager
    def refusing_credentials(self) -> Iterator[None]:
        """Within the block the server checks every request's signature against its (empty) IAM,
        so every key is refused, as AWS refuses a wrong key. moto keeps this switch per process."""
        self._reset_auth(b"0")
        try:
            yield
        finally:
            self._reset_auth(b"inf")

    def _reset_auth(self, count: bytes) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=count, method="POST",
                                         headers={"Content-Type": "text/plain"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to 127.0.0.1
        with opener.open(request, timeout=10) as response:
            response.read()
