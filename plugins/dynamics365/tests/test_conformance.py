"""The invoicesync target conformance suite, run against the real plugin and its TLS sandbox.

Every check runs through core ``run_sync`` over loopback HTTPS (real msal for the token): a
re-push after a lost ledger, colliding vendor invoice numbers, a 32 MiB PDF streamed into
``attachmentContent``, a crash between the write and the ledger, a lost answer to a create, and
a per-document failure.

The kit's documents are purchase invoices (BC takes nothing else) from one supplier the fresh
sandbox tenant does not know, so the suite turns ``create_missing_vendors`` on: the first document
creates the vendor and the rest are matched to it by VAT number.

Collisions, for BC: a vendor's invoices are told apart by ``vendorInvoiceNumber``. The kit's two
colliding documents share number, supplier and date but are different documents (other PDFs), so
each must get its own draft, carrying its own PDF, and be found again without a ledger. (Equal
numbers from different vendors are two drafts trivially; ``test_export`` covers that too.)
"""

from __future__ import annotations

import hashlib

from invoicesync.testing.conformance import StoredObject, TargetConformance, TargetEnv
from invoicesync_dynamics365.sandbox import BusinessCentralSandbox
from invoicesync_dynamics365.sandbox._store import ATTACHMENT_SETS, DOCUMENT_SETS

MiB = 1024 * 1024


class TestConformance(TargetConformance):
    plugin = "dynamics365"
    # A document's writes are POSTs: the draft (purchaseInvoices / purchaseCreditMemos), then each
    # attachment's metadata record. The content PATCH that follows changes the attachment's etag,
    # which ``stored_objects`` reports as its revision, so a re-upload is seen there.
    on_delete = {"delete": "deleted", "keep": "skipped"}
    write_path = r"/companies\([^)]+\)/(purchaseInvoices|purchaseCreditMemos|documentAttachments|attachments)$"
    write_method = "POST"
    settings = {"create_missing_vendors": True}

    def stored_objects(self, env: TargetEnv) -> list[StoredObject]:
        """Every purchase document in the sandbox, and every file attached to one.

        A document is an object of its own (no content, so an extra empty draft still shows up);
        each attachment is ``<entity>/<BC number>/<fileName>`` with the hash of the bytes BC holds.
        """
        app = env.app
        assert isinstance(app, BusinessCentralSandbox)
        found: list[StoredObject] = []
        for company in list(app.companies.values()):
            numbers: dict[str, str] = {}
            for entity in DOCUMENT_SETS:
                for document in list(company.documents[entity].values()):
                    path = f"{entity}/{document['number']}"
                    numbers[document["id"]] = path
                    found.append(StoredObject(path, "", -1, document["@odata.etag"]))
            for entity in ATTACHMENT_SETS:
                for attachment in list(company.attachments[entity].values()):
                    parent = numbers.get(attachment["parentId"], f"orphan:{attachment['parentId']}")
                    found.append(StoredObject(f"{parent}/{attachment['fileName']}",
                                              _sha256(app, attachment["id"]), int(attachment["byteSize"]),
                                              attachment["@odata.etag"]))
        return found


def _sha256(app: BusinessCentralSandbox, attachment_id: str) -> str:
    """The hash of an attachment's content, read from the sandbox's file a chunk at a time."""
    digest = hashlib.sha256()
    path = app.content.path(attachment_id)
    if path.exists():
        with open(path, "rb") as handle:
            while chunk := handle.read(MiB):
                digest.update(chunk)
    return digest.hexdigest()
