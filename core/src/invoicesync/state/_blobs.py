"""The content-addressed blob store: a file's key is its sha256, content only ever moves as streams.

Three backends, chosen by ``blob_url`` (``INVOICESYNC_BLOB_URL``): the home's ``blobs/`` folder (the
default: small blobs inline in ``blobs/inline.sqlite``, larger ones as files), a shared folder
(``file:///shared/path``) and S3 or an S3-compatible server (``s3://bucket/prefix``).
Plugins see only the :class:`BlobStore` protocol.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..models import FileRef, FileRole

CHUNK = 1024 * 1024
#: How old a temp file or unfinished upload of a writer on another machine must be before a
#: start-up clean-up takes it for abandoned: no blob takes a day to write.
ABANDONED_AFTER = 24 * 3600.0
#: ``<pid>@<host>~``: what temp names start with, so a clean-up can tell a dead writer of this host.
_TAG = re.compile(r"^(\d+)@([^~/]+)~")


@runtime_checkable
class BlobStore(Protocol):
    """What plugins and the runner use: stream in, stream out, keyed by sha256."""

    #: Where the blobs are, for messages (never holds a secret).
    url: str

    def exists(self, sha256: str) -> bool: ...

    def write(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Stream ``chunks`` in; return ``(sha256, size)``. Memory stays bounded whatever the size,
        nothing half-written is ever visible under a key, and writing content that is already
        there (from this or another machine) is harmless."""
        ...

    def put(self, chunks: Iterable[bytes], *, name: str, media_type: str,
            role: FileRole = FileRole.ATTACHMENT, source_id: str | None = None) -> FileRef: ...

    def open(self, sha256: str) -> BinaryIO:
        """A seekable binary reader; ``FileNotFoundError`` if the blob is missing."""
        ...

    def iter_chunks(self, sha256: str, size: int = CHUNK) -> Iterator[bytes]: ...

    def shas(self) -> Iterator[str]:
        """The sha256 of every blob stored, in no particular order."""
        ...

    def clean_tmp(self, older_than: float = ABANDONED_AFTER) -> int:
        """Remove what killed writers left (temp files, unfinished uploads); return how many.
        A dead writer of this host goes at once, another host's after ``older_than`` seconds."""
        ...


class PutMixin:
    """``put``: ``write`` plus the :class:`FileRef` that names what was written."""

    def write(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        raise NotImplementedError

    def put(self, chunks: Iterable[bytes], *, name: str, media_type: str,
            role: FileRole = FileRole.ATTACHMENT, source_id: str | None = None) -> FileRef:
        sha, size = self.write(chunks)
        return FileRef(name=name, media_type=media_type, size=size, sha256=sha, role=role, source_id=source_id)


def copy_blobs(source: BlobStore, target: BlobStore) -> dict[str, int]:
    """Stream every blob of ``source`` that ``target`` lacks into it; how many were copied, already
    there, and damaged (content that no longer hashes to its key: not copied under that key)."""
    counts = {"copied": 0, "present": 0, "damaged": 0}
    for sha in source.shas():
        if target.exists(sha):
            counts["present"] += 1
            continue
        written, _ = target.write(source.iter_chunks(sha))
        counts["copied" if written == sha else "damaged"] += 1
    return counts


@cache
def _host() -> str:
    """This host, as temp names tell it: its name, and its pid namespace where there is one, so two
    containers given the same hostname still tell each other's pids apart."""
    name = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return name
    return f"{name}.pidns{namespace.rsplit('[', 1)[-1].rstrip(']')}"


def writer_tag() -> str:
    """The start of a temp name: which process on which host is writing it."""
    return f"{os.getpid()}@{_host()}~"


def is_abandoned(name: str, modified: float, older_than: float) -> bool:
    """Whether the temp ``name`` (last changed at ``modified``, epoch seconds) is a dead writer's.

    An untagged name is an older version's temp file: those only ever wrote under the runner lock
    the clean-up holds, so it is a leftover."""
    tag = _TAG.match(name)
    if tag is None:
        return True
    if tag.group(2) == _host() and not _alive(int(tag.group(1))):
        return True
    return time.time() - modified >= older_than


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def open_blob_store(home: Path, url: str | None) -> BlobStore:
    """The store ``blob_url`` names, or the home's own ``blobs/`` folder without one."""
    from ._blobs_folder import FolderBlobStore

    if url is None:
        from ._blobs_home import HomeBlobStore

        return HomeBlobStore(home / "blobs")
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FolderBlobStore(Path(file_url_path(url)), shared=True)
    if scheme == "s3":
        try:
            from ._blobs_s3 import S3BlobStore
        except ImportError:
            raise ConfigError("an S3 blob store (blob_url = \"s3://…\") needs boto3: "
                              "pip install 'invoicesync[s3]'") from None
        return S3BlobStore.from_url(url)
    raise ConfigError(f"blob_url {url!r} is neither file:///a/shared/folder nor s3://bucket/prefix; "
                      f"leave it out to keep blobs in the home")


def file_url_path(url: str) -> str:
    """The absolute folder of a ``file:`` URL (``file:///srv/blobs``, or ``file://localhost/…``)."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/") or parts.query or parts.fragment:
        raise ConfigError(f"blob_url {url!r}: a shared folder is file:///absolute/path (three slashes), "
                          f"mounted at the same path on every machine")
    return path


def check_blob_url(url: str) -> None:
    """Refuse a malformed ``blob_url`` when the config is loaded, without touching the store."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        file_url_path(url)
    elif parts.scheme == "s3":
        if not parts.netloc or parts.fragment:
            raise ConfigError(f"blob_url {url!r}: an S3 blob store is s3://bucket or s3://bucket/prefix")
        if parts.query:
            raise ConfigError(f"blob_url {url!r}: endpoint, region and credentials come from the AWS environment "
                              f"(AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_PROFILE, ~/.aws/config), not from the URL")
    else:
        raise ConfigError(f"blob_url {url!r} is neither file:///a/shared/folder nor s3://bucket/prefix; "
                          f"leave it out to keep blobs in the home")
