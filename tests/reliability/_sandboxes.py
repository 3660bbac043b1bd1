"""The sandboxes of a reliability run, each in a process of its own, driven over HTTP."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
TARGET_PLUGINS = ("dropbox", "gdrive", "dynamics365")
#: Short-lived tokens (seconds) for the fault storm; each plugin names the option its own way.
TOKEN_OPTIONS = {"billit": "token_lifetime", "dropbox": "access_ttl", "gdrive": "token_ttl",
                 "dynamics365": "token_lifetime"}


class SandboxProcess:
    """``python _sandbox_main.py PLUGIN ...``: started, asked for its URL, stopped by closing stdin."""

    def __init__(self, plugin: str, home: Path, options: dict[str, Any]) -> None:
        self.plugin = plugin
        # Its temporary folders (Dropbox's and Drive's file stores) go under ``home``, which the
        # suite deletes: nothing is left in /tmp even when the process has to be killed.
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        with open(home / "sandbox.log", "ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "_sandbox_main.py"), plugin, str(home), json.dumps(options)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=home,
                env={**os.environ, "INVOICESYNC_SECRETS": "file", "TMPDIR": str(home / "tmp")})
        self.url = ""
        self.settings: dict[str, Any] = {}
        self.secrets: dict[str, str] = {}
        self._client: httpx.Client | None = None

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the sandbox prints one JSON line once it serves
        if not line:
            raise RuntimeError(f"the {self.plugin} sandbox did not start (exit {self.process.poll()})")
        info = json.loads(line)
        self.url, self.settings, self.secrets = info["url"], info["settings"], info["secrets"]
        ca = self.settings.get("ca_bundle")
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        self._client = httpx.Client(base_url=self.url, verify=verify, timeout=timeout)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        assert self._client is not None
        response = self._client.request(method, f"/__sandbox__/{path}", json=body)
        response.raise_for_status()
        return response.json()

    def add_fault(self, **fault: Any) -> None:
        self.admin("POST", "faults", fault)

    def add_faults(self, faults: list[dict[str, Any]]) -> None:
        self.admin("POST", "reliability/faults", faults)

    def fault_counts(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "reliability/faults")
        return result

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.admin("GET", "requests")
        return result

    def store(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "reliability/store")
        return result

    def expire_tokens(self) -> None:
        self.admin("POST", "reliability/expire")

    def get(self, path: str, headers: dict[str, str]) -> httpx.Response:
        assert self._client is not None
        response = self._client.get(path, headers=headers)
        response.raise_for_status()
        return response

    def request_stop(self) -> None:
        """Close our end of its stdin (it then stops); ``stop`` waits. Stopping many at once
        overlaps their shutdowns."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except OSError:
                pass

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.process.poll() is None:
            self.request_stop()
            try:
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_all(plugins: list[tuple[str, Path, dict[str, Any]]]) -> dict[str, SandboxProcess]:
    """Start every sandbox first and wait after: their start-ups overlap."""
    started: dict[str, SandboxProcess] = {}
    try:
        for name, home, options in plugins:
            home.mkdir(parents=True, exist_ok=True)
            started[name] = SandboxProcess(name.split(":")[0], home, options)
        for sandbox in started.values():
            sandbox.wait_ready()
    except BaseException:
        for sandbox in started.values():
            sandbox.stop()
        raise
    return started
