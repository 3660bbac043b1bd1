"""A local emulator of the Google Drive API v3 (files, uploads, OAuth) with fault injection."""

from .app import SHARED_DRIVE_ID, DriveSandbox
from .oauth import CLIENT_ID, CLIENT_SECRET, SERVICE_ACCOUNT

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "SERVICE_ACCOUNT", "SHARED_DRIVE_ID", "DriveSandbox"]
