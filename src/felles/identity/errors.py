"""OAuth 2.0 / OpenID Connect errors, as RFC 6749 says clients must receive them."""

from __future__ import annotations

from fastapi.responses import JSONResponse

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


class OAuthError(Exception):
    """An error answered as `{"error": ..., "error_description": ...}` (or redirected)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(f"{error}: {description}")
        # Some refusals must still be recorded (a revoked token family after a reuse):
        # the endpoint commits the transaction before it answers with the error.
        self.keep_changes = keep_changes
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={**NO_STORE, **self.headers},
        )


def invalid_client(description: str) -> OAuthError:
    return OAuthError(
        "invalid_client", description, status=401, headers={"www-authenticate": "Basic"}
    )


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str, *, keep_changes: bool = False) -> OAuthError:
    return OAuthError("invalid_grant", description, keep_changes=keep_changes)
