"""Talking to Twilio: credentials from the environment, a client, and 429 handling.

Twilio answers ``429 Too Many Requests`` with a ``Retry-After`` header when an account
or sender exceeds its rate. The SDK raises on it without retrying (and without exposing
the header on the exception), so the sender wraps the SDK's own HTTP client with
``RetryAfterHttpClient``: the official hook (``Client(http_client=...)``), which sees
every response, waits what ``Retry-After`` asks and repeats the request. Repeating is
safe: a 429 means Twilio did not accept the request, so nothing was created.

Credentials are read from the environment only here, are never logged, and are never
part of any message this module produces (``describe_account`` masks the SID).
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from switchboard.core.errors import ConfigError
from switchboard.core.settings import PROJECT_ROOT

__all__ = [
    "BASE_URL_ENV",
    "Credentials",
    "CredentialsMissing",
    "RetryAfterHttpClient",
    "credentials_from_env",
    "make_client",
    "retry_after_seconds",
]

BASE_URL_ENV = "SWITCHBOARD_TWILIO_BASE_URL"
log = logging.getLogger(__name__)


class CredentialsMissing(ConfigError, RuntimeError):
    """No Twilio credentials in the environment; the message names the variables to set."""


@dataclass(frozen=True, repr=False)
class Credentials:
    account_sid: str
    secret: str = field(repr=False)  # auth token or API key secret; never printed
    api_key: str | None = None
    base_url: str | None = None

    def __str__(self) -> str:
        return (
            f"Credentials(account {describe_account(self.account_sid)}, base_url={self.base_url or 'Twilio'})"
        )

    __repr__ = __str__  # a stray print or log of the object shows neither the secret nor the full SID


def describe_account(account_sid: str) -> str:
    """``AC…1234``: enough to recognise an account, nothing more."""
    return f"{account_sid[:2]}…{account_sid[-4:]}" if len(account_sid) > 6 else "AC…"


def _secrets_toml(path: Path) -> dict[str, str]:
    """``TWILIO_*`` keys (top level, or ``[twilio] account_sid = ...``) of the dashboard's secrets file."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}  # the dashboard reports a broken secrets file; here it just provides nothing
    flat = {k.upper(): v for k, v in data.items() if isinstance(v, str)}
    section = data.get("twilio")
    if isinstance(section, dict):
        flat.update({f"TWILIO_{k.upper()}": v for k, v in section.items() if isinstance(v, str)})
    return flat


def credentials_from_env(
    env: Mapping[str, str] | None = None, secrets_file: Path | None = None
) -> Credentials:
    """``TWILIO_ACCOUNT_SID`` + ``TWILIO_AUTH_TOKEN`` (or ``TWILIO_API_KEY`` + ``TWILIO_API_SECRET``) from the
    environment, else from ``.streamlit/secrets.toml`` (as ``switchboard ingest`` and the dashboard read them)."""
    env = dict(os.environ if env is None else env)
    secrets = _secrets_toml(secrets_file or PROJECT_ROOT / ".streamlit" / "secrets.toml")
    env = {**secrets, **{k: v for k, v in env.items() if v}}
    sid = env.get("TWILIO_ACCOUNT_SID", "").strip()
    token = env.get("TWILIO_AUTH_TOKEN", "").strip()
    key = env.get("TWILIO_API_KEY", "").strip()
    secret = env.get("TWILIO_API_SECRET", "").strip()
    base_url = env.get(BASE_URL_ENV, "").strip() or None
    if sid and key and secret:
        return Credentials(sid, secret, api_key=key, base_url=base_url)
    if sid and token:
        return Credentials(sid, token, base_url=base_url)
    raise CredentialsMissing(
        "Twilio credentials are not set: export TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY "
        "and TWILIO_API_SECRET), or put them in .streamlit/secrets.toml; for the local sandbox also export "
        f"{BASE_URL_ENV}=http://127.0.0.1:PORT"
    )


def make_client(
    credentials: Credentials,
    *,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 30.0,
    max_retries: int = 6,
) -> Client:
    """A ``twilio.rest.Client`` that retries 429s after ``Retry-After`` and may point at the sandbox."""
    http = RetryAfterHttpClient(TwilioHttpClient(timeout=timeout), sleep=sleep, max_retries=max_retries)
    if credentials.api_key:
        client = Client(
            credentials.api_key, credentials.secret, account_sid=credentials.account_sid, http_client=http
        )
    else:
        client = Client(credentials.account_sid, credentials.secret, http_client=http)
    if credentials.base_url:
        client.api.base_url = credentials.base_url.rstrip("/")
    return client


def ensure_retrying(client: Client, *, sleep: Callable[[float], None] = time.sleep) -> RetryAfterHttpClient:
    """Wrap a caller's client's HTTP client with ``RetryAfterHttpClient`` (once)."""
    current = client.http_client
    if isinstance(current, RetryAfterHttpClient):
        return current
    wrapped = RetryAfterHttpClient(current, sleep=sleep)
    client.http_client = wrapped
    return wrapped


def retry_after_seconds(headers: Mapping[str, Any] | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not headers:
        return None
    value = None
    for k, v in headers.items():
        if str(k).lower() == "retry-after":
            value = str(v).strip()
            break
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryAfterHttpClient(HttpClient):
    """Delegates to another ``HttpClient``; on 429 waits ``Retry-After`` (or backs off) and repeats."""

    def __init__(
        self,
        inner: HttpClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 6,
        max_wait: float = 120.0,
        default_wait: float = 1.0,
    ):
        super().__init__(
            logger=logging.getLogger("twilio.http_client"),
            is_async=False,
            timeout=getattr(inner, "timeout", None),
        )
        self.inner = inner
        self.sleep = sleep
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.default_wait = default_wait
        self.retries = 0  # total 429s waited out, for the summary and the tests
        self.waited_seconds = 0.0

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        attempt = 0
        while True:
            response = self.inner.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout,
                allow_redirects=allow_redirects,
            )
            if response.status_code != 429 or attempt >= self.max_retries:
                return response
            wait = retry_after_seconds(response.headers)
            if wait is None:
                wait = self.default_wait * 2**attempt
            wait = min(wait, self.max_wait)
            log.info("Twilio answered 429 to %s; retrying after %.2f s", method, wait)
            self.retries += 1
            self.waited_seconds += wait
            attempt += 1
            self.sleep(wait)
