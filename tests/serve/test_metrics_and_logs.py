"""/metrics counts the core HTTP layer's requests and retries per service; serve's JSON log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from invoicesync.cli._common import setup_logging, use_json_logs
from invoicesync.http import HttpClient
from invoicesync.logs import log_fields
from invoicesync.secrets import register_secret

from .conftest import Dashboard, metric_samples


def test_metrics_count_http_requests_and_retries_per_service(admin: Dashboard) -> None:
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200),
                    httpx.Response(404)])
    transport = httpx.MockTransport(lambda request: next(answers))
    before = metric_samples(admin.client.get("/metrics").text)
    with HttpClient("https://api.example.test", service="metrics-test", transport=transport,
                    sleep=lambda seconds: None) as client:
        client.get("/things")
        client.get("/missing", check=False)  # a 404 is an answer: counted, not retried
    after = metric_samples(admin.client.get("/metrics").text)
    key = (("service", "metrics-test"),)
    assert ("invoicesync_http_requests_total", key) not in before
    assert after["invoicesync_http_requests_total", key] == 4
    assert after["invoicesync_http_retries_total", key] == 2


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_are_one_object_a_line_with_the_runs_fields_and_no_secrets(
        root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(1)
    use_json_logs()
    register_secret("s3cr3t-token-value")
    log = logging.getLogger("invoicesync.server")
    with log_fields(run=7, trigger="schedule", account="memory"):
        log.info("sent %s to the service", "s3cr3t-token-value")
    log.warning("plain", extra={"target": "archive"})
    try:
        raise ValueError("with s3cr3t-token-value inside")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().err.strip().splitlines()
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "sent *** to the service" and first["level"] == "info"
    assert first["logger"] == "invoicesync.server" and first["time"].endswith("+00:00")
    assert (first["run"], first["trigger"], first["account"]) == (7, "schedule", "memory")
    assert second["target"] == "archive" and "run" not in second
    assert "ValueError: with *** inside" in third["exception"]
    assert "s3cr3t" not in "".join(lines)


def test_every_metric_and_every_serve_option_is_documented(admin: Dashboard) -> None:
    from pathlib import Path

    import click
    from invoicesync.cli._serve import serve
    from prometheus_client.parser import text_string_to_metric_families

    docs = (Path(__file__).parents[2] / "docs" / "serve.md").read_text()
    families = list(text_string_to_metric_families(admin.client.get("/metrics").text))
    assert len(families) >= 8
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}{{" in docs, name
    for option in serve.params:
        if isinstance(option, click.Option):
            assert f"`{option.opts[0]}" in docs, option.opts[0]
