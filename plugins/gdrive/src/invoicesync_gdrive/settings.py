"""The settings of a Google Drive account. Secrets (tokens, client secret, key) never live here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from invoicesync import ConfigError, Settings
from invoicesync.http import RedirectUri
from invoicesync.naming import DEFAULT_TEMPLATE
from pydantic import Field, field_validator

#: Non-final chunks of a resumable upload must be whole multiples of this (Drive's rule).
CHUNK_UNIT = 256 * 1024

SCOPE_DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"

#: Names of the secrets this plugin keeps (values only ever go through ``ctx.secrets``).
SECRET_TOKEN = "oauth_token"
SECRET_CLIENT_SECRET = "client_secret"
SECRET_SERVICE_ACCOUNT_KEY = "service_account_key"
SECRETS = (SECRET_TOKEN, SECRET_CLIENT_SECRET, SECRET_SERVICE_ACCOUNT_KEY)


class GDriveSettings(Settings):
    auth_mode: Literal["user", "service_account"] = Field(
        "user", description="`user`: OAuth login in a browser; `service_account`: a key file (needs a shared drive)"
    )
    client_id: str | None = Field(None, description="OAuth client id (Desktop app) for user login")
    scope: str = Field(SCOPE_DRIVE_FILE, description="OAuth scope; drive.file only sees files this app made")
    service_account_key_file: Path | None = Field(
        None, description="Service-account JSON key file (or put its content in the service_account_key secret)"
    )
    shared_drive_id: str | None = Field(None, description="Shared drive to write into (required for service accounts)")
    root_folder_id: str | None = Field(None, description="Existing folder to write under (wins over root_folder_path)")
    root_folder_path: str = Field(
        "invoicesync", description="Folder path to find or create under My Drive or the shared drive"
    )
    template: str = Field(DEFAULT_TEMPLATE, description="Path template under the root folder")
    write_ubl: bool = Field(True, description="Also upload the UBL XML beside the PDF (the core's `files` "
                            "export option does this for every target)")
    on_delete: Literal["keep", "move", "trash"] = Field(
        "keep", description="When a document is deleted at the source: keep its files, move them into "
        "_deleted/ under the root folder, or move them to the Drive trash")
    # Google meant multipart for "5 MB or less" without saying MB or MiB, and whether the
    # metadata counts: 4 MiB stays under every reading.
    resumable_threshold: int = Field(
        4 * 1024 * 1024, ge=0, le=5_000_000, description="Files larger than this (bytes) use a resumable upload"
    )
    chunk_size: int = Field(8 * 1024 * 1024, description="Resumable chunk size, a multiple of 256 KiB")
    page_size: int = Field(100, ge=1, le=1000, description="files.list page size")
    api_url: str = Field("https://www.googleapis.com/drive/v3", description="Drive API base URL")
    upload_url: str = Field("https://www.googleapis.com/upload/drive/v3", description="Drive upload base URL")
    authorize_url: str = Field("https://accounts.google.com/o/oauth2/v2/auth", description="OAuth authorize endpoint")
    token_url: str = Field("https://oauth2.googleapis.com/token", description="OAuth token endpoint")
    redirect_uri: RedirectUri = Field(
        "http://127.0.0.1/",
        description="Where the login comes back: a loopback URI (a Desktop-app client takes any port; none "
        "given: a free one) or an https URI registered with a Web-application client (then paste the address)",
    )
    ca_bundle: str | None = Field(None, description="CA file to trust (TLS test servers only)")

    @field_validator("chunk_size")
    @classmethod
    def _whole_units(cls, value: int) -> int:
        if value <= 0 or value % CHUNK_UNIT:
            raise ValueError(f"must be a positive multiple of 256 KiB ({CHUNK_UNIT} bytes)")
        return value


    @field_validator("api_url", "upload_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def check_mode(self) -> None:
        """Refuse a service account without a shared drive: it has no storage of its own."""
        if self.auth_mode == "service_account" and not self.shared_drive_id:
            raise ConfigError(
                "a service account has no Drive storage quota of its own, so uploads to a My Drive folder "
                "fail with 403 storageQuotaExceeded; set shared_drive_id to a shared drive the service "
                "account is a member of (Content manager), or use auth_mode = \"user\""
            )
        if self.auth_mode == "user" and not self.client_id:
            raise ConfigError("auth_mode \"user\" needs client_id (an OAuth client of type Desktop app)")

    @property
    def root_parent(self) -> str:
        """Where ``root_folder_path`` starts: the shared drive (its id is also its root folder) or My Drive."""
        return self.shared_drive_id or "root"
