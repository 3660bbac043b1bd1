"""``[celery]`` in invoicesync.toml and its environment overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from invoicesync.config import load_config
from invoicesync.distributed import DEFAULT_BROKER, CelerySettings
from invoicesync.errors import ConfigError


def settings(tmp_path: Path, text: str) -> CelerySettings:
    path = tmp_path / "invoicesync.toml"
    path.write_text(text)
    return CelerySettings.from_config(load_config(path))


def test_defaults_the_file_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BROKER_URL", "CELERY_QUEUE", "CELERY_CHUNK_SECONDS", "CELERY_EXPORT_BATCH"):
        monkeypatch.delenv(f"INVOICESYNC_{name}", raising=False)
    assert settings(tmp_path, "") == CelerySettings(broker_url=DEFAULT_BROKER)
    chosen = settings(tmp_path, '[celery]\nbroker_url = "redis://cache:6379/2"\nqueue = "q"\nexport_batch = 7\n')
    assert (chosen.broker_url, chosen.queue, chosen.export_batch) == ("redis://cache:6379/2", "q", 7)
    monkeypatch.setenv("INVOICESYNC_BROKER_URL", "amqp://u:hunter2@rabbit/vh")
    monkeypatch.setenv("INVOICESYNC_CELERY_CHUNK_SECONDS", "2.5")
    chosen = settings(tmp_path, '[celery]\nbroker_url = "redis://cache:6379/2"\n')
    assert chosen.broker_url == "amqp://u:hunter2@rabbit/vh" and chosen.chunk_seconds == 2.5
    assert chosen.redacted_broker == "amqp://u:***@rabbit/vh"


@pytest.mark.parametrize(("text", "message"), [
    ('[celery]\nbroker = "amqp://x"\n', "no setting broker"),
    ('[celery]\nbroker_url = "http://x"\n', "neither amqp:// (RabbitMQ) nor redis://"),
    ('[celery]\nexport_batch = 0\n', "must be positive"),
    ('[celery]\nchunk_seconds = "soon"\n', "not valid"),
    ('celery = "amqp://x"\n', "must be a table"),
])
def test_mistakes_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                      message: str) -> None:
    monkeypatch.delenv("INVOICESYNC_BROKER_URL", raising=False)
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings(tmp_path, text)
