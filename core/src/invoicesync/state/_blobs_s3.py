"""Blobs in S3 or an S3-compatible server (``blob_url = "s3://bucket/prefix"``), through boto3.

Endpoint, region and credentials come from the standard AWS environment and files
(``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``, ``AWS_PROFILE``, ``~/.aws/config``…), never from the URL.

Writing: a blob that fits in one part (8 MiB) is one ``PutObject`` to its final key, with its SHA-256
for S3 to check and ``If-None-Match: *`` (put-if-absent). A larger one is streamed, part by part,
into a multipart upload to ``<prefix>tmp/…`` — invisible until completed, aborted on any error —
then copied server-side to its final key, which S3 hashes again: the copy's SHA-256 must be the key.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from io import BufferedReader
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from ._blobs import ABANDONED_AFTER, CHUNK, PutMixin, is_abandoned, writer_tag
from ._blobs_s3_io import PART_SIZE, MultipartUpload, RangeReader, b64_sha256

#: CopyObject's ceiling; a larger blob is copied in parts (and S3 keeps a per-part checksum of it).
_COPY_LIMIT = 5 * 1024**3
_MISSING = {"404", "NoSuchKey", "NotFound"}
T = TypeVar("T")


class BlobStoreError(OSError):
    """The blob store could not be used (unreachable, refused, misconfigured); the message says why."""


class S3BlobStore(PutMixin):
    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.client = client if client is not None else boto3.session.Session().client("s3", config=BotoConfig(
            retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32))

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        parts = urlsplit(url)
        return cls(parts.netloc, parts.path)

    def key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256[:2]}/{sha256[2:]}"

    @property
    def tmp_prefix(self) -> str:
        return f"{self.prefix}tmp/"

    # -- reading -------------------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        return self._size(self.key(sha256)) is not None

    def open(self, sha256: str) -> BinaryIO:
        key = self.key(sha256)
        size = self._size(key)
        if size is None:
            raise FileNotFoundError(f"blob {sha256} is missing from the store at {self.url}")
        return BufferedReader(RangeReader(self.client, self.bucket, key, size), buffer_size=CHUNK)

    def iter_chunks(self, sha256: str, size: int = CHUNK) -> Iterator[bytes]:
        with self.open(sha256) as handle:
            while chunk := handle.read(size):
                yield chunk

    def _size(self, key: str) -> int | None:
        try:
            with self._errors(f"reading {key}"):
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except FileNotFoundError:
            return None

    # -- writing -------------------------------------------------------------------------------

    def write(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        pending = bytearray()
        upload: MultipartUpload | None = None
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                pending += chunk
                while len(pending) >= (part := upload.next_part_size() if upload else PART_SIZE):
                    if upload is None:
                        upload = self._call("starting an upload", MultipartUpload, self.client, self.bucket,
                                            f"{self.tmp_prefix}{writer_tag()}{uuid.uuid4().hex}")
                    self._call("uploading a part", upload.send, bytes(memoryview(pending)[:part]))
                    del pending[:part]
            sha = digest.hexdigest()
            if upload is None:
                self._put_small(sha, bytes(pending))
                return sha, size
            if pending:
                self._call("uploading a part", upload.send, bytes(pending))
                pending.clear()
            self._call("completing an upload", upload.complete)
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        assert upload is not None  # a blob of one part returned above
        try:
            self._publish(upload.key, digest, size)
        except BaseException:
            try:  # best effort: the publishing error is the one to report; a clean-up removes it later
                self.client.delete_object(Bucket=self.bucket, Key=upload.key)
            except Exception:  # noqa: BLE001
                pass
            raise
        self._call("removing a temporary object", self.client.delete_object, Bucket=self.bucket, Key=upload.key)
        return sha, size

    def _put_small(self, sha: str, data: bytes) -> None:
        options = {"Bucket": self.bucket, "Key": self.key(sha), "Body": data, "ChecksumSHA256": b64_sha256(data)}
        try:
            self.client.put_object(IfNoneMatch="*", **options)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") and self.exists(sha):
                return  # already there, from this machine or another: put-if-absent
            if code != "NotImplemented":  # a server without conditional writes: an identical overwrite
                raise self._translate(exc, f"writing {self.key(sha)}") from None
            self._call(f"writing {self.key(sha)}", self.client.put_object, **options)
        except BotoCoreError as exc:
            raise self._translate(exc, f"writing {self.key(sha)}") from None

    def _publish(self, tmp_key: str, digest: Any, size: int) -> None:
        """Copy a completed upload to its content key, unless that exists; check S3's own hash of the copy."""
        sha = digest.hexdigest()
        final = self.key(sha)
        if self._size(final) is not None:
            return
        source = {"Bucket": self.bucket, "Key": tmp_key}
        if size > _COPY_LIMIT:
            self._call(f"copying to {final}", self.client.copy, source, self.bucket, final,
                       ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                       Config=TransferConfig(multipart_threshold=_COPY_LIMIT, multipart_chunksize=_COPY_LIMIT // 5))
            return
        answer = self._call(f"copying to {final}", self.client.copy_object, Bucket=self.bucket, Key=final,
                            CopySource=source, ChecksumAlgorithm="SHA256")
        stored = answer.get("CopyObjectResult", {}).get("ChecksumSHA256")
        if stored is not None and stored != base64.b64encode(digest.digest()).decode():
            self._call(f"removing {final}", self.client.delete_object, Bucket=self.bucket, Key=final)
            raise BlobStoreError(f"S3 blob store {self.url}: the stored copy of {sha} hashes differently; "
                                 f"it was removed")

    def shas(self) -> Iterator[str]:
        with self._errors(f"listing {self.url}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for item in (o for page in pages for o in page.get("Contents", [])):
                shard, _, name = item["Key"][len(self.prefix):].partition("/")
                if len(shard) == 2 and len(name) == 62:
                    yield shard + name

    # -- clean-up ------------------------------------------------------------------------------

    def clean_tmp(self, older_than: float = ABANDONED_AFTER) -> int:
        """Abort the unfinished uploads and remove the temporary objects of dead writers."""
        removed = 0
        with self._errors(f"cleaning {self.tmp_prefix}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.tmp_prefix)
            for upload in (u for page in pages for u in page.get("Uploads", [])):
                if is_abandoned(upload["Key"].rsplit("/", 1)[-1], upload["Initiated"].timestamp(), older_than):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    removed += 1
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.tmp_prefix)
            for item in (o for page in pages for o in page.get("Contents", [])):
                if is_abandoned(item["Key"].rsplit("/", 1)[-1], item["LastModified"].timestamp(), older_than):
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed

    # -- errors --------------------------------------------------------------------------------

    def _call(self, action: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._errors(action):
            return function(*args, **kwargs)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, action) from None

    def _translate(self, exc: ClientError | BotoCoreError, action: str) -> OSError:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING:
                return FileNotFoundError(f"S3 blob store {self.url}: {action}: not found")
            reason = f"{code}: {error.get('Message') or exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return BlobStoreError(f"S3 blob store {self.url}: {action} failed ({reason})")
