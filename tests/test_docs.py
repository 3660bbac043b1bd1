"""The hook reference must document every hook with its exact signature (as datasette does)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from invoicesync import hookspecs
from invoicesync.context import Context

DOCS = Path(__file__).parent.parent / "docs" / "hooks.md"
PLUGIN_GUIDES = [DOCS.parent / "hooks.md", DOCS.parent / "write-a-connector.md", DOCS.parent / "architecture.md"]
CONTEXT_METHODS = [name for name, fn in vars(Context).items() if inspect.isfunction(fn) and not name.startswith("_")]
HOOKS = [name for name, fn in vars(hookspecs).items() if hasattr(fn, "invoicesync_spec")]


def signature(name: str) -> str:
    fn = getattr(hookspecs, name)
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def test_there_are_hooks_to_document() -> None:
    assert {"auth", "list_documents", "push_documents"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_with_its_signature_and_an_example(hook: str) -> None:
    text = DOCS.read_text()
    section = re.search(rf"^### {hook}\n(.*?)(?=^##|\Z)", text, re.S | re.M)
    assert section, f"docs/hooks.md has no '### {hook}' section"
    assert f"`{signature(hook)}`" in section.group(1), f"the signature of {hook} is missing or outdated"
    assert "```python" in section.group(1), f"{hook} has no example"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_has_a_docstring(hook: str) -> None:
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


@pytest.mark.parametrize("method", CONTEXT_METHODS)
def test_every_method_plugins_call_on_the_context_is_documented(method: str) -> None:
    text = "".join(path.read_text() for path in PLUGIN_GUIDES)
    assert f"ctx.{method}(" in text, f"ctx.{method}() is not documented for plugin authors"
