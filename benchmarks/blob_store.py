"""Put and get one large blob on each blob store backend; report throughput and how much RSS it adds.

Backends: the home's blobs/ folder, a shared folder (``file://``) and S3 — moto's S3 server, started
here in its own process on a free loopback port (its memory is not ours). Each backend runs in a
fresh child process, so its peak RSS (``ru_maxrss``, plus a 5 ms sampler per phase) is its own. The
blob is generated in 1 MiB chunks and never exists whole in memory; "adds" is the peak during the
put (or the get: ``iter_chunks`` hashed, then ``open`` + ``read`` in 1 MiB pieces) minus the RSS
after a small warm-up put/get.

    python benchmarks/blob_store.py --size-mb 256
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def peak_while(action: Callable[[], Any]) -> tuple[Any, int, float]:
    """Run ``action``; return its result, the highest RSS seen meanwhile, and the seconds it took."""
    highest, done = [rss()], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            highest[0] = max(highest[0], rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = action()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return result, max(highest[0], rss()), seconds


def chunks(size: int) -> Iterator[bytes]:
    block = hashlib.sha256(b"blob benchmark").digest() * (MiB // 32)
    for start in range(0, size, MiB):
        yield block[:min(MiB, size - start)]


def child(backend: str, url: str | None, size: int, home: Path) -> dict[str, Any]:
    from invoicesync.state import open_blob_store

    store = open_blob_store(home, url)
    small, _ = store.write(iter([b"warm-up"]))  # imports, client, connection pool
    assert b"".join(store.iter_chunks(small)) == b"warm-up"
    baseline = rss()
    (sha, written), put_peak, put_seconds = peak_while(lambda: store.write(chunks(size)))

    def read_back() -> str:
        digest = hashlib.sha256()
        for piece in store.iter_chunks(sha):
            digest.update(piece)
        with store.open(sha) as handle:  # the seekable reader targets use, read through
            while handle.read(MiB):
                pass
        return digest.hexdigest()

    read_sha, get_peak, get_seconds = peak_while(read_back)
    assert written == size and read_sha == sha
    return {"backend": backend, "size_mib": size // MiB, "put_s": round(put_seconds, 2),
            "put_mib_s": round(size / MiB / put_seconds, 1), "get_s": round(get_seconds, 2),
            "baseline_rss_mib": round(baseline / MiB, 1), "put_adds_mib": round((put_peak - baseline) / MiB, 1),
            "get_adds_mib": round((get_peak - baseline) / MiB, 1),
            "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_all(size_mib: int, tmp: Path) -> list[dict[str, Any]]:
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none")}
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import boto3

        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        client = boto3.client("s3")
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        for _ in range(200):
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.05)
        urls = {"home": None, "shared": (tmp / "shared").as_uri(), "s3": f"s3://{bucket}/blobs"}
        results = []
        for backend, url in urls.items():
            answer = subprocess.run([sys.executable, __file__, "--child", backend, "--url", url or "",
                                     "--size-mb", str(size_mib), "--home", str(tmp / backend)],
                                    env=env, capture_output=True, text=True, check=True)
            results.append(json.loads(answer.stdout))
        return results
    finally:
        moto.terminate()
        moto.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url or None, args.size_mb * MiB, Path(args.home))))
        return
    with tempfile.TemporaryDirectory(prefix="blob-bench-") as tmp:
        results = run_all(args.size_mb, Path(tmp))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| backend | MiB | put s | put MiB/s | get s (iter_chunks + open/read) | RSS before MiB "
          "| put adds MiB | get adds MiB | max RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['size_mib']} | {r['put_s']} | {r['put_mib_s']} | {r['get_s']} | "
              f"{r['baseline_rss_mib']} | {r['put_adds_mib']} | {r['get_adds_mib']} | {r['max_rss_mib']} |")


if __name__ == "__main__":
    main()
