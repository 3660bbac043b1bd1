"""invoicesync's source conformance suite, run on the installed Billit plugin against its sandbox.

Every check applies and runs: paging, cursor, resume, 429 + Retry-After, 401 + refresh, rotated
refresh tokens stored before use, malformed payloads — through the real client, over loopback
HTTP, mostly through core's ``run_sync``.

The account logs in with OAuth (not the demo API key), starting from a token set the sandbox
issued to the demo user, so the token checks exercise Billit's real refresh path: single-use
refresh tokens at ``POST /OAuth2/token`` and ``AccessTokenExpired`` answers.
"""

from __future__ import annotations

from typing import Any

from invoicesync import Company
from invoicesync.http import TokenSet
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.testing.conformance import SourceConformance
from invoicesync_billit.sandbox import DEMO_CLIENT_SECRET, BillitSandbox
from invoicesync_billit.settings import BillitSettings


class TestConformance(SourceConformance):
    plugin = "billit"
    list_path = r"/v1/orders$"
    token_path = r"/OAuth2/token$"
    sandbox_options = {"documents": 12, "companies": 1}
    settings = {"page_size": 5}  # a dozen orders span three pages
    # The cursor keeps the OrderIDs already listed at its boundary instant: nothing comes twice.
    boundary_repeats = 0

    def account_settings(self, app: Any, running: RunningSandbox, plugins: Plugins) -> dict[str, Any]:
        assert isinstance(app, BillitSandbox)
        return {**app.oauth_settings(running.url), **self.settings}

    def account_secrets(self, app: Any) -> dict[str, str]:
        # A login the demo user approved on the logon page; connect reuses it without a browser.
        assert isinstance(app, BillitSandbox)
        token = TokenSet.from_response(app.issue_login())
        return {"client_secret": DEMO_CLIENT_SECRET, "oauth_token": token.model_dump_json()}

    def expected_source_ids(self, app: Any, company: Company) -> set[str]:
        # What the suite's settings import: the default order types and directions (Offers,
        # delivery notes and order forms in the sandbox are filtered away).
        assert isinstance(app, BillitSandbox)
        wanted = BillitSettings(**self.settings)
        return {str(order_id) for order_id, order in app.company(company.id).orders.items()
                if order["OrderType"] in wanted.order_types and order["OrderDirection"] in wanted.directions}

    def corrupt_document(self, app: Any, company: Company) -> str:
        assert isinstance(app, BillitSandbox)
        order_id = min(int(i) for i in self.expected_source_ids(app, company))
        app.edit_order(order_id, TotalIncl="not a number")  # the Swagger says: a number
        return str(order_id)

    def expire_access_token(self, app: Any) -> None:
        # Billit's way: the token dies early and the API answers 401 AccessTokenExpired.
        assert isinstance(app, BillitSandbox)
        app.expire_access_tokens()
