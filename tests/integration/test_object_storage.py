"""`--out s3://bucket/prefix`: a run, a kill -9 mid-run, a resume from another machine's empty working
copy, and an analysis from the bucket, against a real S3 server (moto) on 127.0.0.1.

Real Ray, lm-eval, transformers and Parquet; the CLI in subprocesses, so that the kill is a real one.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from harness.config import REPO_ROOT
from tests.s3_server import SECRET_KEY

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SHARD_KEY = b"harness.shard_key"


def _harness(s3, staging, *argv, wait: bool = True):
    env = {**os.environ, **s3.env, "HARNESS_STAGING_DIR": str(staging), "HARNESS_MIRROR_EVERY_S": "0.3"}
    command = [sys.executable, "-m", "harness", *map(str, argv)]
    if not wait:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _run_argv(world, url) -> list:
    return ["run", "--models", f"{world['small']},{world['large']}", "--tasks", "tiny_mc,tiny_gen",
            "--include-path", world["tasks"], "--out", url, "--docs-per-shard", "1", "--device", "cpu",
            "--workers", "1", "--batch-size", "2", "--no-analyze"]


def _shard_objects(s3, bucket) -> list[str]:
    return sorted(k for k in s3.keys(bucket, "run/requests/") if k.endswith(".parquet"))


def test_a_run_killed_mid_way_resumes_from_the_bucket_and_is_analysed_there(s3, tiny_world, tmp_path):
    bucket = s3.create_bucket()
    url = f"s3://{bucket}/run"
    driver = _harness(s3, tmp_path / "machine-a", *_run_argv(tiny_world, url), wait=False)
    deadline = time.monotonic() + 300
    while len(_shard_objects(s3, bucket)) < 4 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)  # the machine dies: no clean-up of any kind
    driver.communicate()
    uploaded = _shard_objects(s3, bucket)
    assert len(uploaded) >= 4, "no shard reached the bucket before the kill"
    # Every object there is a whole shard: it reads, and its footer names its key.
    for key in uploaded:
        meta = pq.read_metadata(io.BytesIO(s3.get(bucket, key)))
        assert meta.metadata[SHARD_KEY].decode() == key.rsplit("/", 1)[1].removesuffix(".parquet")
    assert not any("/.tmp-" in k for k in s3.keys(bucket))

    # Another machine (an empty working copy) resumes: what reached the bucket is reused.
    resumed = _harness(s3, tmp_path / "machine-b", *_run_argv(tiny_world, url))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reused = int(resumed.stderr.split("reusing ", 1)[1].split(" ", 1)[0])
    assert reused >= len(uploaded)
    manifest = json.loads(s3.get(bucket, "run/manifest.json"))
    assert manifest["status"] == "done" and manifest["sweep"]["location"] == url
    assert len(_shard_objects(s3, bucket)) == len(manifest["shards"])  # each once, none extra
    assert {"run/scores.parquet"} <= s3.keys(bucket) and any(k.startswith("run/samples/") for k in s3.keys(bucket))
    for key in s3.keys(bucket):
        assert SECRET_KEY.encode() not in s3.get(bucket, key)

    # The analysis reads the bucket and writes its report there, from a third empty working copy.
    analysed = _harness(s3, tmp_path / "laptop", "analyze", url, "--n-boot", "20")
    assert analysed.returncode == 0, analysed.stderr[-3000:]
    assert {"run/report.md", "run/fits.parquet"} <= s3.keys(bucket)
    scores = pq.read_table(io.BytesIO(s3.get(bucket, "run/scores.parquet"))).to_pandas()
    assert set(scores.model) == {"tiny-s", "tiny-l"}
