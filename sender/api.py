"""What the dashboard's "Send test campaign" page (and any script) calls. No Streamlit here.

Typical use::

    campaign = load_campaign("examples/campaign.toml")      # or the TOML text from an editor
    preview = preview_campaign(campaign)                     # plan, totals per country, safety
    client = client_from_env()                               # TWILIO_* and SWITCHBOARD_TWILIO_BASE_URL
    result = run_campaign(campaign, client, data_dir="data", progress_callback=cb)
    result.summary(); result.to_frame()

Every function here either returns data or raises one of the errors in ``USER_ERRORS``,
whose message says what to fix (file, field, line) and is safe to show: no credentials,
no full phone numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from twilio.rest import Client

from switchboard.sender import planning, suppression
from switchboard.sender.campaign import Campaign, CampaignError, load_campaign_text
from switchboard.sender.campaign import load_campaign as _load_campaign_file
from switchboard.sender.ledger import Ledger, LedgerBusy, ledger_path
from switchboard.sender.runner import (
    CampaignResult,
    RunOptions,
    SendAborted,
    SendOutcome,
    UnsafeCampaign,
    check_safety,
)
from switchboard.sender.runner import run_campaign as _run_campaign
from switchboard.sender.sendlog import send_log_path
from switchboard.sender.transport import Credentials, CredentialsMissing, credentials_from_env, make_client
from switchboard.sender.web import (
    Target,
    WebSendingDisabled,
    already_sent,
    problem_lines,
    refused_files,
    safe_text,
    send_from_web,
    web_safety_problem,
    web_target,
)

__all__ = [
    "USER_ERRORS",
    "Campaign",
    "CampaignError",
    "CampaignPreview",
    "CampaignResult",
    "CredentialsMissing",
    "LedgerBusy",
    "SendAborted",
    "SendOutcome",
    "Target",
    "UnsafeCampaign",
    "WebSendingDisabled",
    "already_sent",
    "campaign_progress",
    "check_safety",
    "client_for",
    "client_from_env",
    "dashboard_filters",
    "load_campaign",
    "opted_out_recipients",
    "plan",
    "plan_totals",
    "preview_campaign",
    "problem_lines",
    "refused_files",
    "results_filter_extra",
    "run_campaign",
    "safe_text",
    "send_from_web",
    "web_safety_problem",
    "web_target",
]

# Errors a user can fix; their messages are complete sentences meant to be shown as they are.
USER_ERRORS: tuple[type[Exception], ...] = (
    CampaignError,
    UnsafeCampaign,
    LedgerBusy,
    CredentialsMissing,
    SendAborted,
)


def load_campaign(
    source: str | Path,
    *,
    base_dir: str | Path | None = None,
    recipients_text: str | None = None,
    allow_list_text: str | None = None,
) -> Campaign:
    """A campaign from a TOML file path, or from TOML text (the dashboard's editor).

    A ``Path``, or a one-line string naming an existing file, is read as a file; anything
    else is TOML text whose relative paths resolve against ``base_dir`` (default: cwd).
    ``recipients_text`` / ``allow_list_text`` override the files the TOML names (uploads).
    """
    # TOML text always has an "=": a one-line string without one is a path (a mistyped one then
    # gets "file not found" rather than a puzzling TOML error).
    is_path = isinstance(source, Path) or ("\n" not in source and "=" not in source)
    if is_path and recipients_text is None and allow_list_text is None:
        return _load_campaign_file(source)
    if is_path:
        path = Path(source)
        return load_campaign_text(
            path.read_text(encoding="utf-8"),
            base_dir=base_dir or path.resolve().parent,
            source=str(path),
            recipients_text=recipients_text,
            allow_list_text=allow_list_text,
        )
    return load_campaign_text(
        str(source),
        base_dir=base_dir or Path.cwd(),
        source="campaign.toml",
        recipients_text=recipients_text,
        allow_list_text=allow_list_text,
    )


def plan(campaign: Campaign, opted_out: frozenset[str] = frozenset()) -> pd.DataFrame:
    """One row per recipient; columns ``planning.PLAN_COLUMNS`` (numbers masked, cost an estimate;
    ``opted_out`` true for the numbers given, see ``opted_out_recipients``)."""
    return planning.plan(campaign, opted_out)


def opted_out_recipients(campaign: Campaign, data_dir: str | Path | None = None) -> suppression.Suppression:
    """The campaign's recipients who opted out of its sender, per the published warehouse in ``data_dir``
    (default: the settings' data directory). Empty, with a ``note``, when there is no warehouse to ask."""
    if data_dir is None:
        from switchboard.core.settings import Settings

        data_dir = Settings.from_env().data_dir
    return suppression.opted_out(data_dir, campaign)


def plan_totals(plan_frame: pd.DataFrame) -> pd.DataFrame:
    """Per country: recipients, segments, estimated_cost_usd, price_known."""
    return planning.plan_totals(plan_frame)


@dataclass(frozen=True)
class CampaignPreview:
    """Everything the preview/confirmation step shows before anything is sent."""

    campaign_id: str
    name: str
    sender: str
    plan: pd.DataFrame
    totals: pd.DataFrame
    recipients: int
    estimated_cost_usd: float  # an estimate: SMS only, from sender.prices
    outside_allow_list: int  # recipients that need --allow-any-number and a confirmation
    variant_counts: dict[str, int]
    fallback_after_seconds: float | None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    opted_out: int = 0  # recipients who opted out of the sender (per the warehouse): not sent
    opted_out_note: str | None = None  # why opt-outs could not be checked, when so

    @property
    def opted_out_line(self) -> str | None:
        """"3 recipients have opted out: not sent", or why nobody could be checked; None when all is clear."""
        if self.opted_out:
            one = self.opted_out == 1
            return f"{self.opted_out} recipient{'' if one else 's'} {'has' if one else 'have'} opted out: not sent"
        return self.opted_out_note

    @property
    def needs_confirmation(self) -> bool:
        return self.outside_allow_list > 0


def preview_campaign(campaign: Campaign, *, data_dir: str | Path | None = None,
                     opted_out: suppression.Suppression | None = None) -> CampaignPreview:
    """The plan and its totals; recipients who opted out (``opted_out``, or read from the warehouse in
    ``data_dir``) are marked and not counted in the cost."""
    found = opted_out if opted_out is not None else opted_out_recipients(campaign, data_dir)
    frame = plan(campaign, found.numbers)
    sendable = frame[~frame["opted_out"]] if len(frame) else frame
    return CampaignPreview(
        campaign_id=campaign.id,
        name=campaign.name,
        sender=campaign.sender,
        plan=frame,
        totals=plan_totals(sendable),
        recipients=len(frame),
        estimated_cost_usd=round(float(sendable["estimated_cost_usd"].sum()), 4) if len(sendable) else 0.0,
        outside_allow_list=len(campaign.outside_allow_list()),
        variant_counts={str(k): int(v) for k, v in frame["variant"].value_counts().sort_index().items()},
        fallback_after_seconds=campaign.fallback.after_seconds if campaign.fallback else None,
        warnings=campaign.warnings,
        opted_out=len(found),
        opted_out_note=found.note,
    )


def client_from_env() -> Client:
    """A Twilio client from ``TWILIO_*`` (and ``SWITCHBOARD_TWILIO_BASE_URL`` for the sandbox)."""
    return make_client(credentials_from_env())


def client_for(
    account_sid: str, secret: str, *, api_key: str | None = None, base_url: str | None = None
) -> Client:
    """A Twilio client from explicit credentials (e.g. the dashboard's ``st.secrets``); 429s retried."""
    return make_client(Credentials(account_sid, secret, api_key=api_key, base_url=base_url))


def run_campaign(
    campaign: Campaign,
    client: Client,
    *,
    data_dir: str | Path,
    progress_callback: Callable[[SendOutcome, int, int], None] | None = None,
    allow_any_number: bool = False,
    include_opted_out: bool = False,
    options: RunOptions | None = None,
) -> CampaignResult:
    """Send the campaign (resuming any earlier run of the same id). ``allow_any_number`` means the user
    confirmed sending outside the allow-list. Recipients who opted out of the sender (per the warehouse in
    ``data_dir``) are skipped unless ``include_opted_out`` (the user confirmed it; Twilio itself refuses a
    number opted out of that sender with 21610). ``progress_callback(outcome, done, total)`` after each send."""
    from dataclasses import replace

    if options is None:
        options = RunOptions(allow_any_number=allow_any_number)
    elif allow_any_number and not options.allow_any_number:
        options = replace(options, allow_any_number=True)
    if not include_opted_out:
        options = replace(options, suppressed=options.suppressed | opted_out_recipients(campaign, data_dir).numbers)
    return _run_campaign(
        campaign, client, data_dir=data_dir, progress_callback=progress_callback, options=options
    )


def campaign_progress(data_dir: str | Path, campaign_id: str) -> pd.DataFrame:
    """The ledger of a campaign (running or finished), read-only, numbers masked: for a progress view."""
    path = ledger_path(data_dir, campaign_id)
    columns = [
        "user_id",
        "step",
        "state",
        "status",
        "error_code",
        "error_name",
        "provider_sid",
        "recovered",
        "number_masked",
        "intent_at",
        "done_at",
    ]
    if not path.exists():
        return pd.DataFrame(columns=columns)
    ledger = Ledger.open_readonly(path)
    try:
        rows = ledger.as_dicts()
    finally:
        ledger.close()
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["number_masked"] = frame["to_number"].map(planning.mask_number)
    return frame[columns]


def dashboard_filters(campaign_id: str) -> dict[str, str]:
    """Query parameters that open the dashboard's pages filtered to this campaign."""
    return {"campaign_id": campaign_id}


def results_filter_extra(campaign_id: str) -> tuple[tuple[str, str], ...]:
    """The ``extra`` of the analytics filter for this campaign's results: ``Filters(extra=...)``.

    Plain data, so the sender imports nothing above ``core``; the dashboard builds the filter."""
    return (("campaign_id", campaign_id),)


def paths(data_dir: str | Path, campaign_id: str) -> dict[str, Path]:
    return {"send_log": send_log_path(data_dir, campaign_id), "ledger": ledger_path(data_dir, campaign_id)}
