"""``SourceConformance``: the checks every source plugin must pass, against its own sandbox.

Subclass it in your plugin's tests and fill in what only your connector knows::

    from invoicesync.testing.conformance import SourceConformance

    class TestConformance(SourceConformance):
        plugin = "billit"                       # the entry-point name
        list_path = r"/v1/orders$"              # the listing endpoint (a regex over the path)
        token_path = r"/oauth2/token$"          # the OAuth token endpoint
        settings = {"page_size": 5}             # so the seeded documents span several pages

        def expected_source_ids(self, app, company):
            return {o.id for o in app.orders(company.id)}

        def corrupt_document(self, app, company):
            return app.corrupt_one(company.id)  # returns its source id

The sandbox comes from the plugin's ``sandbox`` hook (``sandbox_options`` are passed to it), is
served on loopback with core ``serve`` and an account is connected with the app's
``account_settings(url)`` and ``account_secrets()``. Every check drives the real plugin code
over real HTTP, mostly through the core pipeline (``run_sync``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...context import UI, NonInteractiveUI, PluginKind
from ...models import Account, Checkpoint, Company, DocumentRef
from ...pipeline import EXIT_OK, EXIT_PARTIAL, SyncReport, run_sync
from ...plugins import Plugins
from ...sandbox import Fault, RunningSandbox, SandboxApp
from ...workspace import Workspace
from ._common import connect_account, library, load_plugins, sandbox_settings, skip_if_declared
from ._observe import RequestObserver, Seen

ACCOUNT = "conformance"


@dataclass
class SourceEnv:
    """One connected source account against a running sandbox, for one check."""

    plugin: str
    plugins: Plugins
    workspace: Workspace
    app: SandboxApp
    running: RunningSandbox
    observer: RequestObserver
    account: Account

    @property
    def companies(self) -> list[Company]:
        return self.account.companies

    def listing(self, company: Company, cursor: str | None) -> list[DocumentRef | Checkpoint]:
        """Call ``list_documents`` directly (no pipeline) and collect what it yields."""
        ctx = self.workspace.context(self.account)
        try:
            items = self.plugins.call(self.plugin, "list_documents", account=self.account, company=company,
                                      cursor=cursor, ctx=ctx)
            return [i for i in items if isinstance(i, DocumentRef | Checkpoint)]
        finally:
            ctx.close()

    def listed_ids(self, company: Company, cursor: str | None) -> list[str]:
        return [i.source_id for i in self.listing(company, cursor) if isinstance(i, DocumentRef)]

    def sync(self) -> SyncReport:
        return run_sync(self.workspace, accounts=[self.account.name])

    def library_ids(self) -> set[str]:
        return set(library(self.workspace))

    def cursors(self) -> dict[str, str | None]:
        return {c.id: self.workspace.state.get_cursor(self.account.name, c.id) for c in self.companies}

    def secret(self, key: str) -> str | None:
        return self.workspace.secrets(self.account.name).get(key)


class SourceConformance:
    """The source suite. Class attributes and methods below are the adapter; ``test_*`` are the checks."""

    #: The plugin's entry-point name (``invoicesync.sources``).
    plugin: ClassVar[str] = ""
    #: Regex over the path of the listing endpoint (GET). Faults for paging, resume and 429 go there.
    list_path: ClassVar[str] = ""
    #: Regex over the path of the OAuth token endpoint (POST); needed by the token checks.
    token_path: ClassVar[str | None] = None
    #: The ``ctx.secrets`` key the token set is stored under (core ``TokenAuth``'s default).
    token_secret: ClassVar[str] = "oauth_token"
    #: Passed to the plugin's ``sandbox(options)`` hook.
    sandbox_options: ClassVar[dict[str, Any]] = {"documents": 12, "seed": 1}
    #: Account settings laid over the sandbox's own ``account_settings(url)`` (e.g. a small page size).
    settings: ClassVar[dict[str, Any]] = {}
    #: How many already-seen documents a listing from a saved cursor may yield again per company
    #: (items that share the cursor's boundary, e.g. an inclusive ``modified >= cursor``).
    boundary_repeats: ClassVar[int] = 1
    #: The ``Retry-After`` (seconds) the 429 check sends.
    retry_after: ClassVar[int] = 1
    #: ``{check name: reason}`` for checks that cannot apply, e.g.
    #: ``{"rotating_refresh_tokens": "the service uses API keys; there is no token to refresh"}``.
    #: Names: paging, cursor, resume, retry_after, refresh_after_401, rotating_refresh_tokens, malformed.
    skip_checks: ClassVar[dict[str, str]] = {}

    # -- the adapter: override what only your connector knows ----------------------------------

    def plugin_object(self) -> Any | None:
        """The plugin object to test instead of the installed entry point (``None``: installed)."""
        return None

    def make_sandbox(self, plugins: Plugins) -> SandboxApp:
        """The sandbox to run: by default the plugin's own ``sandbox(options)`` hook."""
        app = plugins.call(self.plugin, "sandbox", options=dict(self.sandbox_options))
        if not isinstance(app, SandboxApp):
            pytest.fail(f"{self.plugin}'s sandbox hook returned {type(app).__name__}, not a SandboxApp")
        return app

    def account_settings(self, app: SandboxApp, running: RunningSandbox, plugins: Plugins) -> dict[str, Any]:
        """Settings for the account: the sandbox's ``account_settings(url)``, its CA when the plugin
        takes a ``ca_bundle``, then ``settings``. Override to connect another way (e.g. OAuth)."""
        return sandbox_settings(plugins, self.plugin, running, self.settings)

    def account_secrets(self, app: SandboxApp) -> dict[str, str]:
        """Secrets stored before ``auth`` runs: by default the sandbox's ``account_secrets()``."""
        return dict(app.account_secrets())

    def connect_ui(self, running: RunningSandbox) -> UI:
        """The UI ``auth`` gets while connecting: by default one that never asks (the sandbox's
        secrets should be enough). A ``ScriptedUI`` with a ``browser`` can finish an OAuth flow."""
        return NonInteractiveUI()

    def expected_source_ids(self, app: SandboxApp, company: Company) -> set[str]:
        """The source ids of every live document of ``company`` the plugin should import with the
        suite's settings (leave out what those settings filter away): the ground truth."""
        raise NotImplementedError("override expected_source_ids(app, company): what the sandbox holds")

    def corrupt_document(self, app: SandboxApp, company: Company) -> str:
        """Turn one document of ``company`` into a malformed payload; return its source id."""
        raise NotImplementedError("override corrupt_document(app, company): make one payload malformed")

    def expire_access_token(self, app: SandboxApp) -> None:
        """Make the sandbox refuse the current access token. The default injects one 401 on the
        listing endpoint; override it to expire the token the way your service does."""
        app.add_fault(Fault(method="GET", path=self.list_path, status=401, code="Unauthorized", times=1))

    # -- fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def source_env(self, tmp_path: Path, workspace_factory: Callable[..., Workspace],
                   serve_sandbox: Callable[..., RunningSandbox]) -> Iterator[SourceEnv]:
        if not self.list_path:
            raise pytest.UsageError(f"{type(self).__name__}: set list_path, the regex of the listing endpoint")
        plugins = load_plugins(self.plugin, PluginKind.SOURCE, self.plugin_object())
        app = self.make_sandbox(plugins)
        running = serve_sandbox(app, tls=getattr(app, "tls", False), tls_dir=tmp_path / "sandbox-ca")
        observer = RequestObserver(app)
        workspace = workspace_factory(plugins=plugins)
        for key, value in self.account_secrets(app).items():
            workspace.secrets(ACCOUNT).set(key, value)
        account = connect_account(workspace, self.plugin, ACCOUNT, self.account_settings(app, running, plugins), None,
                                  self.connect_ui(running))
        assert account.companies, f"{self.plugin}'s auth returned no companies for the sandbox login"
        yield SourceEnv(self.plugin, plugins, workspace, app, running, observer, account)

    # -- the checks ----------------------------------------------------------------------------

    def _expected(self, env: SourceEnv) -> dict[str, set[str]]:
        expected = {c.id: set(self.expected_source_ids(env.app, c)) for c in env.companies}
        assert any(expected.values()), "the sandbox holds no documents; seed some with sandbox_options"
        return expected

    def _all_expected(self, env: SourceEnv) -> set[str]:
        return set().union(*self._expected(env).values())

    def test_paging_has_no_gaps_and_no_repeats(self, source_env: SourceEnv) -> None:
        skip_if_declared(self.skip_checks, "paging")
        env, expected = source_env, self._expected(source_env)
        pages = 0
        for company in env.companies:
            before = env.observer.count("GET", self.list_path)
            items = env.listing(company, None)
            pages += env.observer.count("GET", self.list_path) - before
            ids = [i.source_id for i in items if isinstance(i, DocumentRef)]
            repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
            assert not repeated, f"company {company.id}: one listing yielded {repeated} more than once"
            missing = expected[company.id] - set(ids)
            assert not missing, f"company {company.id}: the listing skipped {sorted(missing)} (a gap between pages?)"
            unknown = set(ids) - expected[company.id]
            assert not unknown, f"company {company.id}: the listing yielded {sorted(unknown)}, not in the sandbox"
            assert any(isinstance(i, Checkpoint) for i in items), "list_documents yielded no Checkpoint"
        assert pages >= 2, (
            f"the whole listing took {pages} request(s) to {self.list_path!r}, so paging was not exercised: "
            "seed more documents (sandbox_options) or lower the page size (settings)"
        )

    def test_cursor_never_goes_backwards(self, source_env: SourceEnv) -> None:
        skip_if_declared(self.skip_checks, "cursor")
        env = source_env
        self._expected(env)
        for company in env.companies:
            items = env.listing(company, None)
            refs = [i for i in items if isinstance(i, DocumentRef)]
            stamps = [r.modified_at for r in refs if r.modified_at is not None]
            assert stamps == sorted(stamps), f"company {company.id}: refs are not yielded in cursor (modified) order"
            cursors = [i.cursor for i in items if isinstance(i, Checkpoint)]
            assert cursors, f"company {company.id}: list_documents yielded no Checkpoint"
            # A later cursor must never let through anything an earlier one would not.
            previous, previous_name = {r.source_id for r in refs}, "no cursor"
            for n, cursor in enumerate(cursors, 1):
                again = set(env.listed_ids(company, cursor))
                behind = again - previous
                assert not behind, (
                    f"company {company.id}: listing from checkpoint {n} ({cursor!r}) yields {sorted(behind)}, "
                    f"which listing from {previous_name} did not: the cursor moved backwards"
                )
                previous, previous_name = again, f"checkpoint {n} ({cursor!r})"
            assert len(previous) <= self.boundary_repeats, (
                f"company {company.id}: listing from the last checkpoint ({cursors[-1]!r}) still yields "
                f"{len(previous)} documents: the final cursor does not cover what was listed"
            )

    def test_resumes_from_saved_state(self, source_env: SourceEnv) -> None:
        skip_if_declared(self.skip_checks, "resume")
        env = source_env
        expected = self._all_expected(env)
        # The listing breaks after its first page, as a crash or outage would.
        env.app.add_fault(Fault(method="GET", path=self.list_path, status=400, code="BadRequest", after=1,
                                times=None))
        first = env.sync()
        env.app.clear_faults()
        assert first.exit_code == EXIT_PARTIAL, f"a listing that broke after one page should be partial: {first}"
        got = env.library_ids()
        assert got and got < expected, f"after one page, expected some but not all documents; got {len(got)}"
        saved = env.cursors()
        assert any(saved.values()), "no cursor was saved after the first page: yield a Checkpoint after each page"

        second = env.sync()
        assert second.exit_code == EXIT_OK, [p.message for p in second.problems]
        assert env.library_ids() == expected, f"missing after resuming: {sorted(expected - env.library_ids())}"
        assert second.imported["new"] == len(expected - got)
        relisted = second.imported["unchanged"] + second.imported["updated"]
        allowed = self.boundary_repeats * len(env.companies)
        assert relisted <= allowed, (
            f"the resumed run fetched {relisted} documents it already had (at most {allowed} expected): "
            "it did not resume from the saved cursor"
        )
        # A run with nothing new keeps the cursor where it was, or moves it forward.
        before = env.cursors()
        third = env.sync()
        assert third.exit_code == EXIT_OK and third.imported["new"] == 0
        for company in env.companies:
            after = env.cursors()[company.id]
            assert after is not None, f"company {company.id}: a run with nothing new erased the cursor"
            behind = set(env.listed_ids(company, after)) - set(env.listed_ids(company, before[company.id]))
            assert not behind, f"company {company.id}: after a run with nothing new the cursor moved backwards"

    def test_honours_retry_after_on_429(self, source_env: SourceEnv) -> None:
        skip_if_declared(self.skip_checks, "retry_after")
        env = source_env
        expected = self._all_expected(env)
        env.app.add_fault(Fault(method="GET", path=self.list_path, status=429, code="TooManyRequests",
                                headers={"Retry-After": str(self.retry_after)}, times=1))
        report = env.sync()
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        assert env.library_ids() == expected
        listings = env.observer.matching("GET", self.list_path)
        throttled = next((n for n, s in enumerate(listings) if s.status == 429), None)
        assert throttled is not None, "the injected 429 never reached the listing endpoint"
        assert throttled + 1 < len(listings), "the listing was not tried again after the 429"
        waited = listings[throttled + 1].at - listings[throttled].at
        assert waited >= self.retry_after - 0.05, (
            f"the listing was retried {waited:.2f}s after a 429 with Retry-After: {self.retry_after}"
        )

    def _tokens_issued(self, seen: list[Seen]) -> list[tuple[str, str | None]]:
        assert self.token_path, "set token_path (the regex of the OAuth token endpoint) for the token checks"
        pattern = re.compile(self.token_path)
        return [(s.body["access_token"], s.body.get("refresh_token")) for s in seen
                if s.method == "POST" and pattern.search(s.path) and s.status == 200
                and isinstance(s.body, dict) and "access_token" in s.body]

    def test_refreshes_after_401_mid_sync(self, source_env: SourceEnv) -> None:
        skip_if_declared(self.skip_checks, "refresh_after_401")
        env = source_env
        expected = self._all_expected(env)
        mark: list[int] = []

        def expire() -> None:
            mark.append(env.observer.mark())
            self.expire_access_token(env.app)

        env.observer.once_after("GET", self.list_path, expire)
        report = env.sync()
        assert mark, "the listing endpoint was never called"
        assert report.exit_code == EXIT_OK, (
            f"the access token expired mid-sync and the run failed instead of refreshing it: "
            f"{[p.message for p in report.problems][:3]}"
        )
        assert env.library_ids() == expected
        after = env.observer.since(mark[0])
        refused = [s for s in after if s.status == 401]
        assert refused, "no request was refused after the token expired: expire_access_token had no effect"
        assert self._tokens_issued(after), "the run went on after a 401 without refreshing the token"

    def test_rotated_refresh_token_is_stored_before_use(self, source_env: SourceEnv) -> None:
        skip_if_declared(self.skip_checks, "rotating_refresh_tokens")
        env = source_env
        expected = self._all_expected(env)
        self._tokens_issued([])  # fails early, in the test thread, when token_path is not set
        initial = env.secret(self.token_secret)
        assert initial, f"the sandbox login stored no secret {self.token_secret!r} (set token_secret)"
        late: list[str] = []
        issued: list[tuple[str, str | None]] = []

        def check_store(request: Any) -> None:
            # Any request that carries a newly issued access token: its refresh token must be stored.
            issued[:] = self._tokens_issued(env.observer.since(0))
            if not issued:
                return
            access, refresh = issued[-1]
            if refresh and any(access in value for _, value in request.headers.items()):
                stored = env.secret(self.token_secret) or ""
                if refresh not in stored:
                    late.append(f"{request.method} {request.path}")

        env.observer.on_request.append(check_store)
        env.observer.once_after("GET", self.list_path, lambda: self.expire_access_token(env.app))
        first = env.sync()
        assert first.exit_code == EXIT_OK, [p.message for p in first.problems]
        tokens = self._tokens_issued(env.observer.since(0))
        assert tokens, "no token refresh happened after the access token expired"
        refresh_tokens = [r or "" for _, r in tokens]
        assert all(refresh_tokens) and len(set(refresh_tokens)) == len(refresh_tokens) and \
            refresh_tokens[-1] not in initial, (
                "the sandbox did not rotate the refresh token, so rotation cannot be checked; make the sandbox "
                "rotate (as the service does) or declare skip_checks['rotating_refresh_tokens'] with the reason"
            )
        assert not late, f"a rotated refresh token was used before it was stored: {late[:3]}"

        # A new run (a new process, as far as the plugin knows) must log in with what was stored.
        self.expire_access_token(env.app)
        second = env.sync()
        assert second.exit_code == EXIT_OK, (
            "after a refresh, the next run could not log in with the stored token: "
            f"{[p.message for p in second.problems]}"
        )
        assert len(self._tokens_issued(env.observer.since(0))) > len(tokens), "the second run did not refresh"
        assert not late, f"a rotated refresh token was used before it was stored: {late[:3]}"
        assert env.library_ids() == expected

    def test_malformed_payload_fails_only_that_document(self, source_env: SourceEnv) -> None:
        skip_if_declared(self.skip_checks, "malformed")
        env = source_env
        expected = self._all_expected(env)
        bad = self.corrupt_document(env.app, env.companies[0])
        report = env.sync()
        assert report.exit_code == EXIT_PARTIAL, f"a malformed document should make the run partial: {report}"
        assert report.imported["failed"] == 1, f"expected exactly one failed document: {dict(report.imported)}"
        problems = [p for p in report.problems if p.document == bad]
        assert problems and len(report.problems) == 1, [(p.document, p.message) for p in report.problems]
        message = problems[0].message
        assert "document " in message and "field " in message, (
            f"the error should name the document and the field (raise DocumentError(document=, field=)): {message!r}"
        )
        assert env.library_ids() == expected - {bad}, "the other documents should be imported"
