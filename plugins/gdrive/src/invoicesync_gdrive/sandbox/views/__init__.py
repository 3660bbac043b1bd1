"""The sandbox's endpoints, one module per Drive resource (as datasette splits its views):
``files`` (files.list/get/create/update), ``changes`` (the changes feed) and ``uploads`` (the
upload endpoint and resumable session URIs). ``base`` holds what they share: Drive's error shape
and the parsing of common parameters. ``DriveSandbox`` (``app.py``) routes to them."""

from .changes import ChangesView
from .files import FilesView
from .uploads import UploadsView

__all__ = ["ChangesView", "FilesView", "UploadsView"]
