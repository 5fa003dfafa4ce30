"""Send test campaign: what ``switchboard send`` does, with a preview and a confirmation step.

The page only calls ``sender.api`` (load, preview, the web's sending rules, send) and draws;
the rules themselves live in ``sender/web.py``. The preview is the dry run and always comes
first. Sending needs the server's own switch (``SWITCHBOARD_WEB_SEND=1``, off by default; the
demo turns it on), working credentials, a campaign whose recipients are all in an allow-list
*file on the server* (an upload never counts), a ticked confirmation and a click. The page
never offers ``--allow-any-number``. Phone numbers are shown masked; the Twilio token is never
shown, the account SID only as ``AC…1234``, and a URL's userinfo credentials are removed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from switchboard.core.resources import package_dir
from switchboard.core.segments import segment_info
from switchboard.core.settings import Settings
from switchboard.dashboard import components as ui
from switchboard.sender import api
from switchboard.sender.api import Campaign, SendOutcome, Target

_log = logging.getLogger(__name__)

# Relative paths in a campaign resolve against the folder the dashboard was started from (as on the
# command line); the example campaign ships inside the package (switchboard.examples).
WORK_DIR = Path.cwd()
EXAMPLES = package_dir("switchboard.examples")
EXAMPLE_TOML = EXAMPLES / "campaign.toml"
OVERVIEW_PAGE = "app_pages/overview.py"
EXPERIMENTS_PAGE = "app_pages/experiments.py"
EDITOR_KEY = "send_campaign_toml"
SOURCE_KEY = "send_campaign_source"  # "example" or the name of the uploaded TOML
UPLOAD_ID_KEY = "send_campaign_upload_id"
RESULT_KEY = "send_campaign_result"


# --- reading the campaign ------------------------------------------------------------------------


def _example_text() -> str:
    try:
        return EXAMPLE_TOML.read_text(encoding="utf-8")
    except OSError:
        return ""


def _uploaded_text(upload: Any) -> tuple[str | None, str | None]:
    """(text, problem): an uploaded file as UTF-8 text."""
    if upload is None:
        return None, None
    try:
        return upload.getvalue().decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return None, f"`{upload.name}` is not UTF-8 text: save it as UTF-8 (CSV UTF-8 in Excel) and upload it again."


def _uploads() -> tuple[str | None, Any]:
    """The upload widgets: a campaign TOML (put into the editor) and a recipients CSV; (recipients text, file).

    There is no allow-list upload: only an allow-list file that lives on this server counts (sender/web.py)."""
    with st.expander("Upload a campaign instead", expanded=False, icon=":material/upload_file:"):
        st.caption("An uploaded TOML replaces the text in the editor below (you can still edit it there). "
                   "Upload the recipients CSV too unless the file the TOML names exists under "
                   f"`{WORK_DIR}`. The allow-list is always a file on this server that the TOML names.")
        cols = st.columns(2)
        with cols[0]:
            toml_file = st.file_uploader("Campaign TOML", type=["toml"], key="send_upload_toml")
        with cols[1]:
            csv_file = st.file_uploader("Recipients CSV (number, user_id, locale)", type=["csv", "txt"],
                                        key="send_upload_csv")
    toml_text, problem = _uploaded_text(toml_file)
    if problem:
        st.error(problem)
    elif toml_file is not None and toml_text is not None and st.session_state.get(UPLOAD_ID_KEY) != toml_file.file_id:
        # A new upload: put it in the editor (before the editor widget is created in this run).
        st.session_state[UPLOAD_ID_KEY] = toml_file.file_id
        st.session_state[EDITOR_KEY] = toml_text
        st.session_state[SOURCE_KEY] = toml_file.name
    recipients_text, problem = _uploaded_text(csv_file)
    if problem:
        st.error(problem)
    return recipients_text, csv_file


def _campaign_source() -> tuple[str, Path, str | None]:
    """The editor's TOML, the folder its relative paths resolve against, and uploaded recipients."""
    st.session_state.setdefault(EDITOR_KEY, _example_text())
    st.session_state.setdefault(SOURCE_KEY, "example")
    recipients_text, csv_file = _uploads()
    from_example = st.session_state[SOURCE_KEY] == "example"
    base_dir = EXAMPLES if from_example else WORK_DIR
    label = ("Campaign (TOML): the example campaign, edit it freely" if from_example
             else f"Campaign (TOML) from `{st.session_state[SOURCE_KEY]}`")
    text = st.text_area(label, key=EDITOR_KEY, height=320,
                        help="The settings are documented in examples/campaign.toml. Nothing is sent until you "
                             "confirm below.")
    left, right = st.columns([3, 1])
    with left:
        used = (f"uploaded recipients `{csv_file.name}`" if csv_file is not None and recipients_text is not None
                else "the recipients file the TOML names")
        st.caption(f"Using {used} and the allow-list file the TOML names; relative paths resolve against "
                   f"`{base_dir}`.")
    with right:
        if not from_example and st.button("Back to the example", key="send_reset_example"):
            st.session_state[SOURCE_KEY] = "example"
            st.session_state.pop(EDITOR_KEY, None)
            st.rerun()
    return text, base_dir, recipients_text


def _load(text: str, base_dir: Path, recipients_text: str | None, target: Target) -> Campaign | None:
    """The campaign, or None after showing what to fix (never a traceback)."""
    if not text.strip():
        st.error("The campaign is empty: paste a campaign TOML, upload one, or reload the page for the example.")
        return None
    refused = api.refused_files(text, base_dir, roots=[WORK_DIR, EXAMPLES],
                                uploaded={"recipients": recipients_text is not None})
    if refused:
        st.error("**Fix the campaign before it can be previewed:**\n\n" + "\n".join(f"- {r}" for r in refused),
                 icon=":material/folder_off:")
        return None
    try:
        return api.load_campaign(text, base_dir=base_dir, recipients_text=recipients_text)
    except api.CampaignError as err:
        lines = [f"- {line}" for line in api.problem_lines(err, target)]
        hint = ""
        if any("not found" in p.message.lower() or "no such file" in p.message.lower() for p in err.problems):
            hint = "\n\nA file the TOML names is missing: upload it above, or fix its path."
        st.error("**Fix the campaign before it can be previewed:**\n\n" + "\n".join(lines) + hint,
                 icon=":material/edit_note:")
    except api.USER_ERRORS as err:
        st.error(api.safe_text(str(err), target))
    except Exception as err:  # noqa: BLE001 - a broken campaign must not take the page down
        _log.exception("loading the campaign failed")
        st.error(f"The campaign could not be read ({type(err).__name__}). Check the TOML and the files it "
                 "names; the server log has the details.")
    return None


# --- the preview ---------------------------------------------------------------------------------


def _country_name(iso2: Any) -> str:
    if not isinstance(iso2, str) or not iso2:
        return "unknown"
    try:
        import pycountry

        found = pycountry.countries.get(alpha_2=iso2)
    except (ImportError, LookupError, KeyError):
        found = None
    return f"{found.name} ({iso2})" if found is not None else iso2


def _show_preview(campaign: Campaign, preview: api.CampaignPreview) -> None:
    st.subheader(f"Preview: {preview.name}")
    st.caption(f"Campaign id `{preview.campaign_id}` · purpose `{campaign.purpose}` · experiment "
               f"`{campaign.experiment_id}` · from `{preview.sender}` · rate limit {campaign.rate_limit:g}/s. "
               "This is the dry run: nothing has been sent.")
    cols = st.columns(4)
    with cols[0]:
        st.metric("Recipients", f"{preview.recipients:,}", border=True)
    with cols[1]:
        st.metric("Segments", f"{int(preview.plan['segments'].sum()):,}", border=True,
                  help="SMS segments in total; each is billed.")
    with cols[2]:
        st.metric("Estimated cost (SMS)", ui.usd(preview.estimated_cost_usd), border=True,
                  help="An estimate from a static price table, SMS only (fallback calls not included). "
                       "Twilio's bill is the truth.")
    with cols[3]:
        st.metric("Not in the allow-list", f"{preview.outside_allow_list:,}", border=True,
                  help="Recipients whose number is not in the campaign's allow-list of test numbers.")
    variants = ", ".join(f"{name}: {n}" for name, n in preview.variant_counts.items())
    fallback = (f" Voice fallback: a call reads the message when the SMS is not delivered within "
                f"{preview.fallback_after_seconds:g} s." if preview.fallback_after_seconds is not None else "")
    st.markdown(f"**Variants:** {variants}.{fallback}")
    for warning in preview.warnings:
        st.warning(ui.mask_text(warning))
    if preview.opted_out:  # issue 18: members who replied STOP to this sender (per the warehouse)
        st.warning(f"{preview.opted_out_line} (the plan's opted_out column). The Send page never texts them.",
                   icon=":material/do_not_disturb_on:")
    elif preview.opted_out_line:
        st.caption(preview.opted_out_line)
    _show_encoding_advice(campaign)

    st.markdown("**Plan per recipient** (numbers masked)")
    ui.table(ui.privacy(preview.plan), key="send_plan", height=min(600, 38 + 35 * max(1, preview.recipients)),
             columns={
                 "user_id": "User",
                 "number_masked": "Number (masked)",
                 "country": "Country",
                 "locale": "Locale",
                 "language": "Body language",
                 "variant": "Variant",
                 "template_id": "Template",
                 "encoding": "Encoding",
                 "segments": ui.count_column("Segments"),
                 "estimated_cost_usd": ui.money_column("Estimated cost", "Estimate from a static price table.",
                                                       precise=True),
                 "allowed": st.column_config.CheckboxColumn("In allow-list"),
                 "say_language": "Fallback voice",
             })

    st.markdown("**Per country** (cost is an estimate)")
    totals = preview.totals.assign(country_name=preview.totals["country"].map(_country_name))
    ui.table(totals, key="send_totals", columns={
        "country_name": "Country",
        "recipients": ui.count_column("Messages"),
        "segments": ui.count_column("Segments"),
        "estimated_cost_usd": ui.money_column("Estimated cost", "SMS only, from a static price table.",
                                              precise=True),
        "price_known": st.column_config.CheckboxColumn(
            "Price known", help="Unticked: the country is not in the price table; its cost is a guess."),
    })


def _show_encoding_advice(campaign: Campaign) -> None:
    """Each variant body's encoding and segments; a warning for bodies that are UCS-2 or could be cheaper."""
    rows = []
    for variant in campaign.variants:
        for language, body in variant.bodies.items():
            info = segment_info(body)
            rows.append({"variant": variant.name, "language": language, "template_id": variant.template_id,
                         "body": body, "encoding": info.encoding, "segments": info.segments,
                         "advice": info.advice, "gsm7": info.is_gsm7})
    bodies = pd.DataFrame(rows)
    ucs2 = [f"- **{r['variant']}** ({r['language']}): {r['segments']} segment(s). {r['advice']}"
            for r in rows if not r["gsm7"]]
    if ucs2:
        st.warning("Some bodies are sent as UCS-2 (70 characters a segment instead of 160):\n\n" + "\n".join(ucs2),
                   icon=":material/translate:")
    with st.expander("Message bodies by variant and language", expanded=False):
        # The campaign's own template text, not anything sent: fine to show.
        st.dataframe(bodies.drop(columns=["gsm7"]), hide_index=True, key="send_bodies", column_config={
            "variant": "Variant", "language": "Language", "template_id": "Template", "body": "Body",
            "encoding": "Encoding", "segments": "Segments", "advice": "Advice"})


# --- where it would go ---------------------------------------------------------------------------


def _show_target(target: Target) -> None:
    if target.credentials is None:
        st.warning(target.problem, icon=":material/key_off:")
    elif target.credentials.base_url:
        st.info(f"Target: **{target.label}** (the local simulated Twilio: nobody's phone rings).",
                icon=":material/science:")
    else:
        st.warning(f"Target: **{target.label}**. Messages go to real phones and are billed.",
                   icon=":material/cell_tower:")
    if not target.enabled:
        st.info(target.disabled_reason, icon=":material/lock:")


# --- sending -------------------------------------------------------------------------------------


def _send(campaign: Campaign, preview: api.CampaignPreview, target: Target) -> None:
    bar = st.progress(0.0, text=f"Sending {preview.recipients} messages to {target.label}…")
    status = st.empty()

    def progress(outcome: SendOutcome, done: int, total: int) -> None:
        what = "fallback call to" if outcome.step == "voice" else "SMS to"
        bar.progress(min(1.0, done / total) if total else 1.0,
                     text=f"{done} of {total} SMS · last: {what} {outcome.number_masked} ({outcome.state})")

    def note(text: str) -> None:
        status.caption(api.safe_text(text, target))

    try:
        result = api.send_from_web(campaign, target, data_dir=Settings.from_env().data_dir,
                                   progress_callback=progress, on_status=note)
    except api.USER_ERRORS as err:
        bar.empty()
        st.error(f"Sending stopped: {api.safe_text(str(err), target)} Fix it and click Send again: the campaign "
                 "resumes where it stopped, and nobody receives a message twice.", icon=":material/error:")
        return
    except Exception as err:  # noqa: BLE001 - show what failed, never a traceback (or a credential)
        _log.exception("sending campaign %s failed", campaign.id)
        bar.empty()
        st.error(f"Sending stopped ({type(err).__name__}: {api.safe_text(str(err), target)}). Click Send again "
                 "to resume: nobody receives a message twice. The server log has the details.",
                 icon=":material/error:")
        return
    bar.progress(1.0, text="Done.")
    status.empty()
    st.session_state[RESULT_KEY] = (campaign.id, result)


def results_query(campaign: Campaign) -> dict[str, str | list[str]]:
    """Query-string of a link that opens the dashboard filtered to exactly this campaign.

    ``sender.api.dashboard_filters``: ``campaign_id=<id>``, which the sidebar applies to every
    page as ``Filters(extra=(("campaign_id", id),))`` (``sender.api.results_filter_extra``) and shows
    as a removable "Campaign: <id> ✕" filter.
    """
    return dict(api.dashboard_filters(campaign.id))


def _show_result(campaign: Campaign, result: api.CampaignResult) -> None:
    s = result.summary()
    st.subheader("Result")
    cols = st.columns(4)
    with cols[0]:
        st.metric("SMS sent", f"{s['sent']:,}", border=True, help="Accepted by Twilio (delivery comes later).")
    with cols[1]:
        st.metric("SMS failed", f"{s['failed']:,}", border=True, help="Refused by Twilio; see the errors below.")
    with cols[2]:
        st.metric("Delivered so far", f"{s['delivered']:,}", border=True,
                  help="Delivery reports seen while sending; the warehouse has the final statuses after ingest.")
    with cols[3]:
        st.metric("Fallback calls", f"{s['fallback_calls']:,}", border=True)
    if s["already_done_before"] or s["recovered_after_crash"]:
        st.info(f"{s['already_done_before']} send(s) were already done by an earlier run of this campaign and "
                f"{s['recovered_after_crash']} were found at Twilio after an interruption: none was sent twice.",
                icon=":material/history:")
    if s["retried_429"]:
        st.caption(f"Twilio asked to slow down {s['retried_429']} time(s) (429); the sender waited as told.")
    for warning in result.warnings:
        st.warning(ui.mask_text(warning))
    if s["failed_by_error"]:
        codes = {o.error_name: o.error_code for o in result.outcomes if o.state == "failed"}
        failed = pd.DataFrame([{"error": name, "code": codes.get(name), "count": n}
                               for name, n in s["failed_by_error"].items()])
        st.markdown("**Failed, by error**")
        st.dataframe(failed, hide_index=True, key="send_failed_by_error",
                     column_config={"error": "Error (Twilio's name)", "code": st.column_config.NumberColumn(
                         "Code", format="%d"), "count": "Sends"})
    with st.expander("Every send", expanded=False):
        outcomes = ui.privacy(result.to_frame())
        ui.table(outcomes, key="send_outcomes", columns={
            "user_id": "User", "step": "Step", "number_masked": "Number (masked)", "country": "Country",
            "variant": "Variant", "state": "State", "status": "Last status", "error_name": "Error",
            "provider_sid": "SID", "recovered": st.column_config.CheckboxColumn("Recovered"),
            "resumed": st.column_config.CheckboxColumn("Earlier run")})
    st.caption(f"Send log: `{result.send_log_path}`")

    st.info("The campaign appears on the dashboard after the next ingest: run `switchboard ingest` (the send "
            "log above is picked up with Twilio's outcomes), then follow the links.", icon=":material/sync:")
    query = results_query(campaign)
    st.page_link(OVERVIEW_PAGE, label=f"Results of campaign {campaign.id}", icon=":material/monitoring:",
                 query_params=query,
                 help=f"The Overview filtered to this campaign (campaign_id={campaign.id}); the filter stays on "
                      "every page until you remove it in the sidebar.")
    st.page_link(EXPERIMENTS_PAGE, label=f"Variants of experiment {campaign.experiment_id}",
                 icon=":material/science:", query_params={"experiment": campaign.experiment_id, **query},
                 help="The Experiments page for this campaign's experiment, with this campaign's sends only, "
                      "once ingest has loaded it. Remove the campaign filter in the sidebar to see the whole "
                      "experiment.")


def _send_controls(campaign: Campaign, preview: api.CampaignPreview, target: Target) -> tuple[bool, bool]:
    """Why the page cannot send (if it cannot), the confirmation and the button: (clicked, can_send)."""
    st.subheader("Send")
    unsafe = api.web_safety_problem(campaign)
    if unsafe:
        st.error(f"Not sendable from this page: {unsafe}. This page sends only to an allow-list file on the "
                 "server; other numbers can be sent to only from the command line, which asks you to confirm.",
                 icon=":material/block:")
    if target.credentials is None:
        st.caption("Sending is disabled until credentials are set (see above).")
    elif not target.enabled:
        st.caption("Sending from the web is switched off on this server (see above).")
    already = api.already_sent(Settings.from_env().data_dir, campaign)
    if already:
        st.info(f"Campaign id `{campaign.id}` has already run here: {already} of {preview.recipients} recipients "
                "have their SMS recorded in its ledger and are not sent to again. Change the id to send a new "
                "round.", icon=":material/history:")
    messages = max(0, preview.recipients - already)
    confirmed = st.checkbox(
        f"I understand this sends {messages} message{'s' if messages != 1 else ''} to test numbers"
        + (f" via {target.label}" if target.credentials is not None else "")
        + (" (plus fallback calls where an SMS is not delivered)" if campaign.fallback else ""),
        # Keyed by what is sent and where: any edit to the campaign or the target needs a fresh confirmation.
        key=f"send_confirm_{campaign.id}_{campaign.fingerprint()}_{target.label}",
        disabled=bool(unsafe) or not target.can_send)
    can_send = confirmed and not unsafe and target.can_send
    clicked = st.button("Send", type="primary", icon=":material/send:", key="send_button", disabled=not can_send,
                        help="Sends for real. Sending again resumes the same campaign: nobody receives it twice. "
                             "Change the id to send a new round.")
    if campaign.fallback is not None:
        st.caption(f"Keep this page open while it sends: with the voice fallback it waits up to "
                   f"{campaign.fallback.after_seconds:g} s for each SMS to be delivered. If it is interrupted, "
                   "Send again resumes where it stopped.")
    return clicked, can_send


# --- the page ------------------------------------------------------------------------------------

ui.page_header("Send test campaign", needs_data=False)
st.caption("Rehearse a template or experiment on test phones, as `switchboard send` does: preview first (the dry "
           "run), then confirm and send. Every attempt is written to the send log, so after the next ingest the "
           "campaign shows on every page. The sidebar filters do not apply here.")

target = api.web_target()
_show_target(target)

text, base_dir, recipients_text = _campaign_source()
campaign = _load(text, base_dir, recipients_text, target)
if campaign is None:
    st.stop()

try:
    preview = api.preview_campaign(campaign, data_dir=Settings.from_env().data_dir)
except Exception as err:  # noqa: BLE001 - pricing or planning failure: say so, no traceback
    _log.exception("previewing campaign %s failed", campaign.id)
    st.error(f"The preview could not be computed ({type(err).__name__}); the server log has the details.")
    st.stop()
_show_preview(campaign, preview)
clicked, can_send = _send_controls(campaign, preview, target)
if clicked and can_send:
    _send(campaign, preview, target)

done = st.session_state.get(RESULT_KEY)
if done is not None and done[0] == campaign.id:
    _show_result(campaign, done[1])
