"""The reference source's service: companies, keyset-paged documents, PDFs, and an OAuth token
endpoint that rotates single-use refresh tokens (as Billit's does)."""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass
from typing import Any

from invoicesync.http import TokenSet
from invoicesync.sandbox import Request, Response, SandboxApp


@dataclass
class RefDoc:
    id: str
    company: str
    number: str
    modified: int  #: seconds; the keyset is (modified, id)
    total: str = "121.00"

    def key(self) -> str:
        return f"{self.modified:010d}|{self.id}"


class RefSandbox(SandboxApp):
    name = "refsource"

    def __init__(self, documents: int = 10, seed: int = 1) -> None:
        super().__init__()
        self.companies = {"acme": "Acme BV"}
        # Two documents share each timestamp, so a cursor on time alone would lose or repeat some.
        self.docs = {f"d{i:03d}": RefDoc(f"d{i:03d}", "acme", f"INV-{seed}-{i:03d}", 1000 + i // 2)
                     for i in range(documents)}
        self.access_token: str | None = secrets.token_urlsafe(16)
        self.refresh_token = secrets.token_urlsafe(16)
        self.route("POST", r"/oauth/token", self._token)
        self.route("GET", r"/api/companies", self._companies)
        self.route("GET", r"/api/companies/(?P<company>[^/]+)/documents", self._list)
        self.route("GET", r"/api/companies/(?P<company>[^/]+)/documents/(?P<id>[^/]+)", self._get)
        self.route("GET", r"/api/companies/(?P<company>[^/]+)/documents/(?P<id>[^/]+)/pdf", self._pdf)

    # -- for tests -----------------------------------------------------------------------------

    def account_settings(self, base_url: str) -> dict[str, Any]:
        return {"base_url": base_url, "page_size": 4}

    def account_secrets(self) -> dict[str, str]:
        assert self.access_token
        token = TokenSet(access_token=self.access_token, refresh_token=self.refresh_token, expires_at=None)
        return {"oauth_token": token.model_dump_json()}

    def ids(self, company: str) -> set[str]:
        with self.lock:
            return {d.id for d in self.docs.values() if d.company == company}

    def expire_access_token(self) -> None:
        with self.lock:
            self.access_token = None

    def corrupt(self, company: str) -> str:
        with self.lock:
            doc = next(d for d in self.docs.values() if d.company == company)
            doc.total = "twelve"
            return doc.id

    def error(self, status: int, code: str, message: str, request: Request | None = None) -> Response:
        return Response.json({"error": code, "message": message}, status)

    # -- routes --------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        with self.lock:
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
                return Response.json({"error": "invalid_grant"}, 400)
            self.access_token = secrets.token_urlsafe(16)
            self.refresh_token = secrets.token_urlsafe(16)  # single use: the old one is spent
            return Response.json({"access_token": self.access_token, "refresh_token": self.refresh_token,
                                  "token_type": "Bearer", "expires_in": 3600})

    def _authorized(self, request: Request) -> bool:
        with self.lock:
            return self.access_token is not None and request.headers.get("authorization") == \
                f"Bearer {self.access_token}"

    def _companies(self, request: Request) -> Response:
        if not self._authorized(request):
            return self.error(401, "invalid_token", "the access token is not valid")
        return Response.json([{"id": k, "name": v} for k, v in self.companies.items()])

    def _list(self, request: Request) -> Response:
        if not self._authorized(request):
            return self.error(401, "invalid_token", "the access token is not valid")
        after = request.arg("after") or ""
        limit = int(request.arg("limit") or 50)
        with self.lock:
            docs = sorted((d for d in self.docs.values() if d.company == request.params["company"]),
                          key=RefDoc.key)
        rest = [d for d in docs if d.key() > after]
        page = rest[:limit]
        return Response.json({
            "items": [{"id": d.id, "modified": d.modified} for d in page],
            "next": page[-1].key() if len(rest) > limit else None,
            "last": page[-1].key() if page else after or None,
        })

    def _doc(self, request: Request) -> RefDoc | None:
        with self.lock:
            doc = self.docs.get(request.params["id"])
        return doc if doc and doc.company == request.params["company"] else None

    def _get(self, request: Request) -> Response:
        if not self._authorized(request):
            return self.error(401, "invalid_token", "the access token is not valid")
        doc = self._doc(request)
        if doc is None:
            return self.error(404, "not_found", "no such document")
        return Response.json({"id": doc.id, "number": doc.number, "total": doc.total, "modified": doc.modified})

    def _pdf(self, request: Request) -> Response:
        if not self._authorized(request):
            return self.error(401, "invalid_token", "the access token is not valid")
        doc = self._doc(request)
        if doc is None:
            return self.error(404, "not_found", "no such document")
        return Response(200, f"%PDF-1.4 {doc.number}\n".encode(), {"Content-Type": "application/pdf"})
