"""The twilio SDK's HTTP client with bounded retries, plugged in through ``Client(http_client=...)``.

The SDK still builds every request (URL, auth, paging); this only decides what to do
with a bad answer:

* 429: wait what ``Retry-After`` says (capped), else back off, and try again;
* 5xx, a dropped connection, a timeout: exponential backoff with full jitter, bounded;
* 401/403: stop at once with :class:`TwilioAuthError`: retrying cannot fix credentials.

After ``max_retries`` attempts a :class:`TwilioUnavailable` names the URL and the last problem.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from switchboard.core.errors import ConfigError, SwitchboardError

CREDENTIALS_HINT = (
    "Set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET with "
    "TWILIO_ACCOUNT_SID) in the environment or in .streamlit/secrets.toml."
)


class TwilioAuthError(ConfigError, RuntimeError):
    """Twilio refused the credentials (401) or the resource (403)."""


class TwilioUnavailable(SwitchboardError, RuntimeError):
    """Twilio kept failing after every retry."""


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers else None
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class RetryingHttpClient(TwilioHttpClient):
    def __init__(
        self,
        *,
        max_retries: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 8.0,
        max_retry_after: float = 60.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(timeout=timeout)
        # The SDK mounts a pooled adapter for https only; the sandbox speaks http.
        assert self.session is not None
        self.session.mount("http://", HTTPAdapter(pool_maxsize=8))
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.retries = 0  # how many retries this client made (for the run report and tests)

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        problem = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = super().request(method, url, *args, **kwargs)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                delay = self.backoff(attempt)
            else:
                status = response.status_code
                if status in (401, 403):
                    raise TwilioAuthError(
                        f"Twilio answered {status} {'Unauthorized' if status == 401 else 'Forbidden'} "
                        f"for {method} {url.split('?')[0]}. {CREDENTIALS_HINT}"
                    )
                if status == 429:
                    problem = "429 Too Many Requests"
                    after = _retry_after(response.headers)
                    delay = min(after, self.max_retry_after) if after is not None else self.backoff(attempt)
                elif status >= 500:
                    problem = f"HTTP {status}"
                    delay = self.backoff(attempt)
                else:
                    return response
            if attempt == self.max_retries:
                break
            self.retries += 1
            self.sleep(delay)
        raise TwilioUnavailable(f"{method} {url.split('?')[0]} failed after {self.max_retries + 1} attempts: {problem}")
