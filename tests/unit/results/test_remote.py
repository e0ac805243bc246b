"""Results folders on object storage, against a real S3 server on 127.0.0.1 (moto, tests/s3_server.py)."""

from __future__ import annotations

import io
import os
import pickle
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from harness.errors import UserError
from harness.results import remote as rm
from harness.results.mirror import Mirror
from harness.results.remote import is_remote, open_remote, pull, push, staging_dir
from harness.files import atomic_path
from tests.s3_server import SECRET_KEY, closed_port


@pytest.fixture
def s3_env(s3, monkeypatch):
    """AWS_* point at the local server: even a broken implementation talks to 127.0.0.1 only."""
    s3.apply_env(monkeypatch)
    return s3


@pytest.fixture
def bucket(s3_env):
    return s3_env.create_bucket()


def _parquet_bytes(n: int, seed: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"doc_id": list(range(n)), "x": [float(seed + i) for i in range(n)]}), sink)
    return sink.getvalue()


def _write(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    """Write a file as the harness does (temporary name, rename): a push never sees half of it."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))


def _make_folder(root: Path) -> dict[str, bytes]:
    """A run folder as the harness writes it, plus a temporary file and a lock; returns the files
    that belong to the folder (what must reach the bucket), by relative path."""
    files = {
        "manifest.json": b'{"run": 1}\n',
        "report.md": b"# report\n",
        "requests/m-1/main/task_a/a1.parquet": _parquet_bytes(5, 1),
        "requests/m-1/main/task_a/a2.parquet": _parquet_bytes(7, 2),
        "requests/m-2/step100/task_b/b1.parquet": _parquet_bytes(3, 3),
        "samples/m-1/main/task_a.parquet": _parquet_bytes(12, 4),
        ".retired/requests/m-1/main/task_a/old.parquet": _parquet_bytes(2, 5),
        "plots/curve.png": bytes(range(256)) * 4,
    }
    for rel, data in files.items():
        _write(root / rel, data)
    (root / "requests/m-1/main/task_a/.tmp-0123abcd.parquet").write_bytes(b"half a shard")
    (root / ".tmp-feedbeef.json").write_bytes(b"{")
    (root / ".lock").write_text('{"pid": 1}')
    return files


def _read_folder(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _touch_later(path: Path, data: bytes) -> None:
    """Rewrite a file and move its mtime a second on, as a rewrite a moment later would."""
    _write(path, data, mtime_ns=path.stat().st_mtime_ns + 1_000_000_000)


def _new_process(monkeypatch) -> None:
    """Forget what this process pushed, as a new process (a resume) would not know it."""
    monkeypatch.setattr(rm, "_RECORDS", {})


def _wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------------------------------------


def test_is_remote():
    assert is_remote("s3://bucket/run") and is_remote("gs://b/p") and is_remote("memory://b/p")
    assert not is_remote("file:///tmp/run")
    assert not is_remote("/tmp/run") and not is_remote("runs/a") and not is_remote("C:\\runs\\a")
    assert not is_remote(Path("s3://bucket/run"))  # a Path is a local path, whatever it spells
    assert not is_remote("not a url: s3://x")


@pytest.mark.parametrize("url, words", [
    ("xyz://bucket/run", ["unknown storage scheme 'xyz://'"]),
    ("s3://", ["no bucket", "s3://BUCKET/PREFIX"]),
    ("s3:///run", ["no bucket"]),
    ("s3://bucket/run?region=eu-west-1", ["AWS_ENDPOINT_URL"]),
    ("s3://bucket/a/../b", ["'..'"]),
    ("file:///tmp/run", ["not an object-store URL", "local path"]),
    ("https://example.invalid/run", ["read-only"]),
])
def test_open_remote_rejects_bad_urls_before_any_request(url, words, s3_env):
    with pytest.raises(UserError) as exc:
        open_remote(url)
    message = _one_line(exc)
    assert message.startswith(url) and all(w in message for w in words), message


def test_missing_bucket_is_one_line(bucket, s3):
    start = time.monotonic()
    with pytest.raises(UserError) as exc:
        open_remote("s3://no-such-bucket-here/run")
    message = _one_line(exc)
    assert "s3://no-such-bucket-here/run" in message and "does not exist" in message
    assert "aws s3 mb s3://no-such-bucket-here" in message
    assert time.monotonic() - start < 5


def test_unreachable_endpoint_is_one_line_and_quick(bucket, monkeypatch):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    start = time.monotonic()
    with pytest.raises(UserError) as exc:
        open_remote(f"s3://{bucket}/run")
    message = _one_line(exc)
    assert f"s3://{bucket}/run" in message and "cannot reach" in message and endpoint in message
    assert "AWS_ENDPOINT_URL" in message
    assert time.monotonic() - start < 10


def test_refused_credentials_are_one_line(bucket, s3):
    with s3.refusing_credentials(), pytest.raises(UserError) as exc:
        open_remote(f"s3://{bucket}/run")
    message = _one_line(exc)
    assert "access denied" in message and "AWS_ACCESS_KEY_ID" in message and f"s3://{bucket}/run" in message
    assert SECRET_KEY not in message


def test_open_remote_normalises_and_hides_the_secret(bucket):
    remote = open_remote(f"s3://{bucket}/runs/ladder/")
    assert remote.url == f"s3://{bucket}/runs/ladder" and remote.root == f"{bucket}/runs/ladder"
    assert SECRET_KEY not in repr(remote)
    assert SECRET_KEY.encode() not in pickle.dumps(remote)
    copy = pickle.loads(pickle.dumps(remote))  # a worker can rebuild it, with its own credentials
    assert copy == remote and repr(copy) == repr(remote)


def test_staging_dir_is_stable_per_url(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv(rm.STAGING_ENV, str(tmp_path / "staging"))
    a = staging_dir(open_remote(f"s3://{bucket}/run"))
    assert a.is_dir() and a.parent == tmp_path / "staging"
    assert staging_dir(open_remote(f"s3://{bucket}/run/")) == a
    assert staging_dir(open_remote(f"s3://{bucket}/run2")) != a
    monkeypatch.delenv(rm.STAGING_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    b = staging_dir(open_remote(f"s3://{bucket}/run"))
    assert b.parent == tmp_path / "home" / ".cache" / "harness" / "remote" and b.name == a.name
    assert bucket in b.name


def test_push_then_pull_round_trip_is_byte_identical(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/runs/one")
    files = _make_folder(tmp_path / "a")
    assert push(remote, tmp_path / "a") == len(files)
    assert s3.keys(bucket) == {f"runs/one/{rel}" for rel in files}  # no .tmp-*, no .lock
    assert pull(remote, tmp_path / "b") == len(files)
    assert _read_folder(tmp_path / "b") == files
    assert pq.read_table(tmp_path / "b/requests/m-1/main/task_a/a2.parquet").num_rows == 7
    assert not list((tmp_path / "b").rglob(".tmp-*"))


def test_unchanged_files_are_not_uploaded_again(bucket, s3, tmp_path, monkeypatch):
    remote = open_remote(f"s3://{bucket}/run")
    files = _make_folder(tmp_path / "a")
    assert push(remote, tmp_path / "a") == len(files)
    assert push(remote, tmp_path / "a") == 0
    # A resume in a new process: the pulled files are in step with the bucket (they carry their
    # objects' mtimes), and its first push, which compares with the listing, uploads none.
    assert pull(remote, tmp_path / "b") == len(files)
    _new_process(monkeypatch)
    assert push(remote, tmp_path / "b") == 0
    assert pull(remote, tmp_path / "b") == 0


def test_rewritten_file_is_uploaded_again(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/run")
    _make_folder(tmp_path / "a")
    push(remote, tmp_path / "a")
    _touch_later(tmp_path / "a/manifest.json", b'{"run": 2}\n')  # same size, new content
    _write(tmp_path / "a/requests/m-1/main/task_a/a3.parquet", _parquet_bytes(4, 9))
    assert push(remote, tmp_path / "a") == 2
    assert s3.get(bucket, "run/manifest.json") == b'{"run": 2}\n'
    assert s3.get(bucket, "run/requests/m-1/main/task_a/a3.parquet") == _parquet_bytes(4, 9)


def test_first_push_uploads_what_differs_from_the_bucket(bucket, s3, tmp_path, monkeypatch):
    remote = open_remote(f"s3://{bucket}/run")
    files = _make_folder(tmp_path / "a")
    push(remote, tmp_path / "a")
    pull(remote, tmp_path / "b")
    _new_process(monkeypatch)
    _touch_later(tmp_path / "b/manifest.json", b'{"run": 3}\n')  # rewritten before any push
    _write(tmp_path / "b/report.md", b"# a longer report\n")
    (tmp_path / "b/requests/m-1/main/task_a/a1.parquet").unlink()
    assert push(remote, tmp_path / "b") == 2
    assert s3.get(bucket, "run/manifest.json") == b'{"run": 3}\n'
    assert s3.get(bucket, "run/report.md") == b"# a longer report\n"
    assert "run/requests/m-1/main/task_a/a1.parquet" in s3.keys(bucket)  # not deleted unless asked
    assert len(files) == len(s3.keys(bucket))


def test_a_failed_upload_is_retried_and_the_others_are_kept(bucket, s3, tmp_path, monkeypatch):
    remote = open_remote(f"s3://{bucket}/run")
    files = _make_folder(tmp_path / "a")
    upload = rm._upload

    def failing(remote, rel, path):
        if rel == "report.md":
            raise OSError("AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate.")
        return upload(remote, rel, path)

    monkeypatch.setattr(rm, "_upload", failing)
    with pytest.raises(UserError) as exc:
        push(remote, tmp_path / "a")
    assert _one_line(exc).startswith(f"s3://{bucket}/run: uploading report.md failed (AWS Error SLOW_DOWN")
    assert s3.keys(bucket) == {f"run/{rel}" for rel in files if rel != "report.md"}
    monkeypatch.setattr(rm, "_upload", upload)
    assert push(remote, tmp_path / "a") == 1  # only the one that failed
    assert s3.get(bucket, "run/report.md") == files["report.md"]


def test_delete_missing_removes_objects_of_moved_files(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/run")
    _make_folder(tmp_path / "a")
    push(remote, tmp_path / "a")
    old = "requests/m-2/step100/task_b/b1.parquet"
    new = ".retired/" + old
    (tmp_path / "a" / new).parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_path / "a" / old, tmp_path / "a" / new)
    assert push(remote, tmp_path / "a") == 1
    assert {f"run/{old}", f"run/{new}"} <= s3.keys(bucket)
    assert push(remote, tmp_path / "a", delete_missing=True) == 0
    keys = s3.keys(bucket)
    assert f"run/{new}" in keys and f"run/{old}" not in keys
    assert pull(remote, tmp_path / "c") == len(_read_folder(tmp_path / "c"))
    assert not (tmp_path / "c" / old).exists() and (tmp_path / "c" / new).is_file()


def test_pull_of_an_empty_prefix_is_zero(bucket, tmp_path):
    remote = open_remote(f"s3://{bucket}/nothing/here")
    assert pull(remote, tmp_path / "a") == 0
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_pull_skips_temporaries_and_replaces_files_of_another_size(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/run")
    s3.put(bucket, "run/requests/m/r/t/k1.parquet", _parquet_bytes(5, 1))
    s3.put(bucket, "run/requests/m/r/t/.tmp-99.parquet", b"partial")
    s3.put(bucket, "run/manifest.json", b'{"new": true}')
    local = tmp_path / "a"
    (local / "requests/m/r/t").mkdir(parents=True)
    (local / "requests/m/r/t/k1.parquet").write_bytes(b"cut short")  # a damaged local copy
    (local / "manifest.json").write_bytes(b'{"old": 1}\n')
    assert pull(remote, local) == 2
    assert (local / "requests/m/r/t/k1.parquet").read_bytes() == _parquet_bytes(5, 1)
    assert (local / "manifest.json").read_bytes() == b'{"new": true}'
    assert not list(local.rglob(".tmp-*"))


def test_pull_never_leaves_a_partial_file(bucket, s3, tmp_path, monkeypatch):
    """An object that changes while it is read (its size is not the listed one) is not kept."""
    remote = open_remote(f"s3://{bucket}/run")
    s3.put(bucket, "run/requests/m/r/t/k1.parquet", _parquet_bytes(5, 1))
    listed = rm._remote_files

    def stale_listing(remote):
        return {rel: pafs.FileInfo(info.path, pafs.FileType.File, size=info.size + 1, mtime_ns=info.mtime_ns)
                for rel, info in listed(remote).items()}

    monkeypatch.setattr(rm, "_remote_files", stale_listing)
    with pytest.raises(UserError) as exc:
        pull(remote, tmp_path / "a")
    assert "downloading requests/m/r/t/k1.parquet" in _one_line(exc)
    assert not [p for p in (tmp_path / "a").rglob("*") if p.is_file()]


def test_fsspec_scheme_round_trip(tmp_path):
    remote = open_remote("memory://harness-test/run")
    files = _make_folder(tmp_path / "a")
    assert push(remote, tmp_path / "a") == len(files)
    assert push(remote, tmp_path / "a") == 0
    assert pull(remote, tmp_path / "b") == len(files)
    assert _read_folder(tmp_path / "b") == files


def test_mirror_pushes_in_the_background_and_on_close(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/run")
    local = tmp_path / "a"
    local.mkdir()
    mirror = Mirror(remote, local, every_s=0.05).start()
    _write(local / "manifest.json", b"{}")
    assert _wait_for(lambda: "run/manifest.json" in s3.keys(bucket))  # no flush: the thread did it
    files = _make_folder(local)
    mirror.close()
    assert not any(t.name == "harness-mirror" and t.is_alive() for t in threading.enumerate())
    assert s3.keys(bucket) == {f"run/{rel}" for rel in files}
    assert mirror.uploaded == len(files) + 1  # manifest.json twice ("{}", then rewritten), the rest once


def test_mirror_flush_is_safe_beside_the_background_thread(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/run")
    local = tmp_path / "a"
    local.mkdir()
    mirror = Mirror(remote, local, every_s=0.001).start()
    for i in range(40):
        _write(local / f"f{i:02d}.bin", bytes([i]) * (i + 1))
        mirror.flush()
    mirror.close()
    assert mirror.uploaded == 40  # each file exactly once, whichever push took it
    assert len(s3.keys(bucket)) == 40


def test_mirror_background_failure_is_kept_and_surfaces_on_close(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/run")
    local = tmp_path / "a"
    local.mkdir()
    log = io.StringIO()
    mirror = Mirror(remote, local, every_s=0.05, stream=log).start()
    s3.delete_bucket(bucket)
    _write(local / "manifest.json", b"{}")
    assert _wait_for(lambda: mirror.last_error is not None)
    assert mirror._thread is not None and mirror._thread.is_alive()  # the run goes on
    assert "does not exist" in mirror.last_error and log.getvalue().count("\n") == 1
    with pytest.raises(UserError) as exc:
        mirror.close()
    message = _one_line(exc)
    assert f"s3://{bucket}/run" in message and f"bucket '{bucket}' does not exist" in message


def test_mirror_recovers_when_the_failure_passes(bucket, s3, tmp_path):
    remote = open_remote(f"s3://{bucket}/run")
    local = tmp_path / "a"
    local.mkdir()
    mirror = Mirror(remote, local, every_s=0.05, stream=io.StringIO()).start()
    s3.delete_bucket(bucket)
    _write(local / "manifest.json", b"{}")
    assert _wait_for(lambda: mirror.last_error is not None)
    with pytest.raises(UserError):
        mirror.flush()  # still failing: flush says so
    s3.create_bucket(bucket)
    assert _wait_for(lambda: mirror.last_error is None)
    mirror.close()
    assert s3.keys(bucket) == {"run/manifest.json"}
