"""The "Send test campaign" page through Streamlit's AppTest, inside the real app (navigation + sidebar).

Preview of the example campaign (masked numbers, totals, encoding advice), a clear error for
a broken TOML, sending disabled without credentials, and a real send to a ``SandboxServer``
on a free port through the twilio SDK: messages created once, send-log records written, no
credential anywhere on the page, and a second click sends nothing new (the ledger).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from twilio.rest import Client

from switchboard.sandbox.server import SandboxServer
from switchboard.sandbox.world import Scenario, generate
from switchboard.sender import api
from switchboard.sender.sendlog import send_log_path
from tests.browser_util import build_empty_warehouse

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGE = "app_pages/send_campaign.py"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "campaign.toml"
EDITOR = "send_campaign_toml"
CREDENTIAL_VARS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET",
                   "SWITCHBOARD_TWILIO_BASE_URL", "SWITCHBOARD_WEB_SEND")


SENDER = "+15005550006"  # the example's From: our own Twilio number, shown on purpose (and a recipient too)


def recipient_numbers() -> list[str]:
    lines = (EXAMPLE.parent / "recipients.csv").read_text().splitlines()[1:]
    return [line.split(",")[0] for line in lines if line.strip()]


def members(numbers: list[str]) -> list[str]:
    """Recipient numbers that must never appear in full (all but the campaign's own From number)."""
    return [n for n in numbers if n != SENDER]


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("send_page")
    build_empty_warehouse(d / "warehouse.duckdb")
    return d


@pytest.fixture()
def no_credentials(empty_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with an (empty) warehouse, and no Twilio credentials anywhere the sender looks."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "warehouse.duckdb").symlink_to(empty_dir / "warehouse.duckdb")
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    # credentials_from_env() also reads .streamlit/secrets.toml of the working directory: use an empty one.
    monkeypatch.chdir(tmp_path)
    return data_dir


@pytest.fixture(scope="module")
def world() -> Any:
    return generate(Scenario(messages=200, calls=20, days=2))


@pytest.fixture()
def sandbox(world: Any, no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(world, port=0) as server:
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", server.account_sid)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", server.auth_token)
        monkeypatch.setenv("SWITCHBOARD_TWILIO_BASE_URL", server.base_url)
        monkeypatch.setenv("SWITCHBOARD_WEB_SEND", "1")  # this server lets its web page send (as the demo does)
        yield server


def open_page(**state: Any) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Send test campaign"
    return at


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    frames = [df.value for df in at.dataframe if column in df.value.columns]
    assert frames, f"no table with a {column!r} column"
    return frames[0]


def walk(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None) or {}
    for child in children.values():
        yield from walk(child)


def rendered_text(at: AppTest, *, skip_editor: bool = True) -> str:
    """Every element's protobuf (labels, values, table data, links) as text."""
    parts = []
    for node in walk(at._tree):
        if skip_editor and getattr(node, "key", None) == EDITOR:
            continue  # the TOML editor holds the campaign's own text (its From number)
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        value = getattr(node, "value", None)
        if isinstance(value, pd.DataFrame):
            parts.append(value.to_csv())
        elif value is not None:
            parts.append(repr(value))
    return "\n".join(parts)


def fast_campaign(campaign_id: str) -> str:
    """The example campaign, faster: higher rate limit, a one-second fallback delay."""
    text = EXAMPLE.read_text()
    text = text.replace('id = "pwreset-rehearsal"', f'id = "{campaign_id}"')
    text = text.replace("rate_limit = 2.0", "rate_limit = 50.0")
    return text.replace("after_minutes = 2", "after_seconds = 1")


def sandbox_client(server: SandboxServer) -> Client:
    client = Client(server.account_sid, server.auth_token)
    client.api.base_url = server.base_url
    return client


def messages_to_recipients(server: SandboxServer) -> dict[str, int]:
    client = sandbox_client(server)
    return {n: len(list(client.messages.list(to=n))) for n in recipient_numbers()}


# --- preview -------------------------------------------------------------------------------------


def test_preview_of_the_example_shows_the_masked_plan_and_estimated_totals(no_credentials: Path) -> None:
    at = open_page()
    assert not at.error
    plan = frame_with(at, "number_masked")
    assert len(plan) == len(recipient_numbers()) == 10
    assert plan["number_masked"].str.contains("•").all()
    assert "body" not in plan.columns
    assert set(plan["variant"]) == {"control", "short"}
    totals = frame_with(at, "country_name")
    assert totals["recipients"].sum() == 10
    assert {"United States (US)", "United Kingdom (GB)", "Brazil (BR)"} <= set(totals["country_name"])
    # No recipient's full number anywhere on the page (the editor holds the campaign's own text).
    shown = rendered_text(at)
    for number in members(recipient_numbers()):
        assert number not in shown, number
    labels = [m.label for m in at.metric]
    assert "Estimated cost (SMS)" in labels and "Recipients" in labels
    assert any("UCS-2" in w.value for w in at.warning)  # "código": ó is not GSM-7


def test_invalid_toml_shows_what_to_fix_without_exception(no_credentials: Path) -> None:
    at = open_page()
    at.text_area(key=EDITOR).set_value('id = "broken"\nname = "unterminated\npurpose = "x"\n').run()
    assert not at.exception
    assert any("not valid TOML" in e.value and "line 2" in e.value for e in at.error)
    assert not [df for df in at.dataframe if "number_masked" in df.value.columns]  # no preview
    at.text_area(key=EDITOR).set_value(fast_campaign("x").replace('purpose = "password_reset"', "")).run()
    assert not at.exception
    assert any("purpose" in e.value and "missing" in e.value for e in at.error)


def test_the_editor_cannot_make_the_page_show_files_outside_the_project(
    no_credentials: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The sender quotes a bad allow-list line in its error: naming a secrets file must not show it.
    outside = tmp_path_factory.mktemp("elsewhere")
    secrets = outside / "secrets.txt"
    secrets.write_text('TWILIO_AUTH_TOKEN = "s3cr3t-token-value"\n')
    at = open_page()
    for path in (str(secrets), "../.streamlit/config.toml", "../sender/api.py"):
        at.text_area(key=EDITOR).set_value(fast_campaign("peek").replace('"test_numbers.txt"', f'"{path}"')).run()
        assert not at.exception
        assert any("this page reads only .csv and .txt files inside" in e.value for e in at.error), path
        assert "s3cr3t-token-value" not in rendered_text(at)
        assert not [df for df in at.dataframe if "number_masked" in df.value.columns]
    # A .txt the page may read (inside the working folder) is located, never quoted.
    (tmp_path / "notes.txt").write_text('TWILIO_AUTH_TOKEN = "s3cr3t-token-value"\n')
    at.text_area(key=EDITOR).set_value(fast_campaign("peek").replace('"test_numbers.txt"', f'"{tmp_path / "notes.txt"}"')).run()
    assert not at.exception
    assert any("line 1" in e.value and "(value not shown)" in e.value for e in at.error), [e.value for e in at.error]
    assert "s3cr3t-token-value" not in rendered_text(at)


def test_without_credentials_sending_is_disabled_and_the_page_says_what_to_set(no_credentials: Path) -> None:
    at = open_page()
    assert any("TWILIO_ACCOUNT_SID" in w.value and "make demo" in w.value for w in at.warning)
    assert at.button(key="send_button").disabled
    assert at.checkbox[0].disabled


def test_recipients_outside_the_allow_list_cannot_be_sent_from_the_page(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "two_test_phones.txt").write_text("+15005550006\n+15005550010\n")  # a file on the server
    toml = fast_campaign("outside").replace('"test_numbers.txt"', f'"{tmp_path / "two_test_phones.txt"}"')
    at = open_page(**{EDITOR: toml})
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Not in the allow-list"] == "8"
    refusal = [e.value for e in at.error if "allow-list" in e.value]
    assert refusal and "command line" in refusal[0] and "--allow-any-number" not in refusal[0]
    assert "+447400123456" not in refusal[0]  # the lines to fix are named with masked numbers
    assert at.checkbox[0].disabled and at.button(key="send_button").disabled


def test_uploaded_campaign_with_its_recipients_is_previewed_against_a_server_allow_list(
    no_credentials: Path, tmp_path: Path
) -> None:
    (tmp_path / "phones.txt").write_text("+15005550010\n+15005550011\n")  # the allow-list lives on the server
    at = open_page()
    assert {u.key for u in at.get("file_uploader")} == {"send_upload_toml", "send_upload_csv"}  # no allow-list
    toml = fast_campaign("uploaded").replace('recipients = "recipients.csv"', 'recipients = "my_phones.csv"')
    toml = toml.replace('"test_numbers.txt"', '"phones.txt"')
    at.file_uploader(key="send_upload_toml").set_value(("uploaded.toml", toml.encode(), "application/toml"))
    at.file_uploader(key="send_upload_csv").set_value(
        ("my_phones.csv", b"number,user_id,locale\n+15005550010,qa-1,en-US\n+15005550011,qa-2,es-MX\n", "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert 'id = "uploaded"' in at.text_area(key=EDITOR).value  # the upload fills the editor
    plan = frame_with(at, "number_masked")
    assert list(plan["number_masked"]) == ["+1 5•••• ••010", "+1 5•••• ••011"]
    assert {m.label: m.value for m in at.metric}["Not in the allow-list"] == "0"
    # Without the CSV upload, the TOML's own recipients file must exist: the error says what to do.
    at.file_uploader(key="send_upload_csv").set_value(None)
    at.run()
    assert not at.exception
    assert any("my_phones.csv" in e.value and "upload it" in e.value for e in at.error), [e.value for e in at.error]


def test_editing_the_campaign_after_confirming_asks_for_a_fresh_confirmation(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 28 + "1234")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-a-real-token-0123456789")
    monkeypatch.delenv("SWITCHBOARD_TWILIO_BASE_URL", raising=False)
    monkeypatch.setenv("SWITCHBOARD_WEB_SEND", "1")
    at = open_page()
    assert any("Real Twilio (account AC…1234)" in w.value for w in at.warning)
    at.checkbox[0].check().run()
    assert not at.button(key="send_button").disabled
    edited = at.text_area(key=EDITOR).value.replace("Reset code: 482913 (10 min)", "Code 482913, valid 10 min")
    at.text_area(key=EDITOR).set_value(edited).run()
    assert not at.exception
    assert not at.checkbox[0].value and at.button(key="send_button").disabled
    assert "not-a-real-token" not in rendered_text(at, skip_editor=False)


# --- sending to the sandbox ----------------------------------------------------------------------


def test_confirm_and_send_creates_messages_once_and_writes_the_send_log(
    sandbox: SandboxServer, no_credentials: Path
) -> None:
    before = messages_to_recipients(sandbox)
    at = open_page(**{EDITOR: fast_campaign("page-rehearsal")})
    assert any(f"Sandbox at {sandbox.base_url}" in i.value for i in at.info)
    assert at.button(key="send_button").disabled  # not confirmed yet
    at.checkbox[0].check().run()
    assert not at.button(key="send_button").disabled
    at.button(key="send_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]

    after = messages_to_recipients(sandbox)
    created = {n: after[n] - before[n] for n in after}
    refused = {"+15005550001", "+15005550004", "+15005550009"}  # 21211, 21610, 21614: nothing created
    assert all(created[n] == 1 for n in created if n not in refused), created
    assert all(created[n] == 0 for n in refused), created

    records = [json.loads(line) for line in send_log_path(no_credentials, "page-rehearsal").read_text().splitlines()]
    sms = [r for r in records if r["channel"] == "sms"]
    assert len(sms) == 10 and {r["campaign_id"] for r in records} == {"page-rehearsal"}
    assert any(r["channel"] == "voice" and r["fallback_of"] for r in records)  # 21614: the landline is called

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["SMS sent"] == "7" and metrics["SMS failed"] == "3"
    failed = frame_with(at, "error")
    assert set(failed["code"]) == {21211, 21610, 21614}
    shown = rendered_text(at, skip_editor=False)
    assert sandbox.auth_token not in shown
    assert sandbox.account_sid not in shown
    for number in members(recipient_numbers()):
        assert number not in rendered_text(at), number
    assert "switchboard ingest" in shown
    assert "campaign_id=page-rehearsal" in shown  # the results link's query string

    # A rerun and a second click send nothing new: the ledger already has every send.
    at.run()
    assert any("10 of 10 recipients" in i.value for i in at.info)  # the page says the id has run already
    assert "sends 0 messages" in at.checkbox[0].label
    if not at.checkbox[0].value:
        at.checkbox[0].check().run()
    at.button(key="send_button").click().run()
    assert not at.exception
    assert messages_to_recipients(sandbox) == after
    assert any("already done by an earlier run" in i.value for i in at.info)
    records_again = send_log_path(no_credentials, "page-rehearsal").read_text().splitlines()
    assert len(records_again) == len(records)
    assert api.campaign_progress(no_credentials, "page-rehearsal")["state"].isin(["logged", "sent", "failed"]).all()


# --- the web is not a way to text anyone (issue 13) -----------------------------------------------


def test_sending_from_the_web_is_off_unless_the_server_switches_it_on(
    sandbox: SandboxServer, no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWITCHBOARD_WEB_SEND")  # credentials work, but the server did not say yes
    before = messages_to_recipients(sandbox)
    at = open_page(**{EDITOR: fast_campaign("web-off")})
    assert any("SWITCHBOARD_WEB_SEND=1" in i.value and "switched off" in i.value for i in at.info)
    assert at.checkbox[0].disabled and at.button(key="send_button").disabled
    assert frame_with(at, "number_masked") is not None  # the preview (dry run) still works
    # The rule holds below the page too: the API the page calls refuses.
    campaign = api.load_campaign(EXAMPLE)
    with pytest.raises(api.WebSendingDisabled, match="SWITCHBOARD_WEB_SEND=1"):
        api.send_from_web(campaign, api.web_target(), data_dir=no_credentials)
    monkeypatch.setenv("SWITCHBOARD_WEB_SEND", "0")
    assert not api.web_target().enabled
    assert messages_to_recipients(sandbox) == before


def test_the_web_never_offers_any_number_and_an_uploaded_allow_list_never_counts(
    sandbox: SandboxServer, no_credentials: Path
) -> None:
    at = open_page(**{EDITOR: fast_campaign("web-rules")})
    widgets = [w for kind in ("checkbox", "toggle", "button", "file_uploader", "radio", "selectbox")
               for w in at.get(kind)]
    labels = " ".join(str(getattr(w, "label", "")) for w in widgets).lower()
    assert "any number" not in labels and "allow-any" not in labels
    assert "send_upload_allow" not in {getattr(w, "key", None) for w in widgets}
    # Below the page: an allow-list given as text (what an upload would be) never counts, and nothing
    # outside the server's allow-list is sent, whatever the caller asks.
    numbers = "+15005550010\n+15005550011\n"
    recipients = "number,user_id,locale\n+15005550010,u1,en\n+15005550011,u2,en\n"
    uploaded = api.load_campaign(fast_campaign("web-upload"), base_dir=EXAMPLE.parent,
                                 recipients_text=recipients, allow_list_text=numbers)
    target = api.web_target()
    assert target.can_send
    with pytest.raises(api.UnsafeCampaign, match="uploaded allow-list does not count"):
        api.send_from_web(uploaded, target, data_dir=no_credentials)
    outside = api.load_campaign(fast_campaign("web-outside"), base_dir=EXAMPLE.parent,
                                recipients_text=recipients.replace("+15005550011", "+447700900123"))
    with pytest.raises(api.UnsafeCampaign, match="not in the allow-list"):
        api.send_from_web(outside, target, data_dir=no_credentials)
    assert not any(m["to"] == "+447700900123" for m in sandbox.messages.live)


def test_a_base_url_with_credentials_is_shown_redacted(
    sandbox: SandboxServer, no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = sandbox.base_url.split("://", 1)[1]
    leaky = f"http://{sandbox.account_sid}:{sandbox.auth_token}@{host}"
    monkeypatch.setenv("SWITCHBOARD_TWILIO_BASE_URL", leaky)
    at = open_page(**{EDITOR: fast_campaign("redact")})
    shown = rendered_text(at, skip_editor=False)
    assert f"Sandbox at http://***@{host}" in shown
    assert sandbox.auth_token not in shown and sandbox.account_sid not in shown
    assert f"via Sandbox at http://***@{host}" in at.checkbox[0].label
    for printed in (str(api.web_target()), repr(api.web_target().credentials)):  # a stray log line
        assert sandbox.auth_token not in printed and f"http://***@{host}" in printed
    assert api.safe_text(f"failed at {leaky}/x for +447700900123") == f"failed at http://***@{host}/x for +44 7•••• ••123"


def _imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("switchboard.")}


def test_the_page_calls_only_sender_api_and_the_sender_only_core() -> None:
    """Issue 14: the Send page's sender code lives behind sender.api; the sender imports nothing sideways."""
    root = Path(__file__).resolve().parents[1]
    page = _imports(root / "dashboard" / "app_pages" / "send_campaign.py")
    sender_uses = {n for n in page if n.startswith("switchboard.sender")}
    assert sender_uses and all(n.startswith(("switchboard.sender.api", "switchboard.sender.api.")) for n in sender_uses
                               ), sender_uses
    for module in sorted((root / "sender").glob("*.py")):
        upward = {n for n in _imports(module) if not n.startswith(("switchboard.core", "switchboard.sender"))}
        assert not upward, f"{module.name} imports {upward}"
