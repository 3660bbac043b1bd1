"""The Billit emulator (``invoicesync sandbox billit``)."""

from .app import DEMO_API_KEY, BillitSandbox
from .login import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USER

__all__ = ["DEMO_API_KEY", "DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DEMO_USER", "BillitSandbox"]
