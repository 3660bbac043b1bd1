"""Build local emulators of a plugin's service: routing, fault injection and a loopback server."""

from ._app import DropConnection, Fault, Request, Response, SandboxApp, file_chunks
from ._oauth import CODE_LIFETIME, CodeStore, RedirectRegistry
from ._server import RunningSandbox, serve

__all__ = ["CODE_LIFETIME", "CodeStore", "DropConnection", "Fault", "RedirectRegistry", "Request", "Response",
           "RunningSandbox", "SandboxApp", "file_chunks", "serve"]
