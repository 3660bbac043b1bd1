"""A local Dropbox (API v2 + OAuth) for tests and demos: ``DropboxSandbox``."""

from .app import DEFAULT_APP_KEY, DropboxSandbox

__all__ = ["DEFAULT_APP_KEY", "DropboxSandbox"]
