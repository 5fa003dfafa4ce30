"""The sender skips recipients who opted out (issue 18), per a warehouse the real ingest built from the
sandbox; an explicit flag and a confirmation send to them anyway, and then Twilio (the sandbox, through
the real SDK) refuses them with 21610, which the ledger records."""

from __future__ import annotations

import io
import shutil

import pytest

from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sender import api
from switchboard.sender.cli import add_arguments, run
from switchboard.sender.ledger import Ledger, ledger_path
from tests.conftest import SMALL_END, sandbox_client_factory


def _outbound(world):
    m = world.messages
    return m[m["direction"] != "inbound"]


@pytest.fixture(scope="module")
def setup(small_world, small_warehouse, tmp_path_factory):
    """A data dir holding a copy of the small warehouse, our busiest opted-out number on the main account,
    the recipients opted out of it (by reply or by an earlier 21610) and two who never opted out."""
    w = small_world
    numbers = w.users["number"].to_numpy()
    main = set(w.senders.loc[w.senders["account"] == 0, "sender"])
    pairs = [(str(numbers[u]), f) for u, f in w.opted_out if f in main]
    sender = max({f for _, f in pairs}, key=lambda f: sum(p[1] == f for p in pairs))
    by_reply = sorted(n for n, f in pairs if f == sender)
    out = _outbound(w)
    from_sender = out[out["from"].astype(str) == sender]
    last = from_sender.sort_values("date_created").groupby(from_sender["to"].astype(str)).tail(1)
    by_21610 = sorted(set(last.loc[last["error_code"] == 21610, "to"].astype(str)) - set(by_reply))[:1]
    fine = sorted(set(last.loc[last["status"].astype(str) == "delivered", "to"].astype(str)) - set(by_reply))[:2]
    assert by_reply and len(fine) == 2
    data_dir = tmp_path_factory.mktemp("responses_sender")
    shutil.copy(small_warehouse, data_dir / "warehouse.duckdb")
    return {"data_dir": data_dir, "sender": sender, "opted": by_reply + by_21610, "fine": fine}


def _campaign(directory, campaign_id: str, sender: str, numbers: list[str]):
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["number,user_id,locale"] + [f"{n},user-{i:03d},en-US" for i, n in enumerate(numbers)]
    (directory / "recipients.csv").write_text("\n".join(rows) + "\n")
    (directory / "allow.txt").write_text("\n".join(numbers) + "\n")
    path = directory / "campaign.toml"
    path.write_text(f'''
id = "{campaign_id}"
name = "Promo rehearsal"
purpose = "marketing"
experiment_id = "exp-{campaign_id}"
recipients = "recipients.csv"
allow_list = "allow.txt"
from = "{sender}"
rate_limit = 100
max_size = 20

[[variants]]
name = "control"
weight = 1
template_id = "mkt_promo"
body = "Acme: 20% off this week. Reply STOP to opt out."
''')
    return path


def test_preview_marks_opted_out_recipients(setup, tmp_path):
    s = setup
    campaign = api.load_campaign(_campaign(tmp_path, "promo-a", s["sender"], s["fine"] + s["opted"]))
    found = api.opted_out_recipients(campaign, s["data_dir"])
    assert found.numbers == frozenset(s["opted"])
    preview = api.preview_campaign(campaign, data_dir=s["data_dir"])
    k = len(s["opted"])
    assert preview.opted_out == k and preview.recipients == k + 2
    assert preview.opted_out_line == f"{k} recipient{'s have' if k > 1 else ' has'} opted out: not sent"
    assert preview.plan["opted_out"].sum() == k and not preview.plan["number_masked"].isin(s["opted"]).any()
    assert preview.totals["recipients"].sum() == 2  # the cost counts only who will be texted


def test_no_warehouse_says_opt_outs_were_not_checked(setup, tmp_path):
    campaign = api.load_campaign(_campaign(tmp_path / "c", "promo-b", setup["sender"], setup["fine"]))
    preview = api.preview_campaign(campaign, data_dir=tmp_path / "empty")
    assert preview.opted_out == 0 and "opt-outs not checked" in preview.opted_out_line


def test_send_skips_them_and_the_override_meets_21610(setup, small_world, tmp_path):
    s = setup
    with SandboxServer(small_world, clock=SimClock(SMALL_END)) as server:
        client = sandbox_client_factory(server)()
        campaign = api.load_campaign(_campaign(tmp_path / "a", "promo-skip", s["sender"], s["fine"] + s["opted"]))
        result = api.run_campaign(campaign, client, data_dir=s["data_dir"])
        states = result.to_frame().set_index("user_id")["state"]
        assert sorted(states) == sorted(["sent"] * 2 + ["skipped"] * len(s["opted"]))
        assert result.summary()["skipped_opted_out"] == len(s["opted"])
        with Ledger.open(ledger_path(s["data_dir"], "promo-skip")) as ledger:  # nothing recorded for them
            assert len(ledger.rows()) == 2

        forced = api.load_campaign(_campaign(tmp_path / "b", "promo-force", s["sender"], s["opted"]))
        result = api.run_campaign(forced, client, data_dir=s["data_dir"], include_opted_out=True)
        frame = result.to_frame()
        assert set(frame["state"]) == {"failed"} and set(frame["error_code"]) == {21610}
        with Ledger.open(ledger_path(s["data_dir"], "promo-force")) as ledger:
            assert {r.error_code for r in ledger.rows()} == {21610}


def _cli(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = run(parser.parse_args(args), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_dry_run_and_the_override_needs_confirmation(setup, tmp_path):
    s = setup
    path = _campaign(tmp_path, "promo-cli", s["sender"], s["fine"] + s["opted"])
    k = len(s["opted"])
    code, out, _ = _cli([str(path), "--data-dir", str(s["data_dir"])])
    assert code == 0 and f"{k} recipient" in out and "opted out: not sent" in out
    assert "--include-opted-out" in out and not any(n in out for n in s["opted"])
    code, _, err = _cli([str(path), "--send", "--include-opted-out", "--data-dir", str(s["data_dir"])])
    assert code == 2 and "pass --yes as well to confirm" in err
    assert not ledger_path(s["data_dir"], "promo-cli").exists()  # refused before anything was sent
