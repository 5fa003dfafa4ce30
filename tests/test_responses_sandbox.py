"""Members reply in the sandbox (issue 18): inbound messages through the real twilio SDK and validated
against Twilio's OpenAPI spec, opt-outs that make later SMS fail with 21610 (history and API create),
and the experiment whose variant raises opt-outs, in ground truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import numpy as np
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from switchboard.sandbox.replies import INBOUND_PRICE, KINDS, REPLY_TEXTS
from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate
from tests.test_sandbox_contract import SPEC_PATH, Http, check, item_schema, list_schema

END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def spec():
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=3, messages=30_000, calls=1000, days=30, end=END))


@pytest.fixture(scope="module")
def server(world):
    with SandboxServer(world, clock=SimClock(END)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    c = Client(server.account_sid, server.auth_token)
    c.api.base_url = server.base_url
    return c


def _inbound(world):
    m = world.messages
    return m[m["direction"] == "inbound"]


def test_inbound_messages_as_twilio_returns_them(world, server, client, spec):
    ours = set(world.senders["sender"])
    members = set(world.users["number"])
    inbound = _inbound(world)
    main = inbound[inbound["account_idx"] == 0]
    day = main["date_created"].iloc[len(main) // 2]
    window = datetime.fromtimestamp(int(day), UTC).replace(hour=0, minute=0, second=0)
    got = [m for m in client.messages.stream(date_sent_after=window, date_sent_before=window + timedelta(days=1),
                                              page_size=500) if m.direction == "inbound"]
    expected = main[(main["date_sent"] >= window.timestamp()) & (main["date_sent"] < window.timestamp() + 86400)]
    assert {m.sid for m in got} == set(expected["sid"]) and got
    for m in got:
        assert m.status == "received" and m.from_ in members and m.to in ours and m.error_code is None
        assert float(m.price) == pytest.approx(-INBOUND_PRICE * int(m.num_segments)) and m.date_sent
    one = client.messages(got[0].sid).fetch()
    assert (one.direction, one.from_, one.body) == ("inbound", got[0].from_, got[0].body)
    # the raw records, page and fetch, match Twilio's OpenAPI spec field for field
    h = Http(server)
    status, _, page = h.request("GET", h.acct(f"/Messages.json?To={quote(got[0].to)}&PageSize=200"))
    assert status == 200
    check(spec, list_schema(spec, "/2010-04-01/Accounts/{AccountSid}/Messages.json"), page)
    raw = [r for r in page["messages"] if r["direction"] == "inbound"]
    assert raw
    check(spec, item_schema(spec, "api.v2010.account.message"), raw, all_fields_of="api.v2010.account.message")
    status, _, fetched = h.request("GET", h.acct(f"/Messages/{got[0].sid}.json"))
    assert status == 200 and fetched["direction"] == "inbound"
    check(spec, item_schema(spec, "api.v2010.account.message"), fetched)


def test_replies_cover_every_kind_in_several_languages(world):
    inbound = _inbound(world)
    assert set(inbound["reply_kind"].astype(str)) == set(KINDS)
    bodies = world.messages.attrs["bodies"]
    texts = {bodies[k] for k in inbound["body_key"]}
    spanish = set(REPLY_TEXTS["opt_out"]["es"]) | set(REPLY_TEXTS["help"]["es"]) | set(REPLY_TEXTS["other"]["es"])
    portuguese = set(REPLY_TEXTS["opt_out"]["pt"]) | set(REPLY_TEXTS["other"]["pt"])
    assert texts & (spanish - {"STOP", "ok"}) and texts & (portuguese - {"STOP", "ok"})
    # marketing is answered far more often than verification
    out = world.messages[world.messages["direction"] != "inbound"]
    rate = {p: (inbound["purpose"] == p).sum() / (out["purpose"] == p).sum() for p in ("marketing", "verification")}
    assert rate["marketing"] > 5 * rate["verification"]
    assert (inbound["reply_to"] < 0).any()  # some members text us out of the blue


def test_an_opt_out_blocks_later_sms_from_that_number_until_start(world):
    m = world.messages
    out = m[m["direction"] != "inbound"]
    inbound = _inbound(world)
    frm, to = out["from"].astype(str).to_numpy(), out["to"].astype(str).to_numpy()
    created, err = out["date_created"].to_numpy(), out["error_code"].to_numpy()
    checked = 0
    for _, r in inbound[inbound["reply_kind"] == "opt_out"].head(40).iterrows():
        member, ours, t = str(r["from"]), str(r["to"]), int(r["date_created"])
        restart = inbound[(inbound["from"].astype(str) == member) & (inbound["to"].astype(str) == ours)
                          & (inbound["reply_kind"] == "opt_in") & (inbound["date_created"] > t)]["date_created"]
        until = int(restart.min()) if len(restart) else np.iinfo(np.int64).max
        later = (to == member) & (frm == ours) & (created > t) & (created < until)
        assert (err[later] == 21610).all(), (member, ours)
        other = (to == member) & (frm != ours) & (created > t)
        checked += int(later.sum())
        if other.any() and not world.users.loc[world.users["number"] == member, "opted_out"].any():
            assert (err[other] != 21610).all()  # other numbers still reach them
    assert checked > 0
    assert world.ground_truth["responses"]["blocked_by_opt_out"] > 0


def test_api_create_refuses_an_opted_out_pair_with_21610(world, client):
    numbers = world.users["number"].to_numpy()
    main = set(world.senders.loc[world.senders["account"] == 0, "sender"]) - {"ACME"}
    user, ours = next((u, f) for u, f in sorted(world.opted_out) if f in main)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to=numbers[user], from_=ours, body="Acme: 20% off")
    assert exc.value.status == 400 and exc.value.code == 21610
    other = min(main - {ours})
    if (user, other) not in world.opted_out and not world.users["opted_out"].iat[user]:
        assert client.messages.create(to=numbers[user], from_=other, body="Acme: hello").sid.startswith("SM")


def test_the_urgent_variant_raises_opt_outs_in_ground_truth(world):
    exp = next(e for e in world.ground_truth["experiments"] if e["experiment_id"] == "exp_mkt_urgency")
    rates = exp["observed_opt_out_rate"]
    assert exp["opt_out_multiplier"] == 3.0
    assert rates["urgent"] > 2 * rates["control"] > 0


def test_same_seed_same_replies(world):
    again = generate(Scenario(seed=3, messages=30_000, calls=1000, days=30, end=END))
    a, b = _inbound(world), _inbound(again)
    assert a["sid"].tolist() == b["sid"].tolist() and a["reply_kind"].tolist() == b["reply_kind"].tolist()
    assert world.opted_out == again.opted_out


def _live_server(world, clock):
    from switchboard.sandbox.server import LiveConfig

    server = SandboxServer(world, clock=clock, live=LiveConfig(rate=30))
    server.live.start()
    server.live.stop()  # no background ticks: only the test's
    return server


@pytest.mark.slow
def test_live_members_reply_and_their_opt_outs_close_the_number(world):
    seen = []
    for step in (10, 37):
        clock = SimClock(END)
        server = _live_server(world, clock)
        for _ in range(480 // step):
            clock.advance(step)
            server.live.tick()
        live = server.messages.live
        seen.append([(r["sid"], r.get("direction", "out"), r["status"], r["error_code"]) for r in live])
    assert seen[0][: len(seen[1])] == seen[1][: len(seen[0])]  # same traffic whatever the ticks
    inbound = [r for r in live if r.get("direction") == "inbound"]
    assert inbound and {r["status"] for r in inbound} == {"received"}
    stops = [r for r in inbound if r["body"] in {t for texts in REPLY_TEXTS["opt_out"].values() for t in texts}]
    assert stops
    refused = 0
    for stop in stops:
        later = [r for r in live if r.get("direction") != "inbound" and r["to"] == stop["from"]
                 and r["from"] == stop["to"] and r["date_created"] > stop["date_created"]]
        assert all(r["error_code"] == 21610 for r in later)
        refused += len(later)
    assert refused > 0  # the seed's traffic texts some of them again from the same number
    member, ours = stops[0]["from"], stops[0]["to"]
    with server:  # and the API refuses a create to them from that number
        c = Client(server.account_sid, server.auth_token)
        c.api.base_url = server.base_url
        with pytest.raises(TwilioRestException) as exc:
            c.messages.create(to=member, from_=ours, body="Acme: one more thing")
    assert exc.value.code == 21610
