"""core.twilio: one retry implementation, a policy per use, and URL redaction."""

from __future__ import annotations

import logging

import pytest
import requests
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from switchboard.core.twilio import (
    INGEST_RETRIES,
    SENDER_RETRIES,
    Credentials,
    RetryingHttpClient,
    TwilioUnavailable,
    make_client,
    redact_url,
)
from switchboard.sender.transport import ensure_retrying


class _Scripted(HttpClient):
    def __init__(self, answers: list[object]):
        super().__init__(logging.getLogger("test"), False)
        self.answers, self.calls = answers, 0

    def request(self, *args: object, **kwargs: object) -> Response:
        self.calls += 1
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[return-value]


def test_the_sender_retries_only_429_because_a_5xx_on_create_may_have_sent() -> None:
    inner = _Scripted([Response(503, "{}"), Response(201, "{}")])
    client = RetryingHttpClient(inner, policy=SENDER_RETRIES, sleep=lambda s: None)
    assert client.request("POST", "http://x").status_code == 503 and inner.calls == 1
    dropped = _Scripted([requests.ConnectionError("reset"), Response(201, "{}")])
    with pytest.raises(requests.ConnectionError):
        RetryingHttpClient(dropped, policy=SENDER_RETRIES, sleep=lambda s: None).request("POST", "http://x")
    assert dropped.calls == 1


def test_the_ingest_retries_5xx_and_gives_up_with_a_clear_error() -> None:
    inner = _Scripted([Response(503, "{}"), Response(200, "{}")])
    client = RetryingHttpClient(inner, policy=INGEST_RETRIES, sleep=lambda s: None)
    assert client.request("GET", "http://x").status_code == 200 and client.retries == 1
    failing = _Scripted([Response(500, "{}")] * 3)
    with pytest.raises(TwilioUnavailable, match=r"failed after 3 attempts: HTTP 500"):
        RetryingHttpClient(failing, sleep=lambda s: None, max_retries=2).request(
            "GET", "http://AC1:tok@h/y?p=1"
        )


def test_a_reading_client_handed_to_the_sender_gets_the_sender_policy() -> None:
    client = make_client(Credentials("AC" + "0" * 32, "tok"), policy=INGEST_RETRIES)
    reading = client.http_client
    wrapped = ensure_retrying(client)
    assert client.http_client is wrapped and wrapped.policy == SENDER_RETRIES
    assert wrapped.inner is reading.inner  # same transport, no second layer of 5xx retries
    assert ensure_retrying(client) is wrapped


def test_make_client_points_at_the_base_url_and_api_keys_authenticate() -> None:
    client = make_client(Credentials("AC1", "secret", api_key="SK1", base_url="http://127.0.0.1:9/"))
    assert isinstance(client, Client) and client.api.base_url == "http://127.0.0.1:9"
    assert (client.username, client.password, client.account_sid) == ("SK1", "secret", "AC1")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://AC123:tok3n@127.0.0.1:8599/2010-04-01", "http://***@127.0.0.1:8599/2010-04-01"),
        ("https://user@host/x?y=1", "https://***@host/x?y=1"),
        ("http://127.0.0.1:8599/x", "http://127.0.0.1:8599/x"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url_removes_userinfo(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_one_redaction_rule_for_text_and_urls() -> None:
    from switchboard.core.twilio import redact_text
    from switchboard.ingest import runs

    message = "GET http://AC1:s3cret@127.0.0.1:8599/x failed; retry https://u:p@h/y"
    assert redact_text(message) == "GET http://***@127.0.0.1:8599/x failed; retry https://***@h/y"
    assert runs.redact is redact_text
