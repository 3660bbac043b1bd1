"""Connecting: real msal against the sandbox's Entra (TLS, throw-away CA), companies, wrong setups."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
import msal
import pytest
from invoicesync import AuthError, ConfigError, DeliveryStatus, ServerError
from invoicesync.testing import ScriptedUI
from invoicesync.workspace import Workspace
from invoicesync_dynamics365 import plugin
from invoicesync_dynamics365.auth import MsalAuthenticator
from invoicesync_dynamics365.client import BusinessCentral
from invoicesync_dynamics365.sandbox import DEMO_CLIENT_ID, DEMO_SECRET, EntraApp
from invoicesync_dynamics365.settings import BC_SCOPE, Dynamics365Settings

TOKEN = r"/oauth2/v2\.0/token$"


def test_real_msal_gets_a_token_from_the_sandbox(bc: Any) -> None:
    app = msal.ConfidentialClientApplication(
        DEMO_CLIENT_ID, client_credential=DEMO_SECRET, authority=f"{bc.running.url}/{bc.app.entra.tenant}",
        instance_discovery=False,
        http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(bc.running.ca_file))),
    )
    first = app.acquire_token_for_client(scopes=[BC_SCOPE])
    assert first.get("token_source") == "identity_provider", first
    assert first["token_type"] == "Bearer" and first["access_token"] in bc.app.entra.tokens
    second = app.acquire_token_for_client(scopes=[BC_SCOPE])
    assert second["token_source"] == "cache" and bc.app.count("POST", TOKEN) == 1
    assert bc.app.count("GET", r"/v2\.0/\.well-known/openid-configuration$") == 1


def test_real_msal_error_for_a_wrong_secret(bc: Any) -> None:
    app = msal.ConfidentialClientApplication(
        DEMO_CLIENT_ID, client_credential="wrong", authority=f"{bc.running.url}/{bc.app.entra.tenant}",
        instance_discovery=False,
        http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(bc.running.ca_file))),
    )
    result = app.acquire_token_for_client(scopes=[BC_SCOPE])
    assert result["error"] == "invalid_client" and 7000215 in result["error_codes"]


def test_msal_instance_discovery_endpoint_is_served(bc: Any) -> None:
    response = httpx.get(f"{bc.running.url}/common/discovery/instance",
                         params={"api-version": "1.1", "authorization_endpoint":
                                 f"{bc.running.url}/{bc.app.entra.tenant}/oauth2/v2.0/authorize"},
                         verify=ssl.create_default_context(cafile=str(bc.running.ca_file)))
    assert response.json()["tenant_discovery_endpoint"].endswith(
        f"/{bc.app.entra.tenant}/v2.0/.well-known/openid-configuration")


def test_auth_lists_companies_and_stores_a_prompted_secret(bc: Any) -> None:
    bc.company  # noqa: B018 - the fixture's company
    other = bc.app.add_company("CRONUS BE Subsidiary")
    bc.workspace.secrets("bc").delete("client_secret")
    ui = ScriptedUI(answers={"client secret": DEMO_SECRET})
    ctx = bc.context(ui=ui)
    companies = plugin.auth(bc.account, ctx)
    assert {c.name for c in companies} == {"CRONUS BE", "CRONUS BE Subsidiary"}
    assert {c.id for c in companies} == {bc.company.id, other.id}
    assert bc.workspace.secrets("bc").get("client_secret") == DEMO_SECRET
    assert not any(DEMO_SECRET in line for line in ui.output)
    chosen = plugin.auth(bc.account, bc.context(options={"company": "CRONUS BE Subsidiary"}))
    assert [c.id for c in chosen] == [other.id]
    with pytest.raises(ConfigError, match="no company 'Nope'"):
        plugin.auth(bc.account, bc.context(options={"company": "Nope"}))


def test_wrong_secret_says_what_to_fix_and_is_not_stored(bc: Any) -> None:
    bc.workspace.secrets("bc").delete("client_secret")
    ui = ScriptedUI(answers={"client secret": "not-the-secret"})
    with pytest.raises(AuthError, match=r"AADSTS7000215.*client secret is wrong") as err:
        plugin.auth(bc.account, bc.context(ui=ui))
    assert "not-the-secret" not in str(err.value)
    assert bc.workspace.secrets("bc").get("client_secret") is None


def test_unknown_client_id(bc: Any) -> None:
    bc.set(client_id="00000000-1111-2222-3333-444444444444")
    with pytest.raises(AuthError, match=r"AADSTS700016.*client_id"):
        plugin.auth(bc.account, bc.context())


def test_unknown_tenant(bc: Any) -> None:
    bc.set(tenant="nobody.onmicrosoft.com")
    with pytest.raises(AuthError, match="tenant"):
        plugin.auth(bc.account, bc.context())


def test_app_not_registered_in_business_central(bc: Any) -> None:
    bc.app.entra.apps[DEMO_CLIENT_ID].registered_in_bc = False
    with pytest.raises(AuthError, match=r"Microsoft Entra Applications.*State = Enabled"):
        plugin.auth(bc.account, bc.context())


def test_missing_permission(bc: Any) -> None:
    bc.app.entra.apps[DEMO_CLIENT_ID].roles = set()
    with pytest.raises(AuthError, match="permission"):
        plugin.auth(bc.account, bc.context())


def test_setup_error_during_export_stops_the_batch(bc: Any) -> None:
    bc.app.entra.apps[DEMO_CLIENT_ID].registered_in_bc = False
    with pytest.raises(AuthError, match="Microsoft Entra Applications"):
        bc.push(bc.document())


def test_unknown_environment(bc: Any) -> None:
    bc.set(environment="staging")
    with pytest.raises(ConfigError, match="no environment 'staging'"):
        plugin.auth(bc.account, bc.context())


def test_refused_token_is_replaced(bc: Any) -> None:
    assert bc.push(bc.document())[0].status is DeliveryStatus.DELIVERED
    settings = Dynamics365Settings.model_validate(bc.account.settings)
    authenticator = MsalAuthenticator(settings, DEMO_SECRET)
    first = authenticator.token()
    assert authenticator.token() == first  # msal's cache
    bc.app.entra.revoke_all()  # BC will now answer 401 to that token
    ctx = bc.context()
    from invoicesync_dynamics365.client import BusinessCentral

    client = BusinessCentral(ctx.http(settings.api_base, auth=authenticator))
    assert [c["id"] for c in client.companies()] == [bc.company.id]
    assert authenticator.token() != first
    ctx.close()
    authenticator.close()


def test_http_authority_is_refused(bc: Any) -> None:
    bc.set(authority_host=bc.running.url.replace("https://", "http://"))
    with pytest.raises(ConfigError, match="https"):
        plugin.auth(bc.account, bc.context())


def test_plugin_info_declares_the_limits() -> None:
    info = plugin.plugin_info()
    assert (info.budget_requests, info.budget_period) == (6000, 300.0)
    assert info.concurrency <= 5 and "client_secret" in info.secrets


def test_secret_unknown_app_registration(bc: Any) -> None:
    bc.app.entra.apps["other"] = EntraApp("other", "x")  # a second app does not confuse the first
    assert plugin.auth(bc.account, bc.context())


def test_one_token_and_one_discovery_for_several_batches(bc: Any) -> None:
    # Each push is its own batch (its own push_documents call, its own context), as a run makes them.
    for number in ("INV-1", "INV-2", "INV-3"):
        [delivery] = bc.push(bc.document(number))
        assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.app.count("POST", TOKEN) == 1
    assert bc.app.count("GET", r"/\.well-known/openid-configuration$") == 1
    assert bc.app.count("GET", r"/common/discovery/instance$") == 0


def test_the_login_lives_as_long_as_the_workspace_shared_by_accounts_and_tasks(
        bc: Any, workspace_factory: Callable[..., Workspace]) -> None:
    # A Celery worker makes a context per task from one workspace; two accounts (two environments
    # or companies) may log in as one app registration. One principal: one token for all of them.
    twin = bc.account.model_copy(update={"name": "bc-twin"})
    bc.workspace.secrets("bc-twin").set("client_secret", DEMO_SECRET)
    for number in ("INV-1", "INV-2"):
        assert bc.push(bc.document(number))[0].status is DeliveryStatus.DELIVERED
    ctx = bc.workspace.context(twin)
    authenticator = BusinessCentral.for_context(ctx, DEMO_SECRET).authenticator
    assert authenticator is not None and authenticator.token()
    ctx.close()
    assert bc.app.count("POST", TOKEN) == 1
    # The workspace ends (the command, the worker): msal's HTTP client with it, not only at exit.
    bc.workspace.close()
    with pytest.raises(AuthError, match="client has been closed"):
        authenticator.refresh() and authenticator.token()
    # The next run (a new workspace) logs in afresh: nothing of the last one lingers in the process.
    bc.workspace = workspace_factory(plugins=bc.workspace.plugins)
    assert bc.push(bc.document("INV-3"))[0].status is DeliveryStatus.DELIVERED
    assert bc.app.count("POST", TOKEN) == 2


def test_another_secret_gets_its_own_application(bc: Any) -> None:
    assert bc.push(bc.document("INV-1"))[0].status is DeliveryStatus.DELIVERED
    bc.app.entra.apps[DEMO_CLIENT_ID].secret = "rotated-sandbox-secret"
    bc.workspace.secrets("bc").set("client_secret", "rotated-sandbox-secret")
    bc.app.entra.revoke_all()
    assert bc.push(bc.document("INV-2"))[0].status is DeliveryStatus.DELIVERED
    assert bc.app.count("POST", TOKEN) == 2


def test_connect_picks_the_company_by_name_or_id(bc: Any) -> None:
    from invoicesync.accounts import connect

    other = bc.app.add_company("CRONUS BE Subsidiary")
    settings = dict(bc.account.settings)
    by_name = connect(bc.workspace, "dynamics365", ui=ScriptedUI(), name="bc", settings=settings,
                      companies=("CRONUS BE Subsidiary",))
    assert [c.id for c in by_name.companies] == [other.id]
    by_id = connect(bc.workspace, "dynamics365", ui=ScriptedUI(), name="bc", settings=settings,
                    companies=(bc.company.id,))
    assert [c.id for c in by_id.companies] == [bc.company.id]


def test_connect_refuses_an_ambiguous_company_name_listing_both(bc: Any) -> None:
    from invoicesync.accounts import connect

    one = bc.app.add_company("CRONUS-A", display_name="CRONUS Shared")
    two = bc.app.add_company("CRONUS-B", display_name="CRONUS Shared")
    with pytest.raises(ConfigError, match="more than one company") as err:
        connect(bc.workspace, "dynamics365", ui=ScriptedUI(), name="bc", settings=dict(bc.account.settings),
                companies=("CRONUS Shared",))
    assert one.id in str(err.value) and two.id in str(err.value)
    with pytest.raises(ConfigError, match="more than one company") as err:
        plugin.auth(bc.account, bc.context(options={"company": "CRONUS Shared"}))
    assert one.id in str(err.value) and two.id in str(err.value)


# -- Entra hiccups: retried through core's HTTP layer, refusals still say what to fix ----------


def test_a_503_at_the_token_endpoint_is_retried_and_the_invoice_delivered(bc: Any) -> None:
    bc.app.add_fault({"method": "POST", "path": TOKEN, "status": 503, "times": 1})
    [delivery] = bc.push(bc.document())
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.app.count("POST", TOKEN) == 2


def test_a_429_at_the_token_endpoint_waits_retry_after(bc: Any) -> None:
    bc.app.add_fault({"method": "POST", "path": TOKEN, "status": 429, "headers": {"Retry-After": "7"},
                      "body": {"error": "temporarily_unavailable"}, "times": 1})
    waits: list[float] = []
    authenticator = MsalAuthenticator(Dynamics365Settings.model_validate(bc.account.settings), DEMO_SECRET,
                                      sleep=waits.append)
    try:
        assert authenticator.token() in bc.app.entra.tokens
    finally:
        authenticator.close()
    assert len(waits) == 1 and 7 <= waits[0] < 8
    assert bc.app.count("POST", TOKEN) == 2


def test_a_dropped_token_connection_is_retried(bc: Any) -> None:
    bc.app.add_fault({"action": "drop", "method": "POST", "path": TOKEN, "times": 1})
    authenticator = MsalAuthenticator(Dynamics365Settings.model_validate(bc.account.settings), DEMO_SECRET,
                                      sleep=lambda seconds: None)
    try:
        assert authenticator.token() in bc.app.entra.tokens
    finally:
        authenticator.close()


def test_entra_failing_on_is_a_server_error_not_a_wrong_setup(bc: Any) -> None:
    bc.app.add_fault({"method": "POST", "path": TOKEN, "status": 503, "times": None})
    authenticator = MsalAuthenticator(Dynamics365Settings.model_validate(bc.account.settings), DEMO_SECRET,
                                      sleep=lambda seconds: None)
    try:
        with pytest.raises(ServerError) as err:
            authenticator.token()
    finally:
        authenticator.close()
    assert not isinstance(err.value, AuthError) and bc.app.count("POST", TOKEN) > 1


def test_a_wrong_secret_is_not_retried_and_says_what_to_fix(bc: Any) -> None:
    authenticator = MsalAuthenticator(Dynamics365Settings.model_validate(bc.account.settings), "not-the-secret",
                                      sleep=lambda seconds: None)
    try:
        with pytest.raises(AuthError, match=r"AADSTS7000215.*client secret is wrong") as err:
            authenticator.token()
    finally:
        authenticator.close()
    assert "not-the-secret" not in str(err.value) and bc.app.count("POST", TOKEN) == 1
