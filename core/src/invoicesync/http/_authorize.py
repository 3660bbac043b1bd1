"""The browser step of the OAuth authorization-code flow, for every plugin (one piece of code).

Where the login comes back is the ``redirect_uri`` registered with the service:

- A **loopback** URI (``http://127.0.0.1:PORT/path``, ``localhost``, ``[::1]``): invoicesync
  listens on exactly that host, port and path (RFC 8252 §7.3) and the browser hands the code over
  by itself. Dropbox and Billit match registered URIs exactly, so the port is the URI's; a URI
  without a port (Google's Desktop clients accept any loopback port) takes a free one.
- **Any other** registered URI (e.g. ``https://example.com/invoicesync/callback``): the browser is
  opened, the user logs in, lands on that address, and pastes it back here.

Either way ``state`` is checked, so a code meant for another login is refused. The caller builds
the authorize URL (``build_url(redirect_uri, state)``) and adds PKCE where the service takes it.

A web server carries the answer itself (its own callback URL, in a later request): the halves
``start``/``code_from_callback`` are the same ones the terminal flow above runs, and
``CodeFlow`` (``_code_flow``) puts them together with the code exchange for a plugin.
"""

from __future__ import annotations

import ipaddress
import secrets as pysecrets
import urllib.parse
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator

from ..errors import AuthError, ConfigError
from ..models import AuthStart

#: What a plugin uses when the account sets no ``redirect_uri``: a loopback URI with a fixed port,
#: as services that match registered URIs exactly need (register it as it is written here).
DEFAULT_REDIRECT_URI = "http://127.0.0.1:53682/callback"

BuildUrl = Callable[[str, str], str]


def is_loopback(redirect_uri: str) -> bool:
    """Whether the URI points back at this machine over plain http (the listener flow)."""
    split = urllib.parse.urlsplit(redirect_uri)
    if split.scheme != "http" or not split.hostname:
        return False
    if split.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(split.hostname).is_loopback
    except ValueError:
        return False


def check_redirect_uri(redirect_uri: str) -> str:
    """Refuse what no service registers: relative URIs, fragments, non-http(s) schemes."""
    split = urllib.parse.urlsplit(redirect_uri.strip())
    if split.scheme not in ("http", "https") or not split.netloc:
        raise ConfigError(f"redirect_uri {redirect_uri!r} must be an absolute http(s) URL, as registered")
    if split.fragment:
        raise ConfigError("redirect_uri may not carry a #fragment (the code comes back in the query)")
    if split.scheme == "http" and not is_loopback(redirect_uri):
        raise ConfigError("a redirect_uri that is not on this machine must use https")
    return redirect_uri.strip()


def _redirect_setting(value: str) -> str:
    try:
        return check_redirect_uri(value)
    except ConfigError as exc:  # pydantic reports ValueErrors, with the field name
        raise ValueError(str(exc)) from None


#: The type of a plugin's ``redirect_uri`` setting: validated as a registrable redirect URI.
RedirectUri = Annotated[str, AfterValidator(_redirect_setting)]


def new_state() -> str:
    return pysecrets.token_urlsafe(24)


def start(build_url: BuildUrl, redirect_uri: str) -> AuthStart:
    """The first half of a login without PKCE: a fresh ``state`` and the URL to send the person to."""
    state = new_state()
    return AuthStart(url=build_url(redirect_uri, state), state=state, redirect_uri=redirect_uri)


def callback_state(callback_url: str) -> str | None:
    """The ``state`` an answer carries (a server looks up which login it belongs to by it)."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback_url).query)).get("state")


def code_from_callback(callback_url: str, started: AuthStart) -> str:
    """The authorization code in the address the service sent the browser back to, once that
    address is the redirect URI and its ``state`` is the one ``started`` issued."""
    return _code_from(_query_of(callback_url.strip(), started.redirect_uri), started.state)


def browser_callback(
    ui: Any,
    begin: Callable[[str], AuthStart],
    *,
    redirect_uri: str | None = None,
    no_browser: bool = False,
    timeout: float = 300.0,
) -> tuple[str, AuthStart]:
    """The terminal's way of carrying a login back: ``begin(redirect_uri)`` starts it, the browser
    (or the person pasting) brings the answer. Returns ``(callback URL, what begin returned)``;
    the caller checks it with ``code_from_callback``, as a web server does with its own callback."""
    uri = check_redirect_uri(redirect_uri) if redirect_uri else "http://127.0.0.1/callback"
    if is_loopback(uri):
        from ._listener import Listener  # a login's local server: never imported by a sync

        with Listener(uri) as listener:
            started = begin(listener.redirect_uri)
            return listener.wait(ui, started.url, no_browser=no_browser, timeout=timeout), started
    started = begin(uri)
    return _pasted(ui, started.url, uri, no_browser=no_browser), started


def authorize_in_browser(
    ui: Any,
    build_url: BuildUrl,
    *,
    redirect_uri: str | None = None,
    no_browser: bool = False,
    timeout: float = 300.0,
) -> tuple[str, str]:
    """Run the browser step and return ``(code, redirect_uri as sent)``.

    ``redirect_uri`` is the registered one (``None``: a loopback URI on any free port). With
    ``no_browser`` the URL is printed and the user pastes the address they land on."""
    callback, started = browser_callback(ui, lambda uri: start(build_url, uri), redirect_uri=redirect_uri,
                                         no_browser=no_browser, timeout=timeout)
    return code_from_callback(callback, started), started.redirect_uri


def _code_from(params: dict[str, str], state: str) -> str:
    if "error" in params:
        raise AuthError(f"the login was refused: {params.get('error_description') or params['error']}")
    if params.get("state") != state:
        raise AuthError("the login answer does not match this request (state mismatch); try again")
    code = params.get("code")
    if not code:
        raise AuthError("the login answer carries no authorization code")
    return code


def _pasted(ui: Any, url: str, redirect_uri: str, *, no_browser: bool) -> str:
    """The paste flow: the browser ends on the registered page; the user copies its address."""
    if no_browser or not ui.open_url(url):
        ui.echo(f"Open this URL in a browser and log in:\n\n  {url}\n")
    ui.echo(f"After the login the browser goes to {redirect_uri} (the page may show an error: that is fine).")
    return str(ui.prompt("Paste the full address the browser landed on after the login")).strip()


def _query_of(pasted: str, redirect_uri: str) -> dict[str, str]:
    landed, expected = urllib.parse.urlsplit(pasted), urllib.parse.urlsplit(redirect_uri)
    if (landed.scheme, landed.netloc.lower(), landed.path.rstrip("/")) != (
            expected.scheme, expected.netloc.lower(), expected.path.rstrip("/")):
        raise AuthError(f"that address is not the registered redirect URI {redirect_uri}; paste the address "
                        "the browser shows after the login")
    return dict(urllib.parse.parse_qsl(landed.query))
