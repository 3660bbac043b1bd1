"""Put and get one large blob on each blob store backend; report throughput and how much RSS it adds.
Then (``--small N``) put N invoice-sized blobs from 8 threads into the home's store and into the
folder layout it had before (every blob a file); report CPU seconds, context switches and syscalls.

Backends: the home's blobs/ folder, a shared folder (``file://``) and S3 — moto's S3 server, started
here in its own process on a free loopback port (its memory is not ours). Each backend runs in a
fresh child process, so its peak RSS (``ru_maxrss``, plus a 5 ms sampler per phase) is its own. The
blob is generated in 1 MiB chunks and never exists whole in memory; "adds" is the peak during the
put (or the get: ``iter_chunks`` hashed, then ``open`` + ``read`` in 1 MiB pieces) minus the RSS
after a small warm-up put/get.

    python benchmarks/blob_store.py --size-mb 256 --small 2000

The small-blob sizes are drawn (seeded) between 1 KiB and 300 KiB, as invoice PDFs and UBL files
are; one in twenty is 0.5-3 MiB (a scan), which the home's store spills to a file (``--small-max-kib 8``
is closer to the Billit sandbox's PDFs). Syscalls are
counted with ``perf stat -e raw_syscalls:sys_enter`` when perf can (else left out); CPU and context
switches are the child's own ``getrusage`` over the puts (and, apart, over reading every blob back).
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


def small_sizes(count: int, largest: int) -> list[int]:
    import random

    rng = random.Random(42)
    return [rng.randint(512 * 1024, 3 * MiB) if n % 20 == 19 else rng.randint(1024, largest) for n in range(count)]


def small_child(layout: str, count: int, largest: int, home: Path) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from invoicesync.state import FolderBlobStore, open_blob_store

    store = open_blob_store(home, None) if layout == "home" else FolderBlobStore(home / "blobs")
    sizes = small_sizes(count, largest)
    base = hashlib.sha256(b"small blobs").digest() * (4 * MiB // 32)

    def put(n: int) -> str:
        head = n.to_bytes(8, "big")  # every blob different
        return store.write(iter([head, base[:sizes[n] - 8]]))[0]

    def usage() -> tuple[float, int]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime, ru.ru_nvcsw + ru.ru_nivcsw

    cpu0, sw0 = usage()
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:  # as the fetch threads
        shas = list(pool.map(put, range(count)))
    put_s = time.perf_counter() - started
    cpu1, sw1 = usage()
    with ThreadPoolExecutor(8) as pool:
        read = sum(pool.map(lambda sha: sum(len(c) for c in store.iter_chunks(sha)), shas))
    cpu2, _ = usage()
    assert read == sum(sizes)
    return {"layout": layout, "blobs": count, "mib": round(sum(sizes) / MiB, 1), "put_wall_s": round(put_s, 2),
            "put_cpu_s": round(cpu1 - cpu0, 2), "put_switches": sw1 - sw0, "get_cpu_s": round(cpu2 - cpu1, 2)}


def run_small(count: int, largest_kib: int, tmp: Path) -> list[dict[str, Any]]:
    results = []
    for layout in ("home-files", "home"):
        command = [sys.executable, __file__, "--small-child", layout, "--small", str(count),
                   "--small-max-kib", str(largest_kib),
                   "--home", str(tmp / f"small-{layout}")]
        counts = tmp / f"perf-{layout}.csv"
        perf = ["perf", "stat", "-x,", "-o", str(counts), "-e", "raw_syscalls:sys_enter", "--"]
        probe = subprocess.run([*perf, "true"], capture_output=True)
        answer = subprocess.run((perf if probe.returncode == 0 else []) + command,
                                capture_output=True, text=True, check=True)
        row = json.loads(answer.stdout)
        if probe.returncode == 0:
            lines = [line.split(",") for line in counts.read_text().splitlines() if "raw_syscalls" in line]
            row["syscalls_process"] = int(lines[0][0]) if lines and lines[0][0].isdigit() else None
        results.append(row)
    return results


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
    parser.add_argument("--small", type=int, default=0, metavar="N", help="also put N invoice-sized blobs")
    parser.add_argument("--small-only", action="store_true", help="only the small blobs")
    parser.add_argument("--small-max-kib", type=int, default=300,
                        help="the small blobs' largest size (the Billit sandbox's PDFs are ~2 KiB)")
    parser.add_argument("--small-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url or None, args.size_mb * MiB, Path(args.home))))
        return
    if args.small_child:
        print(json.dumps(small_child(args.small_child, args.small, args.small_max_kib * 1024, Path(args.home))))
        return
    with tempfile.TemporaryDirectory(prefix="blob-bench-") as tmp:
        results = [] if args.small_only else run_all(args.size_mb, Path(tmp))
        small = run_small(args.small, args.small_max_kib, Path(tmp)) if args.small else []
    if args.json:
        print(json.dumps(results + small, indent=2))
        return
    if small:
        print("| layout | blobs | MiB | put wall s | put CPU s | put ctx switches | get CPU s | process syscalls |")
        print("|---|---|---|---|---|---|---|---|")
        for r in small:
            print(f"| {r['layout']} | {r['blobs']} | {r['mib']} | {r['put_wall_s']} | {r['put_cpu_s']} | "
                  f"{r['put_switches']} | {r['get_cpu_s']} | {r.get('syscalls_process')} |")
    if not results:
        return
    print("| backend | MiB | put s | put MiB/s | get s (iter_chunks + open/read) | RSS before MiB "
          "| put adds MiB | get adds MiB | max RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['size_mib']} | {r['put_s']} | {r['put_mib_s']} | {r['get_s']} | "
              f"{r['baseline_rss_mib']} | {r['put_adds_mib']} | {r['get_adds_mib']} | {r['max_rss_mib']} |")


if __name__ == "__main__":
    main()
