"""The script a user would write instead of invoicesync: Billit invoices' files into Dropbox.

One request at a time: httpx for Billit, the official ``dropbox`` SDK for Dropbox. It moves the files
invoicesync's Dropbox target moves by default: each invoice's and credit note's PDF and every
attachment (the UBL among them).
``benchmarks/compare.py`` runs it against the sandboxes to set the pace invoicesync must beat.
"""

from __future__ import annotations

import argparse
import base64
import json

import dropbox
import httpx

TYPES = ("Invoice", "CreditNote")


class LocalDropbox(dropbox.Dropbox):  # type: ignore[misc]
    """The SDK always calls https://api.dropboxapi.com; a test server needs its own address."""

    def __init__(self, base_url: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._base_url = base_url

    def _get_route_url(self, hostname: str, route_name: str) -> str:
        return f"{self._base_url}/2/{route_name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--billit", required=True, help="Billit API base URL")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--dropbox", required=True, help="Dropbox API base URL")
    parser.add_argument("--token", required=True, help="Dropbox access token")
    args = parser.parse_args()

    billit = httpx.Client(base_url=args.billit, headers={"ApiKey": args.api_key, "Accept": "application/json"},
                          timeout=60)
    dbx = LocalDropbox(args.dropbox, oauth2_access_token=args.token)
    companies = billit.get("/v1/account/accountInformation").raise_for_status().json()["Companies"]
    uploaded = 0
    for company in companies:
        party = {"PartyID": str(company["PartyID"])}
        skip = 0
        while True:
            page = billit.get("/v1/orders", headers=party, params={
                "$orderby": "OrderID asc", "$top": 120, "$skip": skip}).raise_for_status().json()
            items = page["Items"] if isinstance(page, dict) else page
            for item in items:
                if item["OrderType"] not in TYPES:
                    continue
                order = billit.get(f"/v1/orders/{item['OrderID']}", headers=party).raise_for_status().json()
                files = [order.get("OrderPDF"), *(order.get("Attachments") or [])]
                for number, entry in enumerate(files):
                    if not entry or not entry.get("FileID"):
                        continue
                    extension = str(entry.get("FileName") or "file.pdf").rsplit(".", 1)[-1]
                    answer = billit.get(f"/v1/files/{entry['FileID']}", headers=party).raise_for_status()
                    content = (base64.b64decode(answer.json()["FileContent"])
                               if answer.headers.get("content-type", "").startswith("application/json")
                               else answer.content)
                    name = f"{order['OrderType']} {order.get('OrderNumber') or ''} ({order['OrderID']}) {number}"
                    path = f"/Invoices/{company['PartyID']}/{name}.{extension}"
                    dbx.files_upload(content, path, mode=dropbox.files.WriteMode.overwrite, mute=True)
                    uploaded += 1
            if len(items) < 120:
                break
            skip += 120
    print(json.dumps({"uploaded": uploaded}))


if __name__ == "__main__":
    main()
