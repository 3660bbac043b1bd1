from __future__ import annotations

from collections.abc import Callable, Sequence


class ScriptedUI:
    """A ``UI`` for tests: canned answers, and a "browser" that is a function of the URL."""

    interactive = True

    def __init__(
        self,
        answers: dict[str, str] | None = None,
        choices: Sequence[str] | None = None,
        browser: Callable[[str], None] | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self.choices = list(choices) if choices is not None else None
        self.browser = browser
        self.output: list[str] = []
        self.opened: list[str] = []

    def echo(self, message: str) -> None:
        self.output.append(message)

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        for key, answer in self.answers.items():
            if key.lower() in text.lower():
                return answer
        if default is not None:
            return default
        raise AssertionError(f"ScriptedUI has no answer for prompt {text!r}")

    def choose(self, text: str, options: Sequence[tuple[str, str]], *, multiple: bool) -> list[str]:
        values = [value for value, _ in options]
        if self.choices is None:
            return values if multiple else values[:1]
        return [c for c in self.choices if c in values]

    def open_url(self, url: str) -> bool:
        self.opened.append(url)
        if self.browser is None:
            return False
        self.browser(url)
        return True


def loopback_redirect_uri(path: str = "/callback") -> str:
    """A loopback redirect URI on a port that is free now, so parallel test runs do not collide
    on a fixed one. Register it with the sandbox's OAuth client and set it as ``redirect_uri``."""
    from ..sandbox._oauth import free_loopback_uri

    return free_loopback_uri(path)
