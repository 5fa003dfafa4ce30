"""Basic auth as Twilio checks it: an account's own SID and token, or its parent's."""

from __future__ import annotations

import base64
from typing import Any

from switchboard.sandbox.api.errors import ApiError


class Auth:
    """Which account a request may act on, from the world's accounts."""

    def __init__(self, accounts: list[dict[str, Any]]):
        self.accounts = accounts
        self.index = {a["sid"]: i for i, a in enumerate(accounts)}
        self.tokens = {a["sid"]: a["auth_token"] for a in accounts}

    def authorize(self, header: str | None, account_sid: str | None) -> int:
        """Index of the account the request may act on; ApiError 401 (or 403) otherwise."""
        denied = ApiError(401, 20003, "Authenticate")
        user, password = _basic_credentials(header, denied)
        if self.tokens.get(user) != password:
            raise denied
        if account_sid is None:
            return self.index[user]
        if account_sid not in self.index:
            # A well-formed but unknown account: Twilio answers 404 to its owner, 401 otherwise.
            raise denied
        target = self.accounts[self.index[account_sid]]
        if user == account_sid or user == target["owner_account_sid"]:
            return self.index[account_sid]
        raise ApiError(403, 20403, "Forbidden")


def _basic_credentials(header: str | None, denied: ApiError) -> tuple[str, str]:
    if not header or not header.startswith("Basic "):
        raise denied
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise denied from None
    return user, password
