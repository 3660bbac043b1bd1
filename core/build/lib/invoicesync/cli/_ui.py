"""The terminal ``UI`` for interactive commands (``connect``)."""

from __future__ import annotations

import webbrowser
from collections.abc import Sequence

import click


class ClickUI:
    def __init__(self, *, interactive: bool, no_browser: bool = False) -> None:
        self.interactive = interactive
        self.no_browser = no_browser

    def echo(self, message: str) -> None:
        click.echo(message, err=True)

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        if not self.interactive:
            if default is not None:
                return default
            raise click.UsageError(f"{text}: needs an answer, but stdin is not a terminal")
        return str(click.prompt(text, hide_input=secret, default=default, err=True))

    def choose(self, text: str, options: Sequence[tuple[str, str]], *, multiple: bool) -> list[str]:
        """A numbered checklist: answer ``1,3``, ``all`` (when several may be chosen) or one number."""
        click.echo(text, err=True)
        for number, (_, label) in enumerate(options, 1):
            click.echo(f"  [{number}] {label}", err=True)
        hint = "numbers separated by commas, or 'all'" if multiple else "one number"
        while True:
            answer = click.prompt(f"Choose ({hint})", err=True).strip().lower()
            if multiple and answer == "all":
                return [value for value, _ in options]
            try:
                picked = [int(part) for part in answer.replace(" ", "").split(",") if part]
            except ValueError:
                picked = []
            if picked and all(1 <= p <= len(options) for p in picked) and (multiple or len(picked) == 1):
                return [options[p - 1][0] for p in picked]
            click.echo(f"Please answer with {hint}.", err=True)

    def open_url(self, url: str) -> bool:
        if self.no_browser:
            return False
        try:
            return webbrowser.open(url)
        except webbrowser.Error:
            return False
