"""Results folders on object storage (`--out s3://bucket/prefix`, `gs://...`, other fsspec URLs).

The run works on a local **staging copy** (`staging_dir`), written as any local folder is (each
file via a `.tmp-*` name and a rename); a **mirror** (`push`; `harness.results.mirror` runs it while a command works) keeps the bucket in step.
No rename is needed: one object upload is atomic (whole or absent; an interrupted multipart upload
leaves none), and a file goes up under its final key only once complete locally (temporaries never
do). Shards never change and go up once; rewritten files (manifest, scores, samples, report, plots,
fits) again when their size or mtime changed; `.retired/` too. Exactly-once, here: a shard object
is absent or whole; a resume pulls the bucket first (`pull`) and the harness validates each shard's
Parquet footer (`store.shard_problem`): a damaged object is recomputed, never trusted. NOT locked:
two drivers on one prefix (say, two machines) do not exclude each other (`.lock` guards the staging
copy only, never goes up); they would upload the same shards (correct, twice the cost) and overwrite
each other's rewritten files. Pulled files take their objects' mtimes, so a first push tells files
in step from newer ones (the local clock must not lag the store's by more than the objects' age).
No secret passes through here: pyarrow's client reads AWS_* (or AWS_PROFILE, an instance role) itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from harness.errors import UserError, first_line
from harness.results.lock import LOCK
from harness.files import TMP_PREFIX, atomic_path, safe_name, user_cache_dir

STAGING_ENV = "HARNESS_STAGING_DIR"
# A wrong address should cost seconds, not minutes; the mirror's next push retries anyway.
S3_CONNECT_TIMEOUT_S = 5.0
S3_MAX_ATTEMPTS = 3
GCS_RETRY_LIMIT = timedelta(seconds=60)  # the GCS client's own default is 15 minutes
DEFAULT_REGION = "us-east-1"  # what S3-compatible stores (MinIO, Ceph, moto) accept
TRANSFER_THREADS = 8  # object stores are latency-bound: many small shard files go in parallel
BUCKET_SCHEMES = ("s3", "gs", "gcs")  # pyarrow's own clients; other schemes go through fsspec
ERRORS = (OSError, pa.ArrowException)
SHARD_FOLDERS = ("requests/", ".retired/")  # files named by their content's key: never rewritten
Stat = os.stat_result | None  # what a transfer returns: the stat of the file sent or received
_USE = "use s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or a local path"
# Substrings of pyarrow's and the stores' messages (AWS SDK codes, S3 error names), by cause.
_UNREACHABLE = re.compile("NETWORK_CONNECTION|curlCode|Could not connect|Could not resolve|Connection refused|"
                          "timed out|Timeout|UNAVAILABLE")
_DENIED = re.compile("ACCESS_DENIED|AccessDenied|INVALID_ACCESS_KEY_ID|InvalidAccessKeyId|SIGNATURE_DOES_NOT_MATCH|"
                     "SignatureDoesNotMatch|EXPIRED_TOKEN|ExpiredToken|HTTP status 403|PERMISSION_DENIED|"
                     "UNAUTHENTICATED|credentials")
_NO_BUCKET = re.compile("NO_SUCH_BUCKET|NoSuchBucket|specified bucket does not exist|Bucket '[^']*' not found")
_CREDENTIALS_FIX = {  # for S3, absent credentials look like refused ones: AWS answers 403 to both
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary ones) or AWS_PROFILE "
          "to credentials that may list, read and write the bucket",
    **dict.fromkeys(("gs", "gcs"), "set GOOGLE_APPLICATION_CREDENTIALS to an account's key file that may use the bucket")}


def is_remote(out: str | os.PathLike) -> bool:
    """True for a `scheme://...` URL other than `file://`; False for a plain path (str or PathLike).
    >>> is_remote("s3://bucket/run"), is_remote("file:///tmp/run"), is_remote("runs/a")
    (True, False, False)
    """
    # A Path is a path; one letter before "://", as in "C://x", is a Windows drive.
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]+)://", out) if isinstance(out, str) else None
    return bool(match) and match.group(1).lower() != "file"


@dataclass(frozen=True)
class RemoteFolder:
    """A folder on an object store; `root` is its path on `fs`. `fs` holds no secret (see above)."""

    url: str  # normalised: scheme://bucket/prefix, no trailing slash
    scheme: str
    bucket: str
    root: str
    fs: pafs.FileSystem = field(repr=False, compare=False)
    endpoint: str | None = None  # S3: the AWS_ENDPOINT_URL in use, for messages

    def key(self, rel: str) -> str:
        return f"{self.root}/{rel}"


def open_remote(url: str) -> RemoteFolder:
    """The folder at `url`, checked: its store answers, its bucket exists, it may be listed. Else
    UserError, one line naming the URL and the fix (bad URL, unreachable, no bucket, denied)."""
    scheme, bucket, prefix = _parse(url)
    norm = f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else "")
    root = f"{bucket}/{prefix}".rstrip("/")
    if scheme == "s3":  # AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL: the SDKs' names for an S3-compatible store
        endpoint = (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "").strip().rstrip("/")
        remote = RemoteFolder(norm, scheme, bucket, root, _s3_filesystem(norm, bucket, endpoint or None), endpoint or None)
    elif scheme in BUCKET_SCHEMES:  # credentials: GOOGLE_APPLICATION_CREDENTIALS or the machine's account
        remote = RemoteFolder(norm, scheme, bucket, root, pafs.GcsFileSystem(retry_time_limit=GCS_RETRY_LIMIT))
    else:
        import fsspec
        try:
            fs, path = fsspec.core.url_to_fs(norm)
        except ValueError:  # "Protocol not known"
            raise UserError(f"{url}: unknown storage scheme '{scheme}://'; {_USE}") from None
        except ImportError as exc:  # fsspec knows it; the package implementing it is missing
            raise UserError(f"{url}: {scheme}:// needs a package that is not installed ({first_line(exc)})") from None
        remote = RemoteFolder(norm, scheme, bucket, path.rstrip("/"), pafs.PyFileSystem(pafs.FSSpecHandler(fs)))
    _probe(remote)
    return remote


def _parse(url: str) -> tuple[str, str, str]:
    """(scheme, bucket, prefix) of a URL, or UserError naming what is wrong with it."""
    if not is_remote(url):
        raise UserError(f"{url}: not an object-store URL; {_USE}")
    parts = urlsplit(url)
    scheme, bucket, prefix = parts.scheme.lower(), parts.netloc, parts.path.strip("/")
    if parts.query or parts.fragment:
        raise UserError(f"{url}: options in the URL ('?...') are not supported; set AWS_ENDPOINT_URL, AWS_REGION")
    if scheme in ("http", "https"):
        raise UserError(f"{url}: {scheme}:// is read-only; {_USE}")
    if not bucket:
        raise UserError(f"{url}: no bucket in the URL; write it as {scheme}://BUCKET/PREFIX")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise UserError(f"{url}: the prefix has an empty, '.' or '..' part; write it as {scheme}://BUCKET/a/b")
    return scheme, bucket, prefix


def _s3_filesystem(url: str, bucket: str, endpoint: str | None) -> pafs.S3FileSystem:
    """S3 with bounded timeouts and retries (`FileSystem.from_uri` cannot set them). The endpoint is
    passed: `S3FileSystem()` ignores AWS_ENDPOINT_URL. Credentials are not: the client finds them."""
    options: dict = {"connect_timeout": S3_CONNECT_TIMEOUT_S,
                     "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS)}
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or (DEFAULT_REGION if endpoint else None)
    if not region:  # AWS itself: ask where the bucket lives (one anonymous request)
        try:
            region = pafs.resolve_s3_region(bucket)
        except ERRORS as exc:
            raise _remote_error(url, "s3", endpoint, bucket, "finding the bucket's region", exc) from None
    return pafs.S3FileSystem(region=region, **options)


def _probe(remote: RemoteFolder) -> None:
    """List the prefix (as `pull` will); if empty, check that the bucket exists (an absent one lists as empty)."""
    try:
        if remote.fs.get_file_info(pafs.FileSelector(remote.root, allow_not_found=True)) or remote.scheme not in BUCKET_SCHEMES:
            return
    except ERRORS as exc:
        raise _error(remote, "listing the folder", exc) from None
    try:
        info = remote.fs.get_file_info(remote.bucket)
    except ERRORS as exc:
        if _DENIED.search(str(exc)):
            return  # it may list its prefix but not look at the bucket: a common policy
        raise _error(remote, "looking up the bucket", exc) from None
    if info.type == pafs.FileType.NotFound:
        raise _missing_bucket(remote.url, remote.scheme, remote.bucket)


def staging_dir(remote: RemoteFolder) -> Path:
    """The local working copy of `remote` (created): `$HARNESS_STAGING_DIR/<name>`, else
    `$XDG_CACHE_HOME/harness/remote/<name>` (`~/.cache/...`); <name> is readable and unique per URL, the
    same in every process."""
    name = f"{safe_name(remote.url.partition('://')[2])[:80]}-{hashlib.sha256(remote.url.encode()).hexdigest()[:12]}"
    folder = Path(os.environ.get(STAGING_ENV) or user_cache_dir() / "remote").expanduser() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pull(remote: RemoteFolder, local: Path) -> int:
    """Make `local` the bucket's folder; returns how many objects were downloaded, each whole and
    with its object's mtime. A shard file (its name is its content) is fetched when missing or of
    another size; any other file also when its mtime is not its object's (rewritten elsewhere,
    perhaps to the same size). Files the bucket lacks are deleted, except shard files (a run killed
    here before its mirror pushed them; they are checked like any other before reuse)."""
    local = Path(local)
    listing, files = _remote_files(remote), _local_files(local)
    for rel in sorted(set(files) - set(listing)):
        if not rel.startswith(SHARD_FOLDERS):
            (local / rel).unlink(missing_ok=True)  # a stale samples file must not reach an analysis
    wanted = {rel: info for rel, info in sorted(listing.items()) if _out_of_step(rel, files.get(rel), info)}
    with (record := _record(remote, local)).lock:
        return _transfer(remote, record, "downloading", lambda rel: _download(remote, rel, wanted[rel], local / rel), list(wanted))


def _out_of_step(rel: str, st: os.stat_result | None, info: pafs.FileInfo) -> bool:
    if st is None or st.st_size != info.size:
        return True
    return not rel.startswith(SHARD_FOLDERS) and info.mtime_ns is not None and st.st_mtime_ns != info.mtime_ns


def _download(remote: RemoteFolder, rel: str, info: pafs.FileInfo, dest: Path) -> os.stat_result:
    with atomic_path(dest) as tmp:
        with remote.fs.open_input_stream(remote.key(rel)) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        if tmp.stat().st_size != info.size:  # replaced while we read it: never keep a mixture
            raise OSError(f"its size changed during the download ({info.size} bytes listed)")
        if info.mtime_ns is not None:
            os.utime(tmp, ns=(info.mtime_ns, info.mtime_ns))
    return dest.stat()


@dataclass
class _Record:
    """Per file of a local folder, the (size, mtime_ns) in step with the bucket; the lock serialises transfers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pushed: dict[str, tuple[int, int]] = field(default_factory=dict)
    compared: bool = False  # whether a push has compared the folder with the bucket's listing


_RECORDS: dict[tuple[str, str], _Record] = {}


def _record(remote: RemoteFolder, local: Path) -> _Record:
    return _RECORDS.setdefault((remote.url, str(Path(local).resolve())), _Record())  # atomic: one record per folder


def push(remote: RemoteFolder, local: Path, delete_missing: bool = False) -> int:
    """Upload the files of `local` whose (size, mtime_ns) changed since this process pushed them (at
    its first push: whose object is missing, of another size or older), never temporaries or `.lock`;
    returns how many. `delete_missing`: delete objects with no file left (retired, moved). Thread-safe."""
    local = Path(local)
    record = _record(remote, local)
    with record.lock:
        files = _local_files(local)
        listing = _remote_files(remote) if delete_missing or not record.compared else {}
        todo = [rel for rel, st in files.items() if _due(record, rel, st, listing)]
        record.pushed = {rel: seen for rel, seen in record.pushed.items() if rel in files}  # gone: forgotten
        record.compared = True  # from now on, a file not recorded is new
        uploaded = _transfer(remote, record, "uploading", lambda rel: _upload(remote, rel, local / rel), todo)
        for rel in sorted(set(listing) - set(files)) if delete_missing else ():
            try:
                remote.fs.delete_file(remote.key(rel))
            except ERRORS as exc:
                raise _error(remote, f"deleting {rel}", exc) from None
    return uploaded


def _due(record: _Record, rel: str, st: os.stat_result, listing: dict[str, pafs.FileInfo]) -> bool:
    """Whether a file must go up; one found in step with the bucket is recorded as such."""
    if rel not in record.pushed and not record.compared:
        info = listing.get(rel)
        if info is not None and info.size == st.st_size and info.mtime_ns is not None and st.st_mtime_ns <= info.mtime_ns:
            record.pushed[rel] = (st.st_size, st.st_mtime_ns)
    return record.pushed.get(rel) != (st.st_size, st.st_mtime_ns)


def _upload(remote: RemoteFolder, rel: str, path: Path) -> os.stat_result | None:
    """Upload one file under its final key; the stat of what went up (None: the file is gone). Read
    whole first: pyarrow cannot abort an output stream, and closing one (on an error path, in a
    destructor) completes the object. One write on a worker thread: nothing can cut it short."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())  # of the very file read: a rename meanwhile cannot mislead
            data = f.read()
    except FileNotFoundError:
        return None
    stream = remote.fs.open_output_stream(remote.key(rel))
    stream.write(data)
    stream.close()  # the object appears here, whole
    return st


def _local_files(local: Path) -> dict[str, os.stat_result]:
    """The folder's regular files by relative POSIX path, temporaries and the lock left out."""
    files: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(local):
        dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(local).as_posix()
            try:
                st = (local / rel).stat()
            except FileNotFoundError:
                continue  # renamed or retired while we walked
            if not name.startswith(TMP_PREFIX) and rel != LOCK and stat.S_ISREG(st.st_mode):
                files[rel] = st
    return files


def _remote_files(remote: RemoteFolder) -> dict[str, pafs.FileInfo]:
    """Objects under the prefix by relative path; not directories (S3 keeps "dir/" markers),
    temporaries, the lock, or keys that would leave the folder ('..')."""
    try:
        infos = remote.fs.get_file_info(pafs.FileSelector(remote.root, recursive=True, allow_not_found=True))
    except ERRORS as exc:
        raise _error(remote, "listing the folder", exc) from None
    files = {}
    for info in infos:
        rel = info.path[len(remote.root):].lstrip("/") if info.path.startswith(remote.root) else ""
        parts = PurePosixPath(rel).parts
        if (info.type == pafs.FileType.File and parts and rel == "/".join(parts) and rel != LOCK
                and not any(p in (".", "..") or p.startswith(TMP_PREFIX) for p in parts)):
            files[rel] = info
    return files


def _transfer(remote: RemoteFolder, record: _Record, verb: str, fn: Callable[[str], Stat], rels: list[str]) -> int:
    """fn (an upload or a download) per file on worker threads: no KeyboardInterrupt lands there, and
    the interpreter joins them at exit before pyarrow shuts S3 down. Files it returns a stat for
    are recorded and counted; all are tried, then the first failure is raised."""
    def _outcome(fn: Callable[[str], Stat], rel: str) -> tuple[Stat, Exception | None]:
        try:
            return fn(rel), None
        except Exception as exc:  # noqa: BLE001 - kept, raised below once all are done
            return None, exc

    pool = ThreadPoolExecutor(max_workers=TRANSFER_THREADS, thread_name_prefix="harness-transfer")
    futures = []
    try:
        try:
            for rel in rels:
                futures.append(pool.submit(_outcome, fn, rel))
        except RuntimeError:  # the interpreter is exiting and starts no thread: the rest is done here
            pass
        outcomes = [f.result() for f in futures] + [_outcome(fn, rel) for rel in rels[len(futures):]]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    record.pushed.update({rel: (st.st_size, st.st_mtime_ns) for rel, (st, _) in zip(rels, outcomes) if st is not None})
    for rel, (_, exc) in zip(rels, outcomes):
        if isinstance(exc, UserError):
            raise exc
        if exc is not None:
            raise _error(remote, f"{verb} {rel}", exc) from exc
    return sum(st is not None for st, _ in outcomes)


def _error(remote: RemoteFolder, action: str, exc: BaseException) -> UserError:
    return _remote_error(remote.url, remote.scheme, remote.endpoint, remote.bucket, action, exc)


def _remote_error(url: str, scheme: str, endpoint: str | None, bucket: str, action: str, exc: BaseException) -> UserError:
    """One line: the URL, what failed and why, and the fix for the likely cause."""
    reason = first_line(exc)
    if _UNREACHABLE.search(str(exc)):
        fix = ("check AWS_ENDPOINT_URL and that the store is running" if endpoint else "check the network"
               + (" (or set AWS_ENDPOINT_URL for an S3-compatible store)" if scheme == "s3" else ""))
        return UserError(f"{url}: cannot reach {endpoint or 'the store'} while {action} ({reason}); {fix}")
    if _DENIED.search(str(exc)):
        return UserError(f"{url}: access denied while {action} ({reason}); "
                         f"{_CREDENTIALS_FIX.get(scheme, 'check the credentials for that store')}")
    if _NO_BUCKET.search(str(exc)):  # the last pattern: resolve_s3_region's
        return _missing_bucket(url, scheme, bucket)
    return UserError(f"{url}: {action} failed ({reason})")


def _missing_bucket(url: str, scheme: str, bucket: str) -> UserError:
    make = f"aws s3 mb s3://{bucket}" if scheme == "s3" else f"gcloud storage buckets create gs://{bucket}"
    return UserError(f"{url}: bucket '{bucket}' does not exist; create it (e.g. `{make}`) or fix the URL")
