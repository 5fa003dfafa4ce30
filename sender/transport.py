"""Talking to Twilio from the sender: ``switchboard.core.twilio`` with the sender's retry policy.

Twilio answers ``429 Too Many Requests`` with a ``Retry-After`` header when an account or sender
exceeds its rate; the SDK raises on it without retrying. Repeating a 429 is safe (Twilio did not
accept the request), so the sender's client waits it out. It retries nothing else: a 5xx or a
dropped connection on create may have sent the message, and the runner reconciles before it sends
again. Credentials, ``Retry-After`` parsing and client construction live in ``core.twilio``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twilio.rest import Client

from switchboard.core.twilio import (
    BASE_URL_ENV,
    SENDER_RETRIES,
    Credentials,
    CredentialsMissing,
    RetryingHttpClient,
    describe_account,
    find_credentials,
    retry_after_seconds,
)
from switchboard.core.twilio import make_client as _make_client

__all__ = [
    "BASE_URL_ENV",
    "Credentials",
    "CredentialsMissing",
    "credentials_from_env",
    "describe_account",
    "ensure_retrying",
    "make_client",
    "retry_after_seconds",
]


def credentials_from_env(env: Mapping[str, str] | None = None, secrets_file: Path | None = None) -> Credentials:
    """The environment's Twilio credentials, else ``.streamlit/secrets.toml`` of the working directory."""
    return find_credentials(env, secrets_file)


def make_client(credentials: Credentials, *, sleep: Callable[[float], None] = time.sleep, timeout: float = 30.0,
                **overrides: Any) -> Client:
    """A ``twilio.rest.Client`` that retries only 429s (after ``Retry-After``) and may point at the sandbox."""
    return _make_client(credentials, policy=SENDER_RETRIES, sleep=sleep, timeout=timeout, **overrides)


def ensure_retrying(client: Client, *, sleep: Callable[[float], None] = time.sleep) -> RetryingHttpClient:
    """Give a caller's client the sender's policy (once): a client built for reading must not retry creates."""
    current = client.http_client
    if isinstance(current, RetryingHttpClient):
        if _only_429(current):
            return current
        current = current.inner  # an ingest client retries 5xx: keep its transport, not its policy
    wrapped = RetryingHttpClient(current, policy=SENDER_RETRIES, sleep=sleep)
    client.http_client = wrapped
    return wrapped


def _only_429(client: RetryingHttpClient) -> bool:
    return not client.policy.retry_5xx and not client.policy.retry_connection_errors
