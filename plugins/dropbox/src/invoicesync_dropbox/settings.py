"""The settings of a Dropbox account. Secrets (the token set) are never settings."""

from __future__ import annotations

from typing import Literal

from invoicesync import ConfigError, Settings
from invoicesync.http import DEFAULT_REDIRECT_URI, RedirectUri
from invoicesync.naming import validate_template
from pydantic import Field, field_validator

MIB = 1024 * 1024
#: ``files/upload`` refuses bodies over 150 MiB; every single request body has the same cap.
MAX_REQUEST_BODY = 150 * MIB
DEFAULT_SCOPES = "files.content.write files.metadata.read"
DEFAULT_TEMPLATE = "/Invoices/{company}/{year}/{direction}/{date}_{counterparty}_{number}.{ext}"


class DropboxSettings(Settings):
    app_key: str = Field("", description="The Dropbox app key (client_id) of your app; PKCE needs no app secret")
    scopes: str = Field(DEFAULT_SCOPES, description="Space-separated OAuth scopes requested at connect")
    api_url: str = Field("https://api.dropboxapi.com", description="Base URL of the RPC host")
    content_url: str = Field("https://content.dropboxapi.com", description="Base URL of the content (upload) host")
    authorize_url: str = Field("https://www.dropbox.com/oauth2/authorize", description="OAuth authorize page")
    token_url: str = Field("https://api.dropboxapi.com/oauth2/token", description="OAuth token endpoint")
    redirect_uri: RedirectUri = Field(
        DEFAULT_REDIRECT_URI,
        description="A redirect URI registered in the app console (exact match): loopback is listened on, "
        "any other https page means pasting the address the browser lands on",
    )
    template: str = Field(DEFAULT_TEMPLATE, description="Dropbox path of each document, from the root")
    on_change: Literal["keep_both", "overwrite", "skip"] = Field(
        "keep_both",
        description="When a document already delivered changes: upload the new version beside its file with "
        "a ' (2)' suffix, replace that file (only the exact revision seen), or leave it and skip the new "
        "version. Other documents' files at the same name are always kept",
    )
    on_delete: Literal["keep", "move", "trash"] = Field(
        "keep",
        description="When a document is deleted at the source: keep its files, move them under /_deleted, "
        "or delete them (Dropbox keeps deleted files restorable for a while)",
    )
    upload_threshold: int = Field(
        8 * MIB, ge=1, le=MAX_REQUEST_BODY,
        description="Files larger than this go through an upload session in chunks",
    )
    chunk_size: int = Field(8 * MIB, ge=4 * MIB, le=MAX_REQUEST_BODY,
                            description="Bytes per upload-session request (a multiple of 4 MiB)")
    batch_commit: bool = Field(True, description="Commit several small files at once with finish_batch_v2")
    commit_interval: float = Field(
        30.0, gt=0, le=3600,
        description="Seconds an uploaded file may wait for the next batch commit while more documents "
        "are coming (a commit also goes at 1,000 files and when the run has nothing more)")
    ca_bundle: str | None = Field(None, description="CA file to trust (TLS test servers only)")
    max_in_flight: int | None = Field(
        None, ge=1, le=64,
        description="Requests in flight at once for this account (default 8); lower it if Dropbox answers 429")

    @field_validator("template")
    @classmethod
    def _template_is_usable(cls, value: str) -> str:
        if not value.startswith("/"):
            value = "/" + value
        try:
            validate_template(value.lstrip("/"))
        except ConfigError as exc:  # pydantic reports ValueErrors, with the field name
            raise ValueError(str(exc)) from None
        return value

    @field_validator("chunk_size")
    @classmethod
    def _whole_blocks(cls, value: int) -> int:
        # Whole 4 MiB blocks keep every request valid for concurrent sessions too.
        if value % (4 * MIB):
            raise ValueError("chunk_size must be a multiple of 4 MiB (4194304 bytes)")
        return value


    @field_validator("api_url", "content_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
