"""``deploy/compose.yaml``, checked without a Docker engine (none runs here): it is a valid Compose
file (the Compose Specification's schema, as ``compose-pydantic``'s models), every invoicesync
command in it parses against the real CLI — command, options and their values — the services and
volumes the docs promise are there, and secrets come from env files, never from the file itself.

One documented tolerance: commands that another branch of this release adds (``PENDING``) may be
missing from this checkout's CLI, failing with exactly the error named there. Once they exist they
are checked like every other command."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from compose_pydantic import ComposeSpecificationFactory, DictSpecStrategy
from invoicesync.cli import cli

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"

#: Service -> the error its command may fail with while the helper building it has not merged
#: (none now: ``invoicesync worker`` and ``sync --executor celery`` came with the Celery executor).
PENDING: dict[str, str] = {}
#: Environment variable names that carry secrets: they belong in env files, not in compose.yaml.
SECRET_NAME = re.compile(r"PASSWORD|_PASS$|_SECRET$|TOKEN|API_KEY|_URL$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _invoicesync_args(command: list[str]) -> list[str] | None:
    """The arguments of the ``invoicesync`` call a container runs (``sh -c "exec invoicesync …"`` too)."""
    if command[:2] == ["sh", "-c"]:
        command = [word for word in shlex.split(command[2]) if word != "exec"]
    return command[1:] if command and command[0] == "invoicesync" else None


def _parse(args: list[str]) -> None:
    """Parse ``args`` as the CLI would, down to the last subcommand, without running anything."""
    group: click.Command = cli
    ctx = group.make_context("invoicesync", list(args))
    while isinstance(group, click.Group):
        with warnings.catch_warnings():  # click 8.2 keeps the subcommand in args, 8.1 in protected_args
            warnings.simplefilter("ignore", DeprecationWarning)
            remaining = [*ctx.protected_args, *ctx.args]
        name, command, rest = group.resolve_command(ctx, remaining)
        assert command is not None and name is not None
        ctx = command.make_context(name, rest, parent=ctx)
        group = command


def _validated(compose: dict[str, Any]) -> Any:
    """The file as the Compose Specification's models. Top-level ``x-`` keys are left out first:
    the specification allows them (``patternProperties: ^x-``), these generated models do not, and
    the YAML merge keys (``<<: *invoicesync``) have already copied their content into the services."""
    return ComposeSpecificationFactory(DictSpecStrategy())({k: v for k, v in compose.items() if not k.startswith("x-")})


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    spec = _validated(compose)
    assert spec.services is not None
    assert {"postgres", "rabbitmq", "worker", "serve"} <= set(spec.services)


def test_a_misspelt_key_is_refused_by_the_check() -> None:
    """The schema check can fail: an unknown key in a service is an error, not ignored."""
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["worker"]["replica"] = 3
    with pytest.raises(ValueError, match="replica"):
        _validated(broken)


def test_every_invoicesync_command_parses_against_the_cli(compose: dict[str, Any]) -> None:
    commands = {name: _invoicesync_args(service.get("command") or []) for name, service in compose["services"].items()}
    ours = {name: args for name, args in commands.items() if args is not None}
    assert set(ours) == {"worker", "serve", "sync", "migrate-home"}
    for name, args in ours.items():
        try:
            _parse(args)
        except click.UsageError as exc:
            assert name in PENDING and PENDING[name] in exc.format_message(), (name, args, exc.format_message())


def test_the_parse_check_can_fail() -> None:
    with pytest.raises(click.UsageError, match="--portt"):
        _parse(["serve", "--portt", "1"])
    with pytest.raises(click.UsageError, match="No such command"):
        _parse(["stat", "migrate"])


def test_workers_scale_share_the_home_and_wait_for_their_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("worker", "serve", "sync", "migrate-home"):
        service = services[name]
        assert "home:/var/lib/invoicesync" in service["volumes"]
        assert service["environment"]["INVOICESYNC_HOME"] == "/var/lib/invoicesync"
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                         "rabbitmq": {"condition": "service_healthy"}}
    for name in ("postgres", "rabbitmq", "worker", "serve"):
        assert services[name]["healthcheck"]["test"], name
    serve_health = " ".join(services["serve"]["healthcheck"]["test"])
    assert "/healthz" in serve_health
    assert set(compose["volumes"]) == {"home", "pgdata", "rabbitmq"}
    image = services["worker"]["build"]
    assert (DEPLOY.parent / image["context"].removeprefix("../") / image["dockerfile"]).resolve().is_file() or \
        (COMPOSE.parent / image["context"] / image["dockerfile"]).resolve().is_file()


def test_secrets_come_from_env_files_with_committed_examples(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        inline = [key for key in (service.get("environment") or {}) if SECRET_NAME.search(key)]
        assert inline == [], f"{name}: {inline} belong in an env file"
        for env_file in service.get("env_file") or []:
            example = DEPLOY / f"{env_file}.example"
            assert example.is_file(), example
            assert not (DEPLOY / env_file).exists() or env_file.endswith(".env")
    assert "*.env" in (DEPLOY / ".gitignore").read_text().split()
    urls = dict(line.split("=", 1) for line in (DEPLOY / "invoicesync.env.example").read_text().splitlines()
                if line and not line.startswith("#"))
    assert urls["INVOICESYNC_STATE_URL"].startswith("postgresql://") and "@postgres:" in urls["INVOICESYNC_STATE_URL"]
    assert urls["INVOICESYNC_BROKER_URL"].startswith("amqp://") and "@rabbitmq:" in urls["INVOICESYNC_BROKER_URL"]


def test_every_invoicesync_container_mounts_the_logins_key_as_a_secret_file(compose: dict[str, Any]) -> None:
    """The logins live in the state, encrypted; each container reads the key from a compose secret."""
    assert compose["secrets"]["invoicesync_key"] == {"file": "./secrets.key"}
    assert "secrets.key" in (DEPLOY / ".gitignore").read_text().split()
    for name in ("worker", "serve", "sync", "migrate-home"):
        service = compose["services"][name]
        assert service["secrets"] == ["invoicesync_key"], name
        assert service["environment"]["INVOICESYNC_SECRETS_KEY_FILE"] == "/run/secrets/invoicesync_key", name


def test_the_image_installs_extras_that_exist(compose: dict[str, Any]) -> None:
    """The Dockerfile's core extras are core's (``celery`` comes with the Celery executor: PENDING)."""
    import tomllib

    core = tomllib.loads((DEPLOY.parent / "core" / "pyproject.toml").read_text())
    extras = set(core["project"]["optional-dependencies"])
    wanted = set(re.search(r'"\./core\[([^]]+)\]"', (DEPLOY / "Dockerfile").read_text())[1].split(","))
    missing = wanted - extras
    assert missing <= ({"celery"} if "worker" in PENDING else set()), missing
    for plugin in re.findall(r"\./plugins/(\w+)", (DEPLOY / "Dockerfile").read_text()):
        assert (DEPLOY.parent / "plugins" / plugin / "pyproject.toml").is_file(), plugin
