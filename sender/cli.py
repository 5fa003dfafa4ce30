"""``switchboard send CAMPAIGN.toml [--dry-run|--send] [--yes] [--allow-any-number] [--include-opted-out] [--data-dir DIR]``.

The dry run is the default: it prints the plan (masked numbers, variant, language,
encoding, segments, estimated cost) and totals per country, and sends nothing.
``--send`` sends for real, through Twilio or, with ``SWITCHBOARD_TWILIO_BASE_URL``, the
local sandbox, with a progress bar and a summary. Errors a user can fix print as one
clear message (exit 2), never a traceback; credentials are never printed.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import pandas as pd
from tqdm import tqdm

from switchboard.core.twilio import redact_url
from switchboard.sender import api
from switchboard.sender.runner import RunOptions, SendOutcome
from switchboard.sender.transport import BASE_URL_ENV

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # "%(default).0s" renders as nothing: it keeps a defaults-showing help formatter from adding
    # "(default: False)" where that would only confuse.
    parser.add_argument("campaign", type=Path, help="campaign TOML file (see examples/campaign.toml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        dest="send",
        action="store_false",
        help="show the plan and estimated cost; send nothing (what happens without --send)%(default).0s",
    )
    mode.add_argument(
        "--send", dest="send", action="store_true", help="send the campaign for real%(default).0s"
    )
    parser.set_defaults(send=False)
    parser.add_argument(
        "--yes",
        action="store_true",
        help="answer yes to the confirmation (needed with --allow-any-number when not interactive)",
    )
    parser.add_argument(
        "--allow-any-number",
        action="store_true",
        help="allow recipients that are not in the campaign's allow-list (asks to confirm)",
    )
    parser.add_argument(
        "--include-opted-out",
        action="store_true",
        help="also text recipients who opted out of this sender (STOP, per the warehouse); asks to confirm, "
        "and Twilio refuses them with 21610 unless they opted back in",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where send logs and the ledger go (default: SWITCHBOARD_DATA_DIR or ./data)%(default).0s",
    )
    parser.add_argument(
        "--in-flight-window",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="how long Twilio may still act on a request that got no answer (timeout, dropped connection, 5xx): "
        "such a send is looked for at Twilio only after this, then sent again if absent (default %(default)g)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        help="seconds between delivery-status polls for the voice fallback "
        "(default: a tenth of the delay, 0.2 to 15 s)%(default).0s",
    )


def _seconds(text: str) -> float:
    """A finite, non-negative number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds, at least 0")
    return value


def run(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    inp = stdin or sys.stdin
    try:
        return _run(args, inp, out, err)
    except api.USER_ERRORS as exc:
        print(f"switchboard send: {exc}", file=err)
        return 2


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    from switchboard.core.settings import Settings

    return Settings.from_env().data_dir


def _run(args: argparse.Namespace, inp: TextIO, out: TextIO, err: TextIO) -> int:
    campaign = api.load_campaign(Path(args.campaign))
    data_dir = _data_dir(args)
    preview = api.preview_campaign(campaign, data_dir=data_dir)
    for warning in campaign.warnings:
        print(f"warning: {warning}", file=err)
    if not args.send:
        _print_dry_run(preview, campaign, out)
        return 0
    if preview.opted_out_line:
        print(preview.opted_out_line + (" unless confirmed below" if args.include_opted_out and preview.opted_out
                                        else ""), file=out)
    if args.include_opted_out and preview.opted_out and not args.yes and not _confirm_opted_out(preview, inp, out):
        print("Not sent: confirmation declined.", file=err)
        return 1

    if preview.outside_allow_list:
        if not args.allow_any_number:
            api.check_safety(campaign, allow_any_number=False)  # raises with the lines to fix
        if not args.yes and not _confirm(preview, inp, out):
            print("Not sent: confirmation declined.", file=err)
            return 1
    # A base URL may carry credentials in its userinfo (http://AC…:TOKEN@host): never print them.
    target = redact_url(os.environ.get(BASE_URL_ENV) or "") or "Twilio"
    print(
        f"Sending campaign {campaign.id!r} ({preview.recipients} recipients, estimated ${preview.estimated_cost_usd:.4f}"
        f" for SMS) from {campaign.sender} via {target}",
        file=out,
    )
    client = api.client_from_env()
    with tqdm(
        total=preview.recipients, unit="msg", file=err, desc=campaign.id, dynamic_ncols=True, disable=None
    ) as bar:

        def progress(outcome: SendOutcome, done: int, total: int) -> None:
            bar.n = done
            if outcome.step == "voice":
                bar.set_postfix_str(f"fallback call {outcome.number_masked}")
            bar.refresh()

        options = RunOptions(
            allow_any_number=args.allow_any_number,
            inflight_window=timedelta(seconds=args.in_flight_window),
            poll_interval=args.poll_interval,
            on_status=bar.set_postfix_str,
        )
        result = api.run_campaign(
            campaign, client, data_dir=data_dir, progress_callback=progress, options=options,
            include_opted_out=args.include_opted_out,
        )
    _print_summary(result, out)
    return 0


def _confirm(preview: api.CampaignPreview, inp: TextIO, out: TextIO) -> bool:
    if not (hasattr(inp, "isatty") and inp.isatty()):
        raise api.UnsafeCampaign(
            f"{preview.outside_allow_list} recipient(s) are outside the allow-list and there is no terminal to "
            "confirm on; pass --yes as well to confirm"
        )
    print(
        f"{preview.outside_allow_list} of {preview.recipients} recipients are NOT in the allow-list of test "
        "numbers: real people may receive this campaign.",
        file=out,
    )
    print(f"Type the campaign id ({preview.campaign_id}) to send anyway: ", end="", file=out, flush=True)
    return inp.readline().strip() == preview.campaign_id


def _confirm_opted_out(preview: api.CampaignPreview, inp: TextIO, out: TextIO) -> bool:
    if not (hasattr(inp, "isatty") and inp.isatty()):
        raise api.UnsafeCampaign(
            f"{preview.opted_out} recipient(s) opted out of {preview.sender} and there is no terminal to confirm "
            "on; pass --yes as well to confirm, or drop --include-opted-out"
        )
    print(f"{preview.opted_out} recipient(s) replied STOP (or Twilio refused them with 21610): texting them again "
          "needs their consent.", file=out)
    print(f"Type the campaign id ({preview.campaign_id}) to include them: ", end="", file=out, flush=True)
    return inp.readline().strip() == preview.campaign_id


def _print_dry_run(preview: api.CampaignPreview, campaign: api.Campaign, out: TextIO) -> None:
    print(f"Dry run of campaign {preview.campaign_id!r} ({preview.name}): nothing is sent.", file=out)
    print(
        f"From {preview.sender}; {preview.recipients} recipients; rate limit {campaign.rate_limit:g}/s; "
        f"variants {preview.variant_counts}",
        file=out,
    )
    if preview.fallback_after_seconds is not None:
        print(
            f"Voice fallback: a call reads the message when the SMS is not delivered within "
            f"{preview.fallback_after_seconds:g} s",
            file=out,
        )
    shown = preview.plan.drop(columns=["body", "unit_price_usd"])
    with pd.option_context("display.max_rows", 200, "display.width", 160, "display.max_columns", 20):
        print("\n" + shown.to_string(index=False), file=out)
        print("\nEstimated cost per country (SMS only; an estimate from a static price table):", file=out)
        print(preview.totals.to_string(index=False), file=out)
    print(f"\nEstimated total: ${preview.estimated_cost_usd:.4f} (estimate)", file=out)
    if preview.opted_out_line:
        masked = preview.plan.loc[preview.plan["opted_out"], "number_masked"].tolist()
        shown = f" ({', '.join(masked[:5])}{', …' if len(masked) > 5 else ''})" if masked else ""
        print(f"{preview.opted_out_line}{shown}."
              + (" --include-opted-out sends to them after a confirmation." if masked else ""), file=out)
    if preview.outside_allow_list:
        print(
            f"Note: {preview.outside_allow_list} recipient(s) are not in the allow-list; --send refuses them "
            "unless --allow-any-number is given and confirmed.",
            file=out,
        )
    print(f"To send: switchboard send {campaign.source} --send", file=out)


def _print_summary(result: api.CampaignResult, out: TextIO) -> None:
    s = result.summary()
    print(
        f"\nCampaign {result.campaign_id}: {s['sent']} SMS sent, {s['failed']} failed, "
        f"{s['fallback_calls']} fallback call(s).",
        file=out,
    )
    if s["skipped_opted_out"]:
        print(f"Skipped: {s['skipped_opted_out']} recipient(s) opted out of this sender (not sent).", file=out)
    if s["failed_by_error"]:
        print("Failed by error:", file=out)
        codes = {o.error_name: o.error_code for o in result.outcomes if o.state == "failed"}
        for name, count in s["failed_by_error"].items():
            code = f" ({codes[name]})" if codes.get(name) else ""
            print(f"  {count:>4}  {name}{code}", file=out)
    if s["recovered_after_crash"] or s["already_done_before"]:
        print(
            f"Resumed: {s['already_done_before']} already done by an earlier run, {s['recovered_after_crash']} "
            "found at Twilio after an interruption (not sent twice).",
            file=out,
        )
    if s["retried_429"]:
        print(f"Twilio asked to slow down {s['retried_429']} time(s) (429); waited as told.", file=out)
    for warning in result.warnings:
        print(f"warning: {warning}", file=out)
    print(f"Send log: {result.send_log_path}", file=out)
    print(
        f"Next: run `switchboard ingest`, then open the dashboard filtered by campaign {result.campaign_id} "
        f"(campaign_id={result.campaign_id}).",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sender.cli`` (the lead wires ``run`` into ``switchboard send``)."""
    parser = argparse.ArgumentParser(prog="switchboard send", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
