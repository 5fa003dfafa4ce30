"""The world's ground truth: what it holds, for tests and the demo to check analyses against
(also written as ``ground_truth.json`` beside the send logs)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from switchboard.sandbox.catalog import COUNTRY_BY_ISO, PURPOSES
from switchboard.sandbox.scenario import MEMBER_ENGAGEMENT_SPREAD, Experiment, Incident, World


def _rate(mask_num: np.ndarray, mask_den: np.ndarray) -> float | None:
    d = int(mask_den.sum())
    return None if d == 0 else round(float((mask_num & mask_den).sum()) / d, 4)


def outbound(world: World) -> pd.DataFrame:
    """The world's outbound SMS (its messages without the members' replies)."""
    m = world.messages
    if "direction" not in m.columns:
        return m
    return m[m["direction"].to_numpy() != "inbound"]


def ground_truth(world: World) -> dict[str, Any]:
    """What the world holds, for tests and the demo to check analyses against."""
    sc = world.scenario
    m = outbound(world)
    status = m["status"].astype(object).to_numpy()
    err = m["error_code"].to_numpy()
    country = m["country"].astype(object).to_numpy()
    per_country = (
        pd.DataFrame({"country": country, "delivered": status == "delivered"})
        .groupby("country", observed=True)["delivered"].agg(["mean", "size"])
    )
    calls = world.calls
    fb = calls["fallback_of_msg"].to_numpy() >= 0
    return {
        "seed": sc.seed,
        "start": world.start.isoformat().replace("+00:00", "Z"),
        "end": world.end.isoformat().replace("+00:00", "Z"),
        "days": sc.days,
        "messages": len(m),
        "inbound_messages": len(world.messages) - len(m),
        "calls": len(calls),
        "send_log_events": len(world.send_log),
        "conversions": len(world.conversions),
        "countries": sorted(set(country.tolist())),
        "accounts": [{"sid": a["sid"], "friendly_name": a["friendly_name"], "subaccount": a["subaccount"]}
                     for a in world.accounts],
        "status_counts": {k: int(v) for k, v in pd.Series(status).value_counts().items()},
        "error_code_counts": {int(k): int(v) for k, v in pd.Series(err[err > 0]).value_counts().items()},
        "delivery_rate_by_country": {k: round(float(r["mean"]), 4) for k, r in per_country.iterrows()},
        "true_delivery_rate_by_country": {c: COUNTRY_BY_ISO[c].delivery_rate for c in sorted(set(country.tolist()))},
        "incidents": [_incident_truth(world, inc) for inc in sc.incidents],
        "experiments": [_experiment_truth(world, ei, exp) for ei, exp in enumerate(sc.experiments)],
        # Issue 19: the pre-period CUPED uses. A member's engagement e (uniform in +/-spread, fixed for the
        # history) moves their chance to convert on every SMS by e * min(p, 1 - p).
        "member_engagement": {"spread": MEMBER_ENGAGEMENT_SPREAD,
                              "effect": "P(convert) + engagement * min(P, 1 - P) on every SMS of the member"},
        "voice_fallbacks": {
            "calls": int(fb.sum()),
            "completed": int((fb & (calls["status"].to_numpy() == "completed")).sum()),
            "fallback_rate": sc.fallback_rate,
        },
        "segments": {
            "ucs2_share": round(float((m["encoding"].to_numpy() == "UCS-2").mean()), 4) if len(m) else None,
            "by_template": {
                str(k): int(v)
                for k, v in m.groupby("template_id", observed=True)["num_segments"].max().items()
            },
        },
        "opted_out_members": int(world.users["opted_out"].sum()),
        "responses": response_truth(world),
        # Issue 17: SMS pumping (sandbox/pumping.py), one entry per episode.
        "pumping": [_pumping_truth(world, ep) for ep in world.pumping],
        # Built into every world rather than injected: true, and findable, but not incidents.
        "known_issues": _known_issues(world),
    }


def _incident_truth(world: World, inc: Incident) -> dict[str, Any]:
    """The incident's settings, its start date and the error rates it caused (and did not cause)."""
    sc, m = world.scenario, outbound(world)
    day = (m["date_created"].to_numpy() - int(world.start.timestamp())) // 86400
    err = m["error_code"].to_numpy()
    country = m["country"].astype(object).to_numpy()
    carrier = m["carrier"].astype(object).to_numpy()
    entry = asdict(inc)
    in_c = country == inc.country
    if inc.kind == "carrier_filtering":
        start_day = max(sc.days - inc.days_before_end, sc.days // 2)
        entry["start_date"] = (world.start + timedelta(days=int(start_day))).date().isoformat()
        on = in_c & (carrier == inc.carrier)
        before = on & (day < start_day)
        after = on & (day >= start_day + inc.ramp_days)
        entry["observed_error_rate_before"] = _rate(err == inc.error_code, before)
        entry["observed_error_rate_after_ramp"] = _rate(err == inc.error_code, after)
        others = in_c & (carrier != inc.carrier) & (day >= start_day + inc.ramp_days)
        entry["observed_error_rate_other_carriers_after"] = _rate(err == inc.error_code, others)
    else:
        land = m["line_type"].to_numpy() == "landline"
        entry["observed_landline_share_of_messages"] = _rate(land, in_c)
        entry["observed_error_rate_landline"] = _rate(err == inc.error_code, in_c & land)
        entry["observed_error_rate_country"] = _rate(err == inc.error_code, in_c)
    return entry


def _iso(t: int) -> str:
    return datetime.fromtimestamp(int(t), UTC).isoformat().replace("+00:00", "Z")


def _pumping_truth(world: World, info: dict[str, Any]) -> dict[str, Any]:
    """An SMS-pumping episode: its settings, the number ranges pumped (every pumped number starts with one of
    ``prefixes``), its window and what it sent: messages, numbers, new member ids, cost, codes used (none)."""
    m = world.messages
    sel = m["pumping_idx"].to_numpy() == info["index"]
    to = m["to"].astype(object).to_numpy()[sel]
    created = m["date_created"].to_numpy()[sel]
    hours = max((info["end"] - info["start"]) / 3600, 1e-9)
    ep = info["episode"]
    return {
        **asdict(ep), "kind": "sms_pumping",
        "prefixes": list(info["ranges"]), "start": _iso(info["start"]), "end": _iso(info["end"]),
        "first_message": _iso(created.min()) if sel.any() else None,
        "last_message": _iso(created.max()) if sel.any() else None,
        "messages": int(sel.sum()), "messages_per_hour": round(int(sel.sum()) / hours, 1),
        "purposes": {str(k): int(v) for k, v in pd.Series(m["purpose"].astype(object).to_numpy()[sel])
                     .value_counts().items()},
        "numbers": len(set(to.tolist())), "new_members": len(set(m["user_idx"].to_numpy()[sel].tolist())),
        "delivered": int((m["status"].astype(object).to_numpy()[sel] == "delivered").sum()),
        "converted": int(m["converted"].to_numpy()[sel].sum()),
        "cost_usd": round(float(m["price"].to_numpy()[sel].sum()), 2),
    }


def _experiment_truth(world: World, ei: int, exp: Experiment) -> dict[str, Any]:
    """The experiment's settings, its true conversion rates and the observed rates per arm,
    inside and outside its region."""
    m = outbound(world)
    country = m["country"].astype(object).to_numpy()
    delivered = m["status"].astype(object).to_numpy() == "delivered"
    converted = m["converted"].to_numpy()
    e_idx, v_idx = m["experiment_idx"].to_numpy(), m["variant_idx"].to_numpy()
    entry = asdict(exp)
    region = np.isin(country, list(exp.countries)) if exp.countries else np.ones(len(m), bool)
    regions = [("in_region", region), ("outside_region", ~region)]
    if exp.opposite_countries:  # issue 19: where the treatment's lift has the other sign
        regions.append(("opposite_region", np.isin(country, list(exp.opposite_countries))))
    arms: dict[str, dict[str, Any]] = {}
    for vi, vname in enumerate(exp.variants):
        for label, reg in regions:
            sel = (e_idx == ei) & (v_idx == vi) & reg
            arms.setdefault(vname, {})[label] = {
                "attempts": int(sel.sum()),
                "delivery_rate": _rate(delivered, sel),
                "conversion_rate": _rate(converted, sel),
            }
    base = PURPOSES[exp.purpose]
    entry["true_conversion_rate_if_delivered"] = {
        exp.variants[0]: base["p_del"], exp.variants[1]: round(base["p_del"] + exp.conversion_lift, 4)
    }
    if exp.opposite_countries:
        entry["true_conversion_rate_if_delivered_opposite_region"] = {
            exp.variants[0]: base["p_del"], exp.variants[1]: round(base["p_del"] + exp.opposite_conversion_lift, 4)
        }
        # What the Experiments page should conclude: the effect differs by country, so Discuss (rule 5 of
        # analytics.experiments_stats.DECISION_RULES) when the treatment is better overall.
        entry["differs_by_country"] = True
        entry["expected_decision"] = "Discuss"
    entry["observed"] = arms
    if exp.opt_out_multiplier != 1.0:
        entry["observed_opt_out_rate"] = _opt_out_rates(world, ei, exp)
    return entry


def _opt_out_rates(world: World, ei: int, exp: Experiment) -> dict[str, float | None]:
    """Per variant: opt-out replies per delivered message of the arm (the reply's linked message)."""
    m = world.messages
    if "direction" not in m.columns:
        return {}
    out = m["direction"].to_numpy() != "inbound"
    delivered = out & (m["status"].astype(object).to_numpy() == "delivered")
    stops = np.zeros(len(m), dtype=bool)
    kind = m["reply_kind"].astype(object).to_numpy()
    to = m["reply_to"].to_numpy()
    hit = (kind == "opt_out") & (to >= 0)
    stops[to[hit]] = True
    e_idx, v_idx = m["experiment_idx"].to_numpy(), m["variant_idx"].to_numpy()
    return {v: _rate(stops, delivered & (e_idx == ei) & (v_idx == vi)) for vi, v in enumerate(exp.variants)}


def response_truth(world: World) -> dict[str, Any]:
    """The replies the world holds: counts per kind, opt-outs by purpose, and who is opted out at the end."""
    m = world.messages
    if "direction" not in m.columns:
        return {"inbound": 0}
    inbound = m["direction"].to_numpy() == "inbound"
    kind = m["reply_kind"].astype(object).to_numpy()[inbound]
    linked = m["reply_to"].to_numpy()[inbound]
    purpose = m["purpose"].astype(object).to_numpy()[inbound]
    return {
        "inbound": int(inbound.sum()),
        "by_kind": {str(k): int(v) for k, v in pd.Series(kind).value_counts().items()},
        "unlinked": int((linked < 0).sum()),
        "opt_outs_by_purpose": {str(k): int(v) for k, v in
                                pd.Series(purpose[kind == "opt_out"]).value_counts().items()},
        "opted_out_at_end": len(world.opted_out),
        "blocked_by_opt_out": int(((m["error_code"].to_numpy() == 21610) & ~inbound).sum()),
    }


def _known_issues(world: World) -> list[dict[str, Any]]:
    m = outbound(world)
    err = m["error_code"].to_numpy()
    us = m["country"].astype(object).to_numpy() == "US"
    sender = _unregistered_sender(world)
    return [
        {"kind": "unregistered_sender", "country": "US", "error_code": 30034, "sender": sender,
         "observed_error_rate": _rate(err == 30034, us & (m["from"].astype(object).to_numpy() == sender))},
        {"kind": "opt_out", "error_code": 21610, "members": int(world.users["opted_out"].sum())},
    ]


def _unregistered_sender(world: World) -> str | None:
    s = world.senders
    rows = s[(s["kind"] == "long_code") & ~s["registered"] & (s["account"] == 0)]
    return str(rows["sender"].iloc[0]) if len(rows) else None
