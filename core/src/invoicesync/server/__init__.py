"""``invoicesync serve``: the dashboard in a browser (install ``invoicesync[server]``)."""

from ._app import create_app
from ._jobs import SyncJobs
from ._users import Users

__all__ = ["SyncJobs", "Users", "create_app"]
