"""Streams for the S3 blob store: a seekable reader over ranged GETs, and a multipart upload.

Neither ever holds more than one part (upload) or one read (download) of a blob in memory.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

from botocore.exceptions import BotoCoreError

#: A part of a multipart upload: S3's floor is 5 MiB, its ceiling 10 000 parts, so parts grow after
#: the first thousand (8 GiB) to keep the largest blob at hundreds of GiB.
PART_SIZE = 8 * 1024 * 1024
_PARTS_BEFORE_GROWING = 1000
_GROWN_PART_SIZE = 64 * 1024 * 1024
#: A download cut mid-body is resumed from where it stopped, this many times.
_READ_ATTEMPTS = 3


def b64_sha256(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class RangeReader(io.RawIOBase):
    """A seekable view of one S3 object: one streamed GET from the current position, re-issued
    (with a ``Range``) after a seek or a dropped connection."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        position = max(0, base + offset)
        if position != self._pos:
            self._drop_body()
            self._pos = position
        return self._pos

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._pos)
        if wanted <= 0:
            return 0
        for attempt in range(_READ_ATTEMPTS):
            try:
                if self._body is None:
                    answer = self._client.get_object(Bucket=self._bucket, Key=self._key,
                                                     Range=f"bytes={self._pos}-{self._size - 1}")
                    self._body = answer["Body"]
                data = self._body.read(wanted)
                if not data:
                    raise EOFError(f"{self._key}: the body ended at byte {self._pos} of {self._size}")
                break
            except (BotoCoreError, EOFError, ConnectionError):  # botocore wraps urllib3's read errors
                self._drop_body()
                if attempt == _READ_ATTEMPTS - 1:
                    raise
        memoryview(buffer)[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


class MultipartUpload:
    """One multipart upload to a temporary key; until :meth:`complete`, nothing of it is visible."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self.bucket, self.key = client, bucket, key
        self.upload_id: str = client.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
        self._parts: list[dict[str, Any]] = []

    def next_part_size(self) -> int:
        return PART_SIZE if len(self._parts) < _PARTS_BEFORE_GROWING else _GROWN_PART_SIZE

    def send(self, data: bytes) -> None:
        """Upload the next part; S3 checks it against the SHA-256 sent along."""
        number = len(self._parts) + 1
        checksum = b64_sha256(data)
        answer = self._client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                          PartNumber=number, Body=data, ChecksumSHA256=checksum)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})

    def complete(self) -> None:
        self._client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                               MultipartUpload={"Parts": self._parts})

    def abort(self) -> None:
        """Best effort: an upload left behind is invisible, and removed by a clean-up or a lifecycle rule."""
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:  # noqa: BLE001 - already failing; the original error is the one to report
            pass
