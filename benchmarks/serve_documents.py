"""The dashboard's Documents page over a big library: p50/p95 per kind of request.

Fills a fresh home's state with N documents (default 100,000) the way years of syncing would
leave it: two Billit accounts with five companies, sales and purchases of several kinds, 2-4
targets per document with ledger rows in mixed statuses (failed and skipped with their reasons),
some documents deleted at the source, files (PDF, UBL, attachments) on each. The rows go in through
the store's own row mapping (``SqlStore._document_row``) with ``executemany``; the ledger's
triggers write the delivery log as a sync would. A PostgreSQL state is a copy of that home made by
``invoicesync state migrate``'s code into a schema of its own (dropped afterwards).

Then it starts the real dashboard (``invoicesync serve``, uvicorn, in its own process), logs in
and times each request from this process: the first page, page 2, each status filter, a status at
one target, a combination of filters, a text search on a number and on a counterparty, and a
document's page. The server is warm (each URL is fetched once before timing). Requests are
sequential: this measures latency, not throughput. Beside the wall times it reports the CPU the
server spent per request (the dashboard's process, plus PostgreSQL's backends serving it, read from
/proc): on a shared, loaded machine the wall times mostly measure the wait for a core, the CPU does not.

    .venv/bin/python benchmarks/serve_documents.py                          # SQLite and PostgreSQL
    .venv/bin/python benchmarks/serve_documents.py --documents 20000 --backends sqlite --repeat 10
    .venv/bin/python benchmarks/serve_documents.py --append benchmarks/RESULTS.md --label "branch x"
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ADMIN, PASSWORD = "bench", "benchmark password 1234"
POSTGRES_ADMIN_URL = os.environ.get("INVOICESYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SOURCES = {"books-nv": [("574991", "Vilbox BV"), ("576108", "Atelier Dewaele BV"), ("580001", "Brouwerij Smet")],
           "books-bv": [("612000", "Klimaat Peeters BV"), ("612001", "Dakwerken Janssens")]}
TARGETS = {"archive": "localfs", "dropbox": "dropbox", "gdrive": "gdrive", "bc": "dynamics365"}
KINDS = [("invoice", 80), ("credit_note", 12), ("receipt", 5), ("order", 3)]
STATUSES = [("delivered", 86), ("unchanged", 4), ("skipped", 5), ("failed", 3), ("pending", 2)]
REASONS = {
    "failed": ["429 Too Many Requests (retry after 30 s)", "insufficient_space: the Dropbox is full",
               "vendor PROXIMUS not found in Business Central", "storageQuotaExceeded"],
    "skipped": ["sales documents are not exported to Business Central", "no PDF: the source has none",
                "credit notes are not exported to this folder"],
}
#: Counterparties, the first ones common (most documents are with a few suppliers and customers).
COUNTERPARTIES = ["Proximus", "Brico Belgium", "Securex", "Coolblue België", "Sodexo Belgium", "Telenet",
                  "Engie Electrabel", "Luminus", "Colruyt Group", "Delhaize",
                  *(f"Klant {n:04d} BV" for n in range(600))]
#: One counterparty that appears a handful of times only: a search that must look at every row.
RARE = "Ölbrich & Zonen"


def _weighted(rng: random.Random, choices: list[tuple[str, int]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fill_sqlite(home: Path, count: int, seed: int = 7) -> dict[str, Any]:
    """The library and ledger of ``count`` documents in ``home``'s state.db; what the requests ask for."""
    from invoicesync.models import (
        Account,
        AccountDirection,
        Company,
        Direction,
        Document,
        DocumentKind,
        FileRef,
        FileRole,
        Party,
    )
    from invoicesync.state import SqliteStore

    rng = random.Random(seed)
    store = SqliteStore(home / "state.db")
    for name, pairs in SOURCES.items():
        store.save_account(Account(name=name, plugin="billit", direction=AccountDirection.IMPORT,
                                   companies=[Company(id=i, name=n) for i, n in pairs]))
    for name, plugin in TARGETS.items():
        settings = {"root": str(home / "out")} if plugin == "localfs" else {}
        store.save_account(Account(name=name, plugin=plugin, direction=AccountDirection.EXPORT, settings=settings))
    companies = [(account, Company(id=i, name=n)) for account, pairs in SOURCES.items() for i, n in pairs]
    start = date(2023, 1, 1)
    documents: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    probe: dict[str, Any] = {}
    synced_at = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(count):
        account, company = companies[n % len(companies)]
        kind = DocumentKind(_weighted(rng, KINDS))
        direction = Direction.PURCHASE if rng.random() < 0.6 else Direction.SALES
        issued = start + timedelta(days=n * 1100 // count)  # imported roughly in date order, as a source lists
        prefix = {"invoice": "INV", "credit_note": "CN", "receipt": "RC", "order": "PO"}[kind]
        number = f"{prefix}-{issued.year}-{n:06d}"
        counterparty = RARE if n % 20011 == 17 else COUNTERPARTIES[min(int(rng.paretovariate(1.2)) - 1,
                                                                         len(COUNTERPARTIES) - 1)]
        total = Decimal(rng.randrange(500, 2_000_000)) / 100
        files = [FileRef(name=f"{number}.pdf", media_type="application/pdf", size=rng.randrange(20_000, 400_000),
                         sha256=_sha(f"pdf{n}"), role=FileRole.PDF)]
        if rng.random() < 0.7:
            files.append(FileRef(name=f"{number}.xml", media_type="text/xml", size=rng.randrange(4_000, 30_000),
                                 sha256=_sha(f"ubl{n}"), role=FileRole.UBL))
        if rng.random() < 0.15:
            files.append(FileRef(name="general-terms.pdf", media_type="application/pdf", size=48_213,
                                 sha256=_sha("terms"), role=FileRole.ATTACHMENT))
        document = Document(
            id=Document.make_id("billit", account, company.id, str(1_000_000 + n)), source="billit",
            account=account, company=company, source_id=str(1_000_000 + n), kind=kind, direction=direction,
            number=number, issue_date=issued, due_date=issued + timedelta(days=30),
            amount_excl_vat=(total / Decimal("1.21")).quantize(Decimal("0.01")), amount_incl_vat=total,
            amount_vat=total - (total / Decimal("1.21")).quantize(Decimal("0.01")),
            counterparty=Party(name=counterparty, vat_number=f"BE0{rng.randrange(10**8, 10**9)}"),
            paid=rng.random() < 0.8, deleted=rng.random() < 0.02, files=files,
        )
        documents.append(store._document_row(document))
        version = document.version
        for target in rng.sample(list(TARGETS), rng.randint(2, 4)):
            status = "deleted" if document.deleted and rng.random() < 0.7 else _weighted(rng, STATUSES)
            message = rng.choice(REASONS[status]) if status in REASONS else None
            at = (synced_at + timedelta(seconds=n)).isoformat(timespec="seconds")
            failed = status == "failed"
            deliveries.append((document.id, target, version, status, f"tid-{n}-{target}",
                               f"/Invoices/{company.name}/{issued.year}/{number}.pdf", _sha(f"pdf{n}"), message, at,
                               json.dumps({"rev": f"{n:x}"}), at if failed else None, int(failed) * 3,
                               int(failed) * 2, "run-1" if failed else None, None))
        if n == count * 2 // 3:
            probe["document"] = document.id
            probe["number"] = number
    with store._lock:
        db = store._db
        db.execute("BEGIN")
        db.executemany(store.UPSERT_DOCUMENT, documents)
        db.executemany("""INSERT INTO deliveries (document_id, target, version, status, target_id, target_path,
                              content_hash, message, at, extra, first_failed_at, failed_attempts, failed_runs,
                              failed_run, export_options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                       deliveries)
        db.execute("COMMIT")
    store.close()
    return {**probe, "deliveries": len(deliveries)}


@contextlib.contextmanager
def postgres_copy(home: Path) -> Iterator[str]:
    """``home``'s state copied into a fresh PostgreSQL schema (by ``state migrate``'s code); its URL."""
    import psycopg
    from invoicesync.state._copy import copy_to_postgres

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            # application_name: so the CPU of the backends serving the dashboard can be found
            url = f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}&application_name={schema}"
            copy_to_postgres(home, url)
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("VACUUM ANALYZE")  # as autovacuum would have done on a state this old
            yield url
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_ms(pids: list[int]) -> float:
    """CPU (user + system) these processes have used, in ms; 0 for one that is gone."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total * 1000 / os.sysconf("SC_CLK_TCK")


def server_pids(server: subprocess.Popen[str], state_url: str | None) -> list[int]:
    """The dashboard's process and, on PostgreSQL, the backends its connection pool opened."""
    pids = [server.pid]
    if state_url:
        import psycopg

        name = state_url.rsplit("application_name=", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            pids += [r[0] for r in admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                                 (name,)).fetchall()]
    return pids


@contextlib.contextmanager
def dashboard(home: Path, state_url: str | None) -> Iterator[tuple[httpx.Client, subprocess.Popen[str]]]:
    """``invoicesync serve`` on ``home`` in its own process, and a client logged in to it."""
    env = {**os.environ, "INVOICESYNC_SECRETS": "file"}
    env.pop("INVOICESYNC_STATE_URL", None)
    if state_url:
        env["INVOICESYNC_STATE_URL"] = state_url
    cli = [sys.executable, "-m", "invoicesync", "--home", str(home)]
    subprocess.run([*cli, "serve-user", "add", ADMIN, "--password-stdin"], input=PASSWORD + "\n", env=env,
                   check=True, text=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.2)
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert csrf, "no CSRF token on /login"
        answer = client.post("/login", data={"username": ADMIN, "password": PASSWORD, "next": "/documents",
                                             "csrf": csrf.group(1)})
        assert answer.status_code == 303, f"login failed: {answer.status_code}"
        yield client, server
        client.close()
    finally:
        server.terminate()
        server.wait(30)


def requests(probe: dict[str, Any], client: httpx.Client) -> list[tuple[str, str]]:
    """What is timed: (label, URL)."""
    first = client.get("/documents")
    page2 = re.search(r'href="(/documents\?[^"]*before=\d+[^"]*)" id="next-page"', first.text)
    assert page2, "the first page has no link to the next one"
    urls = [("first page", "/documents"), ("page 2", page2.group(1).replace("&amp;", "&"))]
    for status in ("delivered", "unchanged", "skipped", "failed", "pending", "deleted", "undelivered"):
        urls.append((f"status {status}", f"/documents?status={status}"))
    urls += [
        ("status failed at dropbox", "/documents?status=failed&target=dropbox"),
        ("combo: account+direction+kind+since+failed", "/documents?account=books-nv&direction=purchase&kind=invoice"
                                                       "&since=2025-01-01&status=failed"),
        ("combo: company+until+hide deleted", "/documents?company=576108&until=2024-06-30&deleted=hide"),
        ("search number (exact)", f"/documents?q={probe['number']}"),
        ("search number (part)", f"/documents?q={probe['number'][-6:-1]}"),
        ("search counterparty (common)", "/documents?q=proximus"),
        ("search counterparty (rare)", "/documents?q=" + httpx.QueryParams({"x": RARE.lower()})["x"]),
        ("document page", f"/document?id={httpx.QueryParams({'x': probe['document']})['x']}"),
    ]
    return urls


def measure(client: httpx.Client, url: str, repeat: int, pids: list[int]) -> dict[str, Any]:
    warm = client.get(url)
    assert warm.status_code == 200, f"{url}: {warm.status_code}"
    rows = warm.text.count("<tr") - 1
    matches = re.search(r'id="matches">([^<]*)<', warm.text)
    times = []
    cpu_before = cpu_ms(pids)
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    cpu = (cpu_ms(pids) - cpu_before) / repeat
    times.sort()
    return {"p50": statistics.median(times), "p95": times[max(0, round(0.95 * len(times)) - 1)],
            "max": times[-1], "cpu": cpu, "rows": rows,
            "matches": matches.group(1).split(" document")[0] if matches else ""}


def run_backend(backend: str, home: Path, probe: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_copy(home)) if backend == "postgres" else None
        client, server = stack.enter_context(dashboard(home, url))
        results = []
        for label, path in requests(probe, client):
            pids = server_pids(server, url)  # the pool may have opened another connection meanwhile
            result = {"backend": backend, "request": label, **measure(client, path, repeat, pids)}
            print(f"{backend:<8} {label:<45} p50 {result['p50']:7.1f} ms  p95 {result['p95']:7.1f} ms  "
                  f"CPU {result['cpu']:6.1f} ms  rows {result['rows']}  matches {result['matches']}", flush=True)
            results.append(result)
        return results


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.node() or 'vm'}: {platform.system()} {platform.release()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}, "
            f"load average {load} at start")


def markdown(results: list[dict[str, Any]], count: int, deliveries: int, label: str, note: str, command: str,
             where: str, fill_s: float) -> str:
    backends = sorted({r["backend"] for r in results}, key=["sqlite", "postgres"].index)
    head = ("| request | " + " | ".join(f"{b} p50 ms | {b} p95 ms | {b} CPU ms" for b in backends)
            + " | rows | matches |")
    lines = [f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Documents page at {count:,} documents: {label}", "",
             f"Machine: {where}.  ", f"Command: `{command}`  ",
             f"Library: {count:,} documents, {deliveries:,} ledger rows (filled in {fill_s:.0f} s). "
             "Sequential requests to a warm `invoicesync serve`, logged in; goal p95 < 200 ms. "
             "CPU: the server's per request (dashboard process + PostgreSQL backends).", ""]
    if note:
        lines += [note, ""]
    lines += [head, "|---" * (3 * len(backends) + 3) + "|"]
    for label_ in dict.fromkeys(r["request"] for r in results):
        row = {r["backend"]: r for r in results if r["request"] == label_}
        cells = " | ".join(f"{row[b]['p50']:.1f} | {row[b]['p95']:.1f} | {row[b]['cpu']:.1f}" if b in row
                           else "- | - | -" for b in backends)
        first = next(iter(row.values()))
        lines.append(f"| {label_} | {cells} | {first['rows']} | {first['matches']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per URL")
    parser.add_argument("--label", default="", help="what was measured (branch, commit)")
    parser.add_argument("--note", default="", help="a line under the heading (e.g. the machine's load)")
    parser.add_argument("--append", type=Path, help="append a Markdown table to this file (RESULTS.md)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    where = machine()
    home = Path(tempfile.mkdtemp(prefix="invoicesync-bench-"))
    try:
        started = time.perf_counter()
        probe = fill_sqlite(home, args.documents)
        fill_s = time.perf_counter() - started
        print(f"filled {args.documents:,} documents, {probe['deliveries']:,} deliveries in {fill_s:.1f} s", flush=True)
        results = [r for backend in args.backends.split(",") for r in run_backend(backend, home, probe, args.repeat)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    if args.append:
        command = "python benchmarks/serve_documents.py " + " ".join(sys.argv[1:])
        with args.append.open("a") as out:
            out.write("\n" + markdown(results, args.documents, probe["deliveries"], args.label, args.note, command,
                                      where, fill_s))
    slow = [r for r in results if r["p95"] >= 200]
    print(f"{len(slow)} of {len(results)} requests with p95 >= 200 ms" if slow else "every p95 < 200 ms")


if __name__ == "__main__":
    main()
