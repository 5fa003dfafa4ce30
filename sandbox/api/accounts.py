"""The Accounts resource and the senders each account may use."""

from __future__ import annotations

from typing import Any

import pandas as pd

from switchboard.sandbox.api.paging import API, envelope, page_args
from switchboard.sandbox.render import rfc2822

MAGIC_VALID_FROM = "+15005550006"  # Twilio's test number that is a valid From for every account
_SUBRESOURCES = ("Addresses", "Calls", "Messages", "IncomingPhoneNumbers", "Notifications", "Recordings",
                 "Balance", "Usage")


class Accounts:
    """The world's accounts as the API shows them, and their senders."""

    def __init__(self, accounts: list[dict[str, Any]], senders: pd.DataFrame):
        self.accounts = accounts
        self.index = {a["sid"]: i for i, a in enumerate(accounts)}
        self._senders = senders
        self._services = senders.attrs.get("services", [])

    def senders(self, account_sid: str) -> dict[str, list[str]]:
        """The From numbers / sender IDs and messaging service sids an account may send with."""
        ai = self.index[account_sid]
        s = self._senders[self._senders["account"] == ai]
        return {
            "from": [MAGIC_VALID_FROM] + s["sender"].tolist(),
            "messaging_service_sids": [x["sid"] for x in self._services if x["account"] == ai],
        }

    def json(self, ai: int) -> dict[str, Any]:
        a = self.accounts[ai]
        sid = a["sid"]
        base = f"{API}/Accounts/{sid}"
        return {
            "auth_token": a["auth_token"],
            "date_created": rfc2822(a["date_created"]),
            "date_updated": rfc2822(a["date_created"]),
            "friendly_name": a["friendly_name"],
            "owner_account_sid": a["owner_account_sid"],
            "sid": sid,
            "status": "active",
            "subresource_uris": {name: f"{base}/{name}.json" for name in _SUBRESOURCES},
            "type": "Full",
            "uri": f"{base}.json",
        }

    def list(self, user_ai: int, params: dict[str, str]) -> dict[str, Any]:
        """The caller's account and its subaccounts, filtered by FriendlyName and Status."""
        user_sid = self.accounts[user_ai]["sid"]
        visible = [i for i, a in enumerate(self.accounts) if a["sid"] == user_sid
                   or a["owner_account_sid"] == user_sid]
        if "FriendlyName" in params:
            visible = [i for i in visible if self.accounts[i]["friendly_name"] == params["FriendlyName"]]
        if "Status" in params:
            visible = [i for i in visible if params["Status"] == "active"]
        page_size, page = page_args(params)
        rows = visible[page * page_size : (page + 1) * page_size]
        more = (page + 1) * page_size < len(visible)
        return envelope("accounts", [self.json(i) for i in rows], f"{API}/Accounts.json", params, page, page_size,
                        next_token=f"PA{self.accounts[rows[-1]]['sid']}" if more and rows else None,
                        prev_token=f"PB{self.accounts[rows[0]]['sid']}" if page > 0 and rows else None)
