"""``DropboxSandbox``: a local Dropbox API v2 — the RPC and content routes invoicesync uses, and
OAuth — over real HTTP, with fault injection from the core sandbox kit.

Wire details kept faithful because clients depend on them: success bodies are
``Content-Type: application/json`` exactly (the official SDK asserts it); route errors are 409
``{"error_summary", "error"}`` unions; bad input is a 400 in plain text; auth errors are 401
JSON; rate limits are 429 with ``Retry-After`` and a ``RateLimitError`` body.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

from invoicesync.http import TokenSet
from invoicesync.sandbox import RedirectRegistry, Request, Response, SandboxApp

from ..errors import tag_chain
from .oauth import AuthFailedError, OAuthServer
from .routes import DropboxRoutes
from .sessions import Sessions
from .store import BadInputError, Namespace, RouteError, TooManyWritesError

DEFAULT_APP_KEY = "sandbox-app-key"
DEFAULT_SCOPES = "account_info.read files.content.write files.content.read files.metadata.read"
WRITE = "files.content.write"
READ_META = "files.metadata.read"


def summary(error: Any) -> str:
    """``error_summary``: the tag chain and a trailing ``/..`` (for logs; clients must not parse it)."""
    return "/".join(tag_chain(error)) + "/.."


def route_error(error: dict[str, Any], status: int = 409) -> Response:
    return Response.json({"error_summary": summary(error), "error": error}, status)


def rate_limited(reason: str, retry_after: int) -> Response:
    error = {"reason": {".tag": reason}, "retry_after": retry_after}
    return Response.json({"error_summary": f"{reason}/..", "error": error}, 429,
                         {"Retry-After": str(retry_after)})


class DropboxSandbox(DropboxRoutes, SandboxApp):
    name = "dropbox"

    def __init__(self, *, app_key: str = DEFAULT_APP_KEY, app_secret: str | None = None,
                 scopes: str = DEFAULT_SCOPES, root: Path | None = None, quota_bytes: int | None = None,
                 write_limit: int = 4, write_hold: float = 0.0, retry_after: int = 1,
                 access_ttl: int = 14400, lenient_names: bool = False) -> None:
        super().__init__()
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="invoicesync-dropbox-sandbox-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, root, True)
        self.root = root
        self.namespace = Namespace(root / "files", quota_bytes=quota_bytes, write_limit=write_limit,
                                   write_hold=write_hold, lenient_names=lenient_names)
        self.sessions = Sessions(root / "sessions")
        self.oauth = OAuthServer(app_key, app_secret, scopes, access_ttl)
        self.retry_after = retry_after
        self.route("GET", r"/oauth2/authorize", self.oauth.authorize)
        self.route("POST", r"/oauth2/token", self.oauth.token)
        rpc = {"files/get_metadata": self.get_metadata, "files/create_folder_v2": self.create_folder,
               "files/list_folder": self.list_folder, "files/list_folder/continue": self.list_folder_continue,
               "files/upload_session/finish_batch_v2": self.finish_batch, "files/move_v2": self.move,
               "files/delete_v2": self.delete}
        content = {"files/upload": self.upload, "files/upload_session/start": self.session_start,
                   "files/upload_session/append_v2": self.session_append,
                   "files/upload_session/finish": self.session_finish}
        for name, handler in rpc.items():
            self.route("POST", f"/2/{name}", self._rpc(name, handler))
        for name, handler in content.items():
            self.route("POST", f"/2/{name}", self._content(name, handler))

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> DropboxSandbox:
        known = {"app_key", "app_secret", "scopes", "quota_bytes", "write_limit", "write_hold", "retry_after",
                 "access_ttl", "lenient_names"}
        app = cls(**{k: v for k, v in options.items() if k in known and v is not None})
        # redirect_uris, lenient_redirects: the app's registered redirect URIs (exact match)
        app.oauth.redirects = RedirectRegistry.from_options(options, app.oauth.redirects.uris)
        return app

    def close(self) -> None:
        if hasattr(self, "_cleanup"):
            self._cleanup()

    # -- demo accounts ---------------------------------------------------------------------------

    def account_settings(self, base_url: str) -> dict[str, Any]:
        return {"app_key": self.oauth.app_key, "api_url": base_url, "content_url": base_url,
                "authorize_url": f"{base_url}/oauth2/authorize", "token_url": f"{base_url}/oauth2/token",
                "redirect_uri": self.oauth.redirects.register_free_loopback()}

    def account_secrets(self) -> dict[str, str]:
        access, refresh, expires_at = self.oauth.issue_demo_tokens()
        token = TokenSet(access_token=access, refresh_token=refresh, expires_at=expires_at, token_type="bearer",
                         scope=self.oauth.scopes)
        return {"oauth_token": token.model_dump_json()}

    # -- error bodies (also used by injected faults) ---------------------------------------------

    def error(self, status: int, code: str, message: str, request: Request | None = None) -> Response:
        if status == 429:
            reason = "too_many_write_operations" if code == "too_many_write_operations" else "too_many_requests"
            if code == "text":  # the plain-text form of a 429 means too_many_requests
                return Response(429, b"Too many requests", {"Content-Type": "text/plain; charset=utf-8",
                                                              "Retry-After": str(self.retry_after)})
            return rate_limited(reason, self.retry_after)
        if status == 401:
            return route_error({".tag": code if code.islower() else "invalid_access_token"}, 401)
        if status == 409:
            return route_error(_union_from_chain(code, request))
        return Response.text(message if status != 404 else f"Unknown API function: {request and request.path}",
                             status)

    # -- route plumbing --------------------------------------------------------------------------

    def _guarded(self, name: str, request: Request, handler: Any, arg: Any) -> Response:
        try:
            self.oauth.check(request, READ_META if name.startswith(("files/get_", "files/list_")) else WRITE)
            return handler(request, arg)
        except AuthFailedError as exc:
            return route_error(exc.error, 401)
        except BadInputError as exc:
            return Response.text(str(exc), 400)
        except RouteError as exc:
            return route_error(exc.error)
        except TooManyWritesError:
            return rate_limited("too_many_write_operations", self.retry_after)

    def _rpc(self, name: str, handler: Any) -> Any:
        def run(request: Request) -> Response:
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type != "application/json":
                return Response.text(f'Error in call to API function "{name}": Bad HTTP "Content-Type" header: '
                                     f'"{content_type}".  Expecting one of "application/json", '
                                     '"text/plain; charset=dropbox-cors-hack".', 400)
            try:
                arg = json.loads(request.body or b"null")
            except ValueError:
                return Response.text(f'Error in call to API function "{name}": request body: could not decode '
                                     "input as JSON", 400)
            if not isinstance(arg, dict):
                return Response.text(f'Error in call to API function "{name}": request body: expected object', 400)
            return self._guarded(name, request, handler, arg)
        return run

    def _content(self, name: str, handler: Any) -> Any:
        def run(request: Request) -> Response:
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type not in ("application/octet-stream", "text/plain"):
                return Response.text(f'Error in call to API function "{name}": Bad HTTP "Content-Type" header: '
                                     f'"{content_type}".  Expecting one of "application/octet-stream", '
                                     '"text/plain; charset=dropbox-cors-hack".', 400)
            raw = request.headers.get("Dropbox-API-Arg") or request.arg("arg")
            if raw is None:
                return Response.text(f'Error in call to API function "{name}": Must provide HTTP header '
                                     '"Dropbox-API-Arg" or URL parameter "arg".', 400)
            try:
                arg = json.loads(raw)
            except ValueError:
                return Response.text(f'Error in call to API function "{name}": HTTP header "Dropbox-API-Arg": '
                                     "could not decode input as JSON", 400)
            if not isinstance(arg, dict):
                return Response.text(f'Error in call to API function "{name}": HTTP header "Dropbox-API-Arg": '
                                     "expected object", 400)
            return self._guarded(name, request, handler, arg)
        return run


def _union_from_chain(code: str, request: Request | None) -> dict[str, Any]:
    """An injected 409's union from a tag chain like ``path/insufficient_space``, shaped for the
    route (``files/upload`` wraps its WriteError in the ``UploadWriteFailed`` struct)."""
    tags = [t for t in code.split("/") if t and t != ".."] or ["other"]
    node: dict[str, Any] = {".tag": tags[-1]}
    for tag in reversed(tags[:-1]):
        node = {".tag": tag, tag: node}
    if request is not None and request.path == "/2/files/upload" and tags[0] == "path" and len(tags) > 1:
        return {".tag": "path", "reason": node["path"], "upload_session_id": "pid_upload_session:injected"}
    return node

