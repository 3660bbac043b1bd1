"""``invoicesync serve``: the dashboard in a browser (install ``invoicesync[server]``)."""

from ._app import create_app
from ._auth import ProxyLogin
from ._jobs import SyncJobs
from ._scheduler import Scheduler
from ._users import Users

__all__ = ["ProxyLogin", "Scheduler", "SyncJobs", "Users", "create_app"]
