"""Connecting an OAuth account, the same way for every plugin: keep a stored login that still
works, log in again when asked (``--relogin``) or when it no longer works, keep the client secret
however it was given, and tell the user the one command that fixes a lost login."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import AuthError

if TYPE_CHECKING:
    from ..context import Context
    from ..models import Account

T = TypeVar("T")


def relogin_command(account: Account) -> str:
    """The command that logs an account in again (its settings and companies are kept)."""
    return f"invoicesync connect {account.plugin} --name {account.name} --relogin"


def relogin_hint(account: Account) -> str:
    return f"run `{relogin_command(account)}` to log in again"


def wants_relogin(options: dict[str, Any]) -> bool:
    """``--relogin`` arrives as ``True``; ``--relogin no`` as a string."""
    value = options.get("relogin", False)
    return value.strip().lower() not in ("", "0", "false", "no", "off") if isinstance(value, str) else bool(value)


def keep_or_login(ctx: Context, *, service: str, token_key: str, login: Callable[[], None],
                  verify: Callable[[], T]) -> T:
    """Make sure the account has a working login and return what ``verify`` returns.

    A stored login that ``verify`` accepts is kept (``invoicesync demo`` and scripts store a token
    set first and connect without a person). The browser runs when there is none, when the user
    asks with ``--relogin``, or when the stored one fails and someone is there to log in; without
    a person, a failing login is an ``AuthError`` that names the relogin command."""
    if ctx.secrets.get(token_key) and not wants_relogin(ctx.options):
        try:
            result = verify()
        except AuthError as exc:
            if not ctx.ui.interactive:
                raise AuthError(f"the stored {service} login does not work ({exc}); run "
                                f"`{relogin_command(ctx.account)}` in a terminal to log in again") from exc
            ctx.ui.echo(f"The stored {service} login does not work ({exc}); logging in again.")
        else:
            ctx.ui.echo(f"Using the stored {service} login.")
            return result
    login()
    return verify()


def secret_for_login(ctx: Context, key: str, question: str, *, optional: bool = False) -> str | None:
    """A secret the login needs (an OAuth client secret): from the environment or the store, else
    asked for. Whatever the source, it is stored, so later syncs (which may run without that
    environment, e.g. from systemd) can still refresh the token with it."""
    value = ctx.secrets.get(key)
    if not value:
        value = ctx.ui.prompt(question, secret=True, **({"default": ""} if optional else {})).strip()
    if not value:
        if optional:
            return None
        raise AuthError(f"no {key.replace('_', ' ')} given")
    ctx.secrets.set(key, value)
    return value
