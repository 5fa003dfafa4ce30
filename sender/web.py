"""The server's rules for the dashboard's Send page: what a browser may make this server send.

Anyone who can open the dashboard can use its Send page, with the server's Twilio
credentials. So the web gets less than the command line, and the rules live here (behind
``sender.api``), not in the page:

* **Off unless the server says so.** Sending from the web needs ``SWITCHBOARD_WEB_SEND=1``
  (``Settings.web_send``) in the dashboard server's own environment; the default is off. The
  demo turns it on for its local sandbox. The preview (the dry run) is always available.
* **Only allow-lists that live on the server count.** The campaign's allow-list must be a file
  on the server that the campaign names (``Campaign.allow_list_path``); text a browser uploaded
  never counts, so an upload cannot widen who may receive.
* **Never any number.** ``send_from_web`` always refuses recipients outside the allow-list;
  the ``--allow-any-number`` override exists only on the command line.
* **Files the page may read** (``refused_files``): ``.csv``/``.txt`` inside the working folder or
  the packaged examples, outside hidden folders and the data folder, because the loader quotes a
  bad line of a file in its error and a TOML naming a secrets file must not show it.
* **A server file's content is never quoted** (``problem_lines``): its bad lines are named by file,
  line and field only.
* **Nothing secret is shown** (``safe_text``): numbers masked, the token blanked, the account SID
  shortened, and credentials in a URL's userinfo removed (``Target.label``, every message).
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from switchboard.core.phones import mask_text
from switchboard.core.settings import Settings
from switchboard.core.twilio import redact_text, redact_url
from switchboard.sender.campaign import Campaign, CampaignError
from switchboard.sender.ledger import Ledger, ledger_path
from switchboard.sender.runner import CampaignResult, RunOptions, SendOutcome, UnsafeCampaign, check_safety
from switchboard.sender.runner import run_campaign as _run_campaign
from switchboard.sender.suppression import opted_out
from switchboard.sender.transport import (
    BASE_URL_ENV,
    Credentials,
    CredentialsMissing,
    credentials_from_env,
    describe_account,
    make_client,
)

__all__ = [
    "READABLE_SUFFIXES",
    "WEB_SEND_ENV",
    "Target",
    "WebSendingDisabled",
    "already_sent",
    "problem_lines",
    "refused_files",
    "safe_text",
    "send_from_web",
    "web_safety_problem",
    "web_target",
]

log = logging.getLogger(__name__)
WEB_SEND_ENV = "SWITCHBOARD_WEB_SEND"
READABLE_SUFFIXES = (".csv", ".txt")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+)")


class WebSendingDisabled(UnsafeCampaign):
    """This server does not send from the web; the message says which setting switches it on."""


@dataclass(frozen=True)
class Target:
    """Where the page would send, and whether this server lets the web send at all."""

    credentials: Credentials | None
    enabled: bool  # the server's own configuration allows sending from the web
    problem: str | None = None  # why there are no credentials

    @property
    def label(self) -> str:
        if self.credentials is None:
            return "nowhere (no Twilio credentials)"
        if self.credentials.base_url:
            return f"Sandbox at {redact_url(self.credentials.base_url)}"
        return f"Real Twilio (account {describe_account(self.credentials.account_sid)})"

    @property
    def can_send(self) -> bool:
        return self.enabled and self.credentials is not None

    @property
    def disabled_reason(self) -> str:
        return (
            f"Sending from the web is switched off on this server. An administrator switches it on in the "
            f"dashboard server's environment with `{WEB_SEND_ENV}=1`; until then, send from the command line "
            "(`switchboard send CAMPAIGN.toml --send`). The preview works either way."
        )


def web_target(settings: Settings | None = None) -> Target:
    """Credentials as ``switchboard send`` finds them, and the server's web-send switch."""
    enabled = (settings or Settings.from_env()).web_send
    try:
        return Target(credentials_from_env(), enabled)
    except CredentialsMissing:
        return Target(
            None,
            enabled,
            "No Twilio credentials: sending is disabled. Set `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN` (or "
            "`TWILIO_API_KEY` and `TWILIO_API_SECRET`) in the environment of the dashboard, or in "
            f"`.streamlit/secrets.toml`; for the local sandbox also `{BASE_URL_ENV}=http://127.0.0.1:PORT`. "
            "`make demo` sets all three for the sandbox.",
        )


def safe_text(text: str, target: Target | None = None) -> str:
    """A message fit for the page: numbers masked, URL credentials removed, the secret blanked."""
    # URLs lose their userinfo (core's one rule) and are not masked (a host or port is not a phone number).
    parts = _URL.split(text)
    text = "".join(redact_text(p) if i % 2 else mask_text(p) for i, p in enumerate(parts))
    if target is not None and target.credentials is not None:
        for secret in (target.credentials.secret, target.credentials.account_sid):
            if secret:
                text = text.replace(secret, describe_account(secret) if secret.startswith("AC") else "•••")
    return text


_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def problem_lines(err: CampaignError, target: Target | None = None, *, toml_source: str = "campaign.toml") -> list[str]:
    """The campaign's problems for the page. Values are quoted only from the campaign text itself: a bad
    line of a file on the server is located (file, line, field) but not shown, so naming a file in the
    editor is no way to read it."""
    lines = []
    for problem in err.problems:
        text = str(problem)
        if problem.file != toml_source:
            text = _QUOTED.sub("(value not shown)", text)
        lines.append(safe_text(text, target))
    return lines


def refused_files(text: str, base_dir: Path, *, roots: list[Path], uploaded: dict[str, bool]) -> list[str]:
    """Files the TOML names that the page refuses to open, each with the reason (see the module doc)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []  # the loader reports the TOML error itself, and reads nothing
    allowed = [r.resolve() for r in roots]
    data_dir = Settings.from_env().data_dir.resolve()
    refused = []
    for key in ("recipients", "allow_list"):
        name = data.get(key)
        if uploaded.get(key) or not isinstance(name, str) or not name.strip():
            continue
        path = (base_dir / name.strip()).resolve()
        root = next((r for r in allowed if path.is_relative_to(r)), None)
        inside = root is not None and not path.is_relative_to(data_dir)
        hidden = inside and any(part.startswith(".") for part in path.relative_to(root).parts)  # type: ignore[arg-type]
        if not inside or hidden or path.suffix.lower() not in READABLE_SUFFIXES:
            refused.append(
                f"`{key} = \"{name.strip()}\"`: this page reads only .csv and .txt files inside "
                f"`{allowed[0]}` (not hidden folders or the data folder)"
                + ("; upload the file above instead" if key == "recipients" else "")
            )
    return refused


def web_safety_problem(campaign: Campaign) -> str | None:
    """Why the web may not send this campaign (allow-list from an upload, numbers outside it), or None."""
    if campaign.allow_list_path is None:
        return ("the allow-list must be a file on this server that the campaign names (`allow_list = ...`); "
                "an uploaded allow-list does not count")
    try:
        check_safety(campaign, allow_any_number=False)
    except UnsafeCampaign as err:
        return safe_text(str(err)).replace(", or pass --allow-any-number and confirm", "")
    return None


def already_sent(data_dir: str | Path, campaign: Campaign) -> int:
    """Recipients of this campaign whose SMS an earlier run already sent (or saw refused)."""
    path = ledger_path(data_dir, campaign.id)
    if not path.exists():
        return 0
    try:
        ledger = Ledger.open_readonly(path)
        try:
            done = {r["user_id"] for r in ledger.as_dicts() if r["step"] == "sms" and r["state"] != "intent"}
        finally:
            ledger.close()
    except Exception:  # a ledger being written or unreadable: the run itself will tell
        log.warning("ledger of %s unreadable", campaign.id, exc_info=True)
        return 0
    return len({r.user_id for r in campaign.recipients} & done)


def send_from_web(
    campaign: Campaign,
    target: Target,
    *,
    data_dir: str | Path,
    progress_callback: Callable[[SendOutcome, int, int], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> CampaignResult:
    """Send (or resume) the campaign for the Send page, under the web's rules; never any number."""
    if not target.enabled:
        raise WebSendingDisabled(target.disabled_reason)
    if target.credentials is None:
        raise CredentialsMissing(target.problem or "no Twilio credentials")
    problem = web_safety_problem(campaign)
    if problem:
        raise UnsafeCampaign(f"Not sendable from the web: {problem}.")
    client = make_client(target.credentials)
    # Never to a recipient who opted out of the sender (issue 18): the web has no override.
    skip = opted_out(data_dir, campaign).numbers
    options = RunOptions(allow_any_number=False, on_status=on_status, suppressed=skip)
    return _run_campaign(campaign, client, data_dir=data_dir, progress_callback=progress_callback, options=options)

