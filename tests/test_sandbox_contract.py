"""Every kind of response the sandbox sends, validated against Twilio's OpenAPI spec.

Schemas come from ``../shared/twilio-oai/twilio_api_v2010.json`` ($refs resolved from the
spec itself); the list envelopes are the schemas of the paths' 200 responses. Twilio's
error body is not in the spec: it is checked against the shape Twilio documents
(``code``, ``message``, ``more_info``, ``status``).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator

from switchboard.sandbox.server import FaultConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate

# A copy of ../shared/twilio-oai (MIT) ships in sandbox/spec, so the contract is checked on any clone.
SPEC_PATH = Path(__file__).resolve().parents[1] / "sandbox" / "spec" / "twilio_api_v2010.json"
END = datetime(2026, 6, 1, tzinfo=UTC)
RFC2822 = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                     r"\d{4} \d\d:\d\d:\d\d \+0000")
ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string", "pattern": r"^https://www\.twilio\.com/docs/errors/\d+$"},
        "status": {"type": "integer"},
    },
}



@pytest.fixture(scope="module")
def spec():
    return json.loads(SPEC_PATH.read_text())


def _checker() -> FormatChecker:
    fc = FormatChecker()

    @fc.checks("date-time-rfc-2822")
    def _rfc2822(value) -> bool:
        if not isinstance(value, str):
            return True
        return bool(RFC2822.fullmatch(value)) and parsedate_to_datetime(value) is not None

    return fc


def validator(spec, schema) -> OAS30Validator:
    root = dict(schema)
    root["components"] = spec["components"]
    return OAS30Validator(root, format_checker=_checker())


def list_schema(spec, path):
    return spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


def item_schema(spec, name):
    return {"$ref": f"#/components/schemas/{name}"}


def check(spec, schema, payload, all_fields_of: str | None = None):
    v = validator(spec, schema)
    for item in payload if isinstance(payload, list) else [payload]:
        errors = sorted(v.iter_errors(item), key=str)
        assert not errors, [e.message for e in errors[:5]]
    if all_fields_of:
        fields = set(spec["components"]["schemas"][all_fields_of]["properties"])
        records = payload if isinstance(payload, list) else [payload]
        for r in records:
            assert set(r) == fields, set(r) ^ fields


class Http:
    def __init__(self, server: SandboxServer, sid=None, token=None):
        self.server = server
        self.sid = sid or server.account_sid
        token = token or server.auth_token
        self.auth = "Basic " + base64.b64encode(f"{self.sid}:{token}".encode()).decode()
        u = urlsplit(server.base_url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def request(self, method, path, form=None):
        body = urlencode(form).encode() if form is not None else None
        headers = {"Authorization": self.auth, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read())

    def acct(self, rest=""):
        return f"/2010-04-01/Accounts/{self.sid}{rest}"


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(messages=1500, calls=200, days=7, end=END))


@pytest.fixture(scope="module")
def server(world):
    # The clock stands an hour before the end: later records are hidden, the latest ones are
    # still in flight, so queued/sent and ringing/in-progress records are rendered too.
    clock = SimClock(END - timedelta(minutes=60))
    with SandboxServer(world, clock=clock) as s:
        yield s


def test_message_list_pages(spec, server):
    h = Http(server)
    schema = list_schema(spec, "/2010-04-01/Accounts/{AccountSid}/Messages.json")
    status, _, page = h.request("GET", h.acct("/Messages.json?PageSize=400"))
    assert status == 200
    check(spec, schema, page)
    check(spec, item_schema(spec, "api.v2010.account.message"), page["messages"],
          all_fields_of="api.v2010.account.message")
    assert page["page_size"] == 400 and page["page"] == 0 and page["start"] == 0 and page["end"] == 399
    assert page["previous_page_uri"] is None and page["next_page_uri"]
    seen = {m["status"] for m in page["messages"]}
    while page["next_page_uri"]:
        status, _, page = h.request("GET", page["next_page_uri"])
        assert status == 200
        check(spec, schema, page)
        seen |= {m["status"] for m in page["messages"]}
        assert page["previous_page_uri"]
    assert page["next_page_uri"] is None
    assert {"delivered", "undelivered", "failed"} <= seen


def test_in_flight_records_are_valid_too(spec, world):
    m = world.messages[world.messages["account_idx"] == 0]
    slow = m[(m["final_at"] - m["date_sent"]) > 60].iloc[-1]
    c = world.calls
    done = c[c["status"] == "completed"].iloc[-1]
    clock = SimClock(datetime.fromtimestamp(int(slow["date_sent"]) + 1, UTC))
    with SandboxServer(world, clock=clock) as s:
        h = Http(s)
        status, _, msg = h.request("GET", h.acct(f"/Messages/{slow['sid']}.json"))
        assert status == 200 and msg["status"] == "sent" and msg["price"] is None and msg["date_sent"]
        check(spec, item_schema(spec, "api.v2010.account.message"), msg, all_fields_of="api.v2010.account.message")
        clock.set(datetime.fromtimestamp(int(slow["date_sent"]) - 1, UTC))
        status, _, msg = h.request("GET", h.acct(f"/Messages/{slow['sid']}.json"))
        assert msg["status"] == "queued" and msg["date_sent"] is None
        check(spec, item_schema(spec, "api.v2010.account.message"), msg, all_fields_of="api.v2010.account.message")
        expected = {"start_time": "queued", "answered_at": "in-progress", "end_time": "completed"}
        for col, want in expected.items():
            clock.set(datetime.fromtimestamp(int(done[col]) - (1 if col == "start_time" else 0), UTC))
            status, _, call = h.request("GET", h.acct(f"/Calls/{done['sid']}.json"))
            assert call["status"] == want
            assert (call["end_time"] is None) == (want != "completed")
            check(spec, item_schema(spec, "api.v2010.account.call"), call, all_fields_of="api.v2010.account.call")
        clock.set(datetime.fromtimestamp(int(done["start_time"]) + 1, UTC))
        _, _, call = h.request("GET", h.acct(f"/Calls/{done['sid']}.json"))
        assert call["status"] == "ringing"
        check(spec, item_schema(spec, "api.v2010.account.call"), call, all_fields_of="api.v2010.account.call")


def test_call_list_and_fetch(spec, server):
    h = Http(server)
    status, _, page = h.request("GET", h.acct("/Calls.json?PageSize=1000"))
    assert status == 200
    check(spec, list_schema(spec, "/2010-04-01/Accounts/{AccountSid}/Calls.json"), page)
    check(spec, item_schema(spec, "api.v2010.account.call"), page["calls"], all_fields_of="api.v2010.account.call")
    statuses = {c["status"] for c in page["calls"]}
    assert {"completed", "no-answer", "busy"} <= statuses
    done = next(c for c in page["calls"] if c["status"] == "completed")
    assert int(done["duration"]) > 0 and done["price"].startswith("-") and done["answered_by"]
    status, _, one = h.request("GET", h.acct(f"/Calls/{done['sid']}.json"))
    assert status == 200 and one == done
    check(spec, item_schema(spec, "api.v2010.account.call"), one, all_fields_of="api.v2010.account.call")


def test_message_fetch_fields(spec, server):
    h = Http(server)
    _, _, page = h.request("GET", h.acct("/Messages.json?PageSize=1000"))
    done = next(m for m in page["messages"] if m["status"] == "delivered")
    status, _, msg = h.request("GET", h.acct(f"/Messages/{done['sid']}.json"))
    assert status == 200 and msg == done
    check(spec, item_schema(spec, "api.v2010.account.message"), msg, all_fields_of="api.v2010.account.message")
    assert re.fullmatch(r"-\d+\.\d{5}", msg["price"]) and msg["price_unit"] == "USD"
    assert isinstance(msg["num_segments"], str) and msg["error_code"] is None
    assert msg["uri"] == h.acct(f"/Messages/{msg['sid']}.json")
    failed = next(m for m in page["messages"] if m["status"] in ("failed", "undelivered"))
    assert isinstance(failed["error_code"], int) and failed["error_message"]


def test_creates(spec, server):
    h = Http(server)
    status, _, msg = h.request("POST", h.acct("/Messages.json"),
                               {"To": "+5511987654321", "From": "+15005550006", "Body": "Olá “mundo”"})
    assert status == 201 and msg["status"] == "queued" and msg["date_sent"] is None and msg["price"] is None
    check(spec, spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]["responses"]["201"]
          ["content"]["application/json"]["schema"], msg, all_fields_of="api.v2010.account.message")
    mg = server.senders()["messaging_service_sids"][0]
    status, _, msg = h.request("POST", h.acct("/Messages.json"),
                               {"To": "+5511987654321", "MessagingServiceSid": mg, "Body": "x" * 161})
    assert status == 201 and msg["num_segments"] == "2" and msg["messaging_service_sid"] == mg
    status, _, call = h.request("POST", h.acct("/Calls.json"),
                                {"To": "+5511987654321", "From": "+15005550006", "Twiml": "<Response/>"})
    assert status == 201 and call["status"] == "queued"
    check(spec, spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Calls.json"]["post"]["responses"]["201"]
          ["content"]["application/json"]["schema"], call, all_fields_of="api.v2010.account.call")


def test_accounts(spec, server):
    h = Http(server)
    status, _, page = h.request("GET", "/2010-04-01/Accounts.json")
    assert status == 200 and len(page["accounts"]) == 2
    check(spec, list_schema(spec, "/2010-04-01/Accounts.json"), page)
    check(spec, item_schema(spec, "api.v2010.account"), page["accounts"], all_fields_of="api.v2010.account")
    sub = next(a for a in page["accounts"] if a["sid"] != server.account_sid)
    assert sub["owner_account_sid"] == server.account_sid
    status, _, one = h.request("GET", f"/2010-04-01/Accounts/{sub['sid']}.json")
    assert status == 200 and one == sub
    check(spec, item_schema(spec, "api.v2010.account"), one, all_fields_of="api.v2010.account")


@pytest.mark.parametrize(
    "method,path,form,status,code",
    [
        ("GET", "/Messages/SM00000000000000000000000000000000.json", None, 404, 20404),
        ("GET", "/Calls/CA00000000000000000000000000000000.json", None, 404, 20404),
        ("GET", "/Messages.json?PageSize=1001", None, 400, 20001),
        ("POST", "/Messages.json", {"From": "+15005550006", "Body": "hi"}, 400, 21604),
        ("POST", "/Messages.json", {"To": "+5511987654321", "From": "+15005550006"}, 400, 21602),
        ("POST", "/Messages.json", {"To": "+5511987654321", "From": "+15551234567", "Body": "hi"}, 400, 21606),
        ("POST", "/Messages.json", {"To": "+15005550001", "From": "+15005550006", "Body": "hi"}, 400, 21211),
        ("POST", "/Messages.json", {"To": "+15005550004", "From": "+15005550006", "Body": "hi"}, 400, 21610),
        ("POST", "/Messages.json", {"To": "+15005550009", "From": "+15005550006", "Body": "hi"}, 400, 21614),
        ("POST", "/Calls.json", {"To": "+5511987654321", "From": "+15005550006"}, 400, 21205),
    ],
)
def test_errors(spec, server, method, path, form, status, code):
    h = Http(server)
    got, _, body = h.request(method, h.acct(path), form)
    assert (got, body["code"], body["status"]) == (status, code, status)
    check(spec, ERROR_SCHEMA, body)


def test_auth_errors(spec, server):
    bad = Http(server, token="0" * 32)
    status, _, body = bad.request("GET", bad.acct("/Messages.json"))
    assert (status, body["code"]) == (401, 20003)
    check(spec, ERROR_SCHEMA, body)


@pytest.mark.parametrize("faults,status,code", [
    (FaultConfig(rate_429=1.0, retry_after=3), 429, 20429),
    (FaultConfig(rate_500=1.0), 500, 20500),
    (FaultConfig(rate_503=1.0), 503, 20503),
])
def test_fault_errors(spec, world, faults, status, code):
    with SandboxServer(world, faults=faults) as s:
        h = Http(s)
        got, headers, body = h.request("GET", h.acct("/Messages.json"))
        assert (got, body["code"]) == (status, code)
        check(spec, ERROR_SCHEMA, body)
        if status == 429:
            assert headers["Retry-After"] == "3"


def test_paging_links_round_trip(server):
    h = Http(server)
    _, _, p0 = h.request("GET", h.acct("/Messages.json?PageSize=100"))
    _, _, p1 = h.request("GET", p0["next_page_uri"])
    assert (p1["page"], p1["start"], p1["end"]) == (1, 100, 199)
    _, _, back = h.request("GET", p1["previous_page_uri"])
    assert [m["sid"] for m in back["messages"]] == [m["sid"] for m in p0["messages"]]
    _, _, by_number = h.request("GET", h.acct("/Messages.json?PageSize=100&Page=1"))
    assert [m["sid"] for m in by_number["messages"]] == [m["sid"] for m in p1["messages"]]
    _, _, filtered = h.request("GET", h.acct("/Messages.json?DateSent%3E=2026-05-30&PageSize=20"))
    assert "DateSent%3E=2026-05-30" in filtered["next_page_uri"] and "DateSent%3E=2026-05-30" in filtered["uri"]
    assert all(m["date_sent"].endswith("+0000") for m in filtered["messages"])
    _, _, default = h.request("GET", h.acct("/Messages.json"))
    assert default["page_size"] == 50 and len(default["messages"]) == 50


def test_fast_page_rendering_equals_the_dict_path(world):
    """List pages are serialised from string templates; they must say exactly what the dicts say,
    in every state of the lifecycle (queued, sent, final) and with live records mixed in."""
    m = world.messages[world.messages["account_idx"] == 0]
    slow = m[(m["final_at"] - m["date_sent"]) > 60].iloc[-1]
    clock = SimClock(datetime.fromtimestamp(int(slow["date_sent"]) + 1, UTC))
    with SandboxServer(world, clock=clock) as s:
        h = Http(s)
        h.request("POST", h.acct("/Messages.json"), {"To": "+5511987654321", "From": "+15005550006",
                                                     "Body": 'quote " backslash \\ ünïcode “x”'})
        for when in (int(slow["date_sent"]) - 1, int(slow["date_sent"]) + 1, int(slow["final_at"]) + 5):
            clock.set(datetime.fromtimestamp(when, UTC))
            ai = 0
            raw = json.loads(s.list_page("messages", ai, {"PageSize": "1000"}, h.acct("/Messages.json"), raw=True))
            plain = s.list_page("messages", ai, {"PageSize": "1000"}, h.acct("/Messages.json"))
            assert raw == plain
            assert {x["status"] for x in raw["messages"]} >= {"delivered"}
        statuses = set()
        for when in (int(slow["date_sent"]) - 1, int(slow["date_sent"]) + 1):
            clock.set(datetime.fromtimestamp(when, UTC))
            statuses |= {x["status"] for x in s.render_messages([int(slow.name)])}
        assert statuses == {"queued", "sent"}
