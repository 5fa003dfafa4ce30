"""Twilio facts shared by ingest and the sender: credentials, ``Retry-After``, clients, redaction.

* **Credentials** come from the environment (``TWILIO_ACCOUNT_SID`` + ``TWILIO_AUTH_TOKEN``, or
  ``TWILIO_API_KEY`` + ``TWILIO_API_SECRET``), else from ``.streamlit/secrets.toml`` in the working
  directory (where ``streamlit`` reads it too). Values are stripped; a broken TOML file is a
  ``ConfigError`` naming the file, never a silent "no credentials". Secrets are never printed.
* **Clients** are the real ``twilio.rest.Client`` with a retrying HTTP client plugged in through the
  SDK's own hook (``Client(http_client=...)``); ``SWITCHBOARD_TWILIO_BASE_URL`` points them at the
  sandbox. The retry policy depends on the use:

  - ``INGEST_RETRIES`` (reads): 429 after ``Retry-After``, 5xx, dropped connections and timeouts are
    retried with jittered backoff; 401/403 stop at once (``TwilioAuthError``); when retries run out,
    ``TwilioUnavailable``.
  - ``SENDER_RETRIES`` (creates): only 429, because Twilio did not accept the request; a 5xx or a
    dropped connection on create may have sent the message, so it goes back to the sender, which
    reconciles before it sends again.
* ``redact_url`` removes userinfo credentials from any URL shown or stored.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from switchboard.core.errors import ConfigError, SwitchboardError

__all__ = [
    "BASE_URL_ENV",
    "CREDENTIALS_HINT",
    "INGEST_RETRIES",
    "SENDER_RETRIES",
    "Credentials",
    "CredentialsMissing",
    "RetryPolicy",
    "RetryingHttpClient",
    "TwilioAuthError",
    "TwilioUnavailable",
    "describe_account",
    "find_credentials",
    "make_client",
    "read_secrets_toml",
    "redact_text",
    "redact_url",
    "retry_after_seconds",
    "secrets_path",
]

BASE_URL_ENV = "SWITCHBOARD_TWILIO_BASE_URL"
CREDENTIALS_HINT = (
    "Set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET with "
    "TWILIO_ACCOUNT_SID) in the environment or in .streamlit/secrets.toml."
)
log = logging.getLogger(__name__)


class TwilioAuthError(ConfigError, RuntimeError):
    """Twilio refused the credentials (401) or the resource (403)."""


class TwilioUnavailable(SwitchboardError, RuntimeError):
    """Twilio kept failing after every retry."""


class CredentialsMissing(ConfigError, RuntimeError):
    """No Twilio credentials in the environment or secrets file; the message names the variables to set."""


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True, repr=False)
class Credentials:
    account_sid: str
    secret: str = field(repr=False)  # auth token or API key secret; never printed
    api_key: str | None = None
    base_url: str | None = None

    @property
    def username(self) -> str:
        """What the SDK authenticates with: the API key when there is one, else the account SID."""
        return self.api_key or self.account_sid

    @property
    def password(self) -> str:
        return self.secret

    def __str__(self) -> str:
        return (
            f"Credentials(account {describe_account(self.account_sid)}, "
            f"base_url={redact_url(self.base_url) if self.base_url else 'Twilio'})"
        )

    __repr__ = __str__  # a stray print or log of the object shows neither the secret nor the full SID


def describe_account(account_sid: str) -> str:
    """``AC…1234``: enough to recognise an account, nothing more."""
    return f"{account_sid[:2]}…{account_sid[-4:]}" if len(account_sid) > 6 else "AC…"


def secrets_path(cwd: Path | None = None) -> Path:
    """``.streamlit/secrets.toml`` of the working directory (where ``streamlit run`` reads it)."""
    return (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"


def read_secrets_toml(path: Path) -> dict[str, str]:
    """``TWILIO_*`` keys (top level, or ``[twilio] account_sid = ...``) of a secrets file; {} when absent.

    Raises ``ConfigError`` naming the file when it is not valid TOML (UTF-8).
    """
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix or remove it") from None
    flat = {k.upper(): v.strip() for k, v in data.items() if isinstance(v, str)}
    section = data.get("twilio")
    if isinstance(section, dict):
        flat.update({f"TWILIO_{k.upper()}": v.strip() for k, v in section.items() if isinstance(v, str)})
    return flat


def find_credentials(env: Mapping[str, str] | None = None, secrets_file: Path | None = None) -> Credentials:
    """Credentials from ``env`` (default ``os.environ``), else from the secrets file; the environment wins."""
    given = {k: v.strip() for k, v in (os.environ if env is None else env).items() if v and v.strip()}
    source = {**read_secrets_toml(secrets_file or secrets_path()), **given}
    sid, token = source.get("TWILIO_ACCOUNT_SID", ""), source.get("TWILIO_AUTH_TOKEN", "")
    key, secret = source.get("TWILIO_API_KEY", ""), source.get("TWILIO_API_SECRET", "")
    base_url = source.get(BASE_URL_ENV) or None
    if sid and key and secret:
        return Credentials(sid, secret, api_key=key, base_url=base_url)
    if sid and token:
        return Credentials(sid, token, base_url=base_url)
    raise CredentialsMissing(
        f"No Twilio credentials found. {CREDENTIALS_HINT} For the local sandbox also export "
        f"{BASE_URL_ENV}=http://127.0.0.1:PORT"
    )


# --------------------------------------------------------------------------- Retry-After and retries


def retry_after_seconds(headers: Mapping[str, Any] | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3), else None."""
    value = next((str(v).strip() for k, v in (headers or {}).items() if str(k).lower() == "retry-after"), "")
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


@dataclass(frozen=True)
class RetryPolicy:
    """What a client retries, how long it waits, and what it does when retries run out."""

    retry_5xx: bool  # False for creates: a 5xx may mean the message was sent
    retry_connection_errors: bool  # likewise for a connection dropped mid-request
    raise_on_auth: bool  # 401/403 -> TwilioAuthError at once (else the SDK raises its own error)
    raise_when_exhausted: bool  # TwilioUnavailable (else the last response goes back to the SDK)
    max_retries: int
    base_delay: float  # backoff: base_delay * 2**attempt, capped at max_delay
    max_delay: float
    max_wait: float  # cap on what Retry-After may ask
    jitter: bool  # full jitter (many readers) or the plain exponential delay (one sender, testable)


INGEST_RETRIES = RetryPolicy(
    retry_5xx=True,
    retry_connection_errors=True,
    raise_on_auth=True,
    raise_when_exhausted=True,
    max_retries=8,
    base_delay=0.1,
    max_delay=8.0,
    max_wait=60.0,
    jitter=True,
)
SENDER_RETRIES = RetryPolicy(
    retry_5xx=False,
    retry_connection_errors=False,
    raise_on_auth=False,
    raise_when_exhausted=False,
    max_retries=6,
    base_delay=1.0,
    max_delay=120.0,
    max_wait=120.0,
    jitter=False,
)
_DROPPED = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def _pooled_http_client(timeout: float) -> TwilioHttpClient:
    client = TwilioHttpClient(timeout=timeout)
    assert client.session is not None  # the SDK mounts a pooled adapter for https only; the sandbox is http
    client.session.mount("http://", HTTPAdapter(pool_maxsize=8))
    return client


class RetryingHttpClient(HttpClient):
    """Sends every request through ``inner`` (default: the SDK's pooled HTTP client), retrying per ``policy``.

    ``retries`` and ``waited_seconds`` count what this client did, for run reports and tests. Keyword
    overrides (``max_retries=4``, ``base_delay=0.01`` …) adjust the policy for one client.
    """

    def __init__(
        self,
        inner: HttpClient | None = None,
        *,
        policy: RetryPolicy = INGEST_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
        **overrides: Any,
    ) -> None:
        inner = inner if inner is not None else _pooled_http_client(timeout)
        super().__init__(
            logger=logging.getLogger("twilio.http_client"),
            is_async=False,
            timeout=getattr(inner, "timeout", timeout),
        )
        self.inner = inner
        self.policy = replace(policy, **overrides)
        self.sleep = sleep
        self.retries = 0
        self.waited_seconds = 0.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2**attempt)
        return random.uniform(0, ceiling) if self.policy.jitter else ceiling

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        where = f"{method} {redact_url(url.split('?')[0])}"
        problem, response = "", None
        for attempt in range(self.policy.max_retries + 1):
            try:
                response = self.inner.request(method, url, *args, **kwargs)
            except _DROPPED as exc:
                if not self.policy.retry_connection_errors:
                    raise
                problem, delay = f"{type(exc).__name__}: {exc}", self.backoff(attempt)
            else:
                self.last_response = response
                delay = self._delay(response, attempt, where)
                if delay is None:
                    return response
                problem = f"HTTP {response.status_code}"
            if attempt == self.policy.max_retries:
                break
            log.info("Twilio: %s to %s; retrying after %.2f s", problem, where, delay)
            self.retries += 1
            self.waited_seconds += delay
            self.sleep(delay)
        if response is not None and not self.policy.raise_when_exhausted:
            return response
        raise TwilioUnavailable(f"{where} failed after {self.policy.max_retries + 1} attempts: {problem}")

    def _delay(self, response: Response, attempt: int, where: str) -> float | None:
        """Seconds to wait before repeating ``response``'s request; None when it is the answer to return."""
        status = response.status_code
        if status in (401, 403) and self.policy.raise_on_auth:
            reason = "Unauthorized" if status == 401 else "Forbidden"
            raise TwilioAuthError(f"Twilio answered {status} {reason} for {where}. {CREDENTIALS_HINT}")
        if status == 429:
            after = retry_after_seconds(response.headers)
            return min(after, self.policy.max_wait) if after is not None else self.backoff(attempt)
        if status >= 500 and self.policy.retry_5xx:
            return self.backoff(attempt)
        return None


def make_client(
    credentials: Credentials,
    *,
    policy: RetryPolicy = INGEST_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 60.0,
    **overrides: Any,
) -> Client:
    """A ``twilio.rest.Client`` retrying per ``policy``, pointed at ``credentials.base_url`` when set."""
    http = RetryingHttpClient(policy=policy, sleep=sleep, timeout=timeout, **overrides)
    client = Client(
        credentials.username, credentials.secret, account_sid=credentials.account_sid, http_client=http
    )
    if credentials.base_url:
        client.api.base_url = credentials.base_url.rstrip("/")
    return client


# --------------------------------------------------------------------------- redaction


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")


def redact_text(text: str) -> str:
    """Credentials in any URL inside ``text`` (``http://AC…:TOKEN@host``) become ``***``.

    Every error that is printed or stored (ingest_runs.error, the sender's messages, the receiver's log)
    passes here: an SDK or requests message may quote its URL, userinfo included.
    """
    return _USERINFO.sub(r"\1***@", text)


def redact_url(url: str) -> str:
    """``http://AC…:TOKEN@host/path`` -> ``http://***@host/path``; a URL without userinfo is unchanged."""
    return redact_text(url)
