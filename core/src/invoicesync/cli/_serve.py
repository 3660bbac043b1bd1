"""``serve`` and ``serve-user``: the dashboard and its admin users. The server package does the work."""

from __future__ import annotations

import ipaddress
import sys

import click

from ..errors import ConfigError
from ._common import State, handle_errors, pass_state, use_json_logs

MISSING = "the dashboard needs its extra: pip install 'invoicesync[server]'"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--public", is_flag=True, help="Allow a non-loopback --host (put a TLS reverse proxy in front).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Host header to accept besides localhost (the proxy's public name; repeatable).")
@click.option("--https-only", is_flag=True, help="Send the session cookie over HTTPS only (behind a TLS proxy).")
@click.option("--public-url", metavar="URL", default=None,
              help="The address people open (behind a proxy, e.g. https://invoices.example.com): OAuth logins "
                   "come back to URL/oauth/callback, which must be registered with the service.")
@click.option("--proxy-user-header", metavar="HEADER", default=None,
              help="Log in the user a reverse proxy names in HEADER (e.g. X-Forwarded-User), on requests from a "
                   "--trusted-proxy only; from any other address the header is refused.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDRESS",
              help="Address or CIDR network of the reverse proxy whose --proxy-user-header is believed (repeatable).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="INVOICESYNC_LOG_FORMAT",
              help="json: one JSON object per line (time, level, logger, message, run, account), secrets redacted.")
@pass_state
@handle_errors
def serve(state: State, host: str, port: int, public: bool, allowed_hosts: tuple[str, ...], https_only: bool,
          public_url: str | None, proxy_user_header: str | None, trusted_proxies: tuple[str, ...],
          log_format: str) -> None:
    """Serve the dashboard (Sync, Documents, History) on HOST:PORT and run the accounts' schedules.

    The admins are those of `serve-user`, or the users a --trusted-proxy names in --proxy-user-header."""
    try:
        import uvicorn

        from ..server import ProxyLogin, Users, create_app
    except ImportError:
        raise ConfigError(MISSING) from None
    if log_format == "json":
        use_json_logs()
    if not _is_loopback(host) and not public:
        raise ConfigError(f"{host} is not a loopback address; pass --public to listen there, "
                          "and put a TLS reverse proxy in front (see docs/serve.md)")
    if trusted_proxies and not proxy_user_header:
        raise ConfigError("--trusted-proxy goes with --proxy-user-header (the header the proxy names its user in)")
    proxy_login = ProxyLogin.parse(proxy_user_header, trusted_proxies) if proxy_user_header else None
    workspace = state.workspace()
    if not Users(workspace.home).names() and proxy_login is None:
        raise ConfigError("no dashboard user yet; add one with `invoicesync serve-user add NAME`")
    app = create_app(workspace, allowed_hosts=("127.0.0.1", "localhost", host, *allowed_hosts), https_only=https_only,
                     public_url=public_url, proxy_login=proxy_login)
    click.echo(f"invoicesync dashboard on http://{host}:{port}/ (Ctrl-C stops it)", err=True)
    # timeout_graceful_shutdown: an open live-progress stream must not hold a stop (Ctrl-C, SIGTERM) back.
    # proxy_headers=False: the peer address stays the TCP peer's, which --trusted-proxy is checked against.
    # log_config=None: uvicorn's own lines go through the root handler (text or JSON, redacted).
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=5, log_config=None)


@click.group("serve-user")
def serve_user() -> None:
    """Dashboard admins: stored in the home (argon2 hashes, mode 0600)."""


@serve_user.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@pass_state
@handle_errors
def add_user(state: State, name: str, password_stdin: bool) -> None:
    """Add admin NAME, or set a new password for NAME."""
    try:
        from ..server import Users
    except ImportError:
        raise ConfigError(MISSING) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    Users(state.workspace().home).add(name, password)
    click.echo(f"Dashboard user {name} saved.")


@serve_user.command("remove")
@click.argument("name")
@pass_state
@handle_errors
def remove_user(state: State, name: str) -> None:
    """Remove admin NAME; its open sessions end at their next request."""
    try:
        from ..server import Users
    except ImportError:
        raise ConfigError(MISSING) from None
    if not Users(state.workspace().home).remove(name):
        raise ConfigError(f"no dashboard user called {name!r}")
    click.echo(f"Dashboard user {name} removed.")


@serve_user.command("list")
@pass_state
@handle_errors
def list_users(state: State) -> None:
    """List the admins (names only)."""
    try:
        from ..server import Users
    except ImportError:
        raise ConfigError(MISSING) from None
    for name in Users(state.workspace(writable=False).home).names():
        click.echo(name)
