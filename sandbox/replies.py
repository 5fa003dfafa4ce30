"""Members reply (issue 18): opt-out keywords, opt-in, HELP and free text, in their language.

A reply answers a delivered SMS from a number a member can answer (long codes and toll-free, never
the alphanumeric sender ID). Rates depend on the purpose (marketing far more than a password reset),
on the country (a seeded factor) and on an experiment's ``opt_out_multiplier`` for its treatment.

Opting out changes what follows, as Twilio does it: every later SMS to that member **from that
number** fails with 21610 until the member sends an opt-in keyword (START, YES, UNSTOP or a localised
one) to it. Replies are processed in time order, so a reply to a message that an earlier opt-out
blocked never happens. A few members text our numbers out of the blue (no prior message).

All draws come from generators of their own (seeded by the scenario's seed), never from the world's
main generator, so the rest of a world's draws are unchanged by this step.

The localised keywords are what an account with Twilio's Advanced Opt-Out configures; Twilio's own
defaults are the English ones. ``ingest/responses.sql`` holds the same table for the warehouse; a test
checks that every text below classifies there to the kind it is drawn as.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import pandas as pd

from switchboard.sandbox.sids import sid_series

KINDS = ("opt_out", "opt_in", "help", "other")
INBOUND_PRICE = 0.0079  # USD per segment received on a US long code or toll-free number
WINDOW_SECONDS = 7 * 86400  # replies come within days of the message they answer

# What members write, by kind and language. Keywords vary in case, whitespace and punctuation the way
# Twilio tolerates; the free texts include near-misses that Twilio does NOT treat as keywords.
REPLY_TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "opt_out": {
        "en": ("STOP", "Stop", "stop", " STOP ", "STOP.", "Stop!", "UNSUBSCRIBE", "cancel", "END", "Quit",
               "STOPALL", "optout", "REVOKE"),
        "es": ("BAJA", "Parar", "STOP", "alto"),
        "pt": ("SAIR", "Parar", "STOP", "cancelar"),
        "fr": ("ARRET", "Arrêt", "STOP"),
        "de": ("STOPP", "Abmelden", "STOP"),
        "it": ("ANNULLA", "STOP"),
        "id": ("BERHENTI", "STOP"),
    },
    "opt_in": {
        "en": ("START", "Yes", "UNSTOP", "start"),
        "es": ("ALTA", "INICIO", "START"),
        "pt": ("VOLTAR", "START"),
        "fr": ("START", "DEMARRER"),
        "de": ("START", "ANMELDEN"),
    },
    "help": {
        "en": ("HELP", "help", "Help?", "INFO"),
        "es": ("AYUDA", "Ayuda?"),
        "pt": ("AJUDA",),
        "fr": ("AIDE",),
        "de": ("HILFE",),
        "it": ("AIUTO",),
    },
    "other": {
        "en": ("Thanks!", "ok", "who is this?", "Stop texting me please", "please stop", "C", "R", "👍",
               "not now"),
        "es": ("Gracias", "¿quién es?", "ok", "no quiero mas mensajes"),
        "pt": ("Obrigado", "ok", "quem é?"),
        "fr": ("Merci", "c'est qui ?"),
        "de": ("Danke", "wer ist da?"),
        "hi": ("धन्यवाद",),
        "ja": ("ありがとう",),
        "id": ("Terima kasih",),
    },
}

# Reply rate per delivered message by purpose, and the mix of kinds among those replies.
PURPOSE_REPLIES: dict[str, tuple[float, dict[str, float]]] = {
    "marketing": (0.05, {"opt_out": 0.45, "opt_in": 0.03, "help": 0.07, "other": 0.45}),
    # alert_login tells members to reply "STOP" to lock the account: a classic opt-out trap.
    "account_alert": (0.02, {"opt_out": 0.35, "opt_in": 0.0, "help": 0.1, "other": 0.55}),
    "appointment_reminder": (0.06, {"opt_out": 0.08, "opt_in": 0.02, "help": 0.05, "other": 0.85}),
    "verification": (0.003, {"opt_out": 0.1, "opt_in": 0.0, "help": 0.3, "other": 0.6}),
    "password_reset": (0.004, {"opt_out": 0.1, "opt_in": 0.0, "help": 0.3, "other": 0.6}),
}
REOPT_IN_SHARE = 0.2  # members who opt back in (START) days after opting out
UNSOLICITED_SHARE = 0.0005  # inbound texts with no prior message, relative to outbound messages


@dataclass
class Replies:
    """The inbound messages (one row each, in time order) and the opt-outs in force at the end."""

    frame: pd.DataFrame  # ts, user, from_ (our number), mg, account, linked (message row or -1), kind, text
    opted_out: set[tuple[int, str]]  # (member row, our number) opted out at the end of the history
    blocked: int  # outbound messages that failed with 21610 because of an opt-out in the history


def live_reply_kind(experiments: tuple, purpose: str, exp_idx: int, variant: int, u: float) -> str | None:
    """The kind of reply a live SMS gets for a uniform draw ``u`` (None: no reply), at the history's rates
    (without the per-country factor) and the experiment's ``opt_out_multiplier`` for its treatment."""
    rate, mix = PURPOSE_REPLIES.get(purpose, (0.0, {}))
    weights = [rate * mix.get(k, 0.0) for k in KINDS]
    if exp_idx >= 0 and variant == 1:
        weights[0] *= getattr(experiments[exp_idx], "opt_out_multiplier", 1.0)
    acc = 0.0
    for kind, w in zip(KINDS, weights):
        acc += w
        if u < acc:
            return kind
    return None


def reply_texts(kind: str, lang: str) -> tuple[str, ...]:
    table = REPLY_TEXTS[kind]
    return table.get(lang, table["en"])


def draw_replies(seed: int, users: pd.DataFrame, msgs: pd.DataFrame, senders: pd.DataFrame,
                 experiments: tuple, t1: int) -> Replies:
    """Replies to ``msgs`` and their effect: blocked messages get 21610 in ``msgs`` (in place)."""
    rng = np.random.default_rng([seed, 18])
    cand = _candidates(rng, users, msgs, senders, experiments, t1)
    rows, opted, blocked = _process(rng, msgs, cand, t1)
    rows += _unsolicited(rng, users, msgs, senders, t1)
    frame = pd.DataFrame(rows, columns=["ts", "user", "from_", "mg", "account", "linked", "kind", "lang_pick"])
    frame = frame.sort_values(["ts", "user"], kind="stable").reset_index(drop=True)
    frame["text"] = _texts(rng, users, frame)
    return Replies(frame=frame.drop(columns="lang_pick"), opted_out=opted, blocked=blocked)


def _candidates(rng: np.random.Generator, users: pd.DataFrame, msgs: pd.DataFrame, senders: pd.DataFrame,
                experiments: tuple, t1: int) -> dict[str, np.ndarray]:
    """One possible reply per outbound message (drawn for all, so the draws do not depend on outcomes)."""
    n = len(msgs)
    purposes = msgs["purpose"].astype(object).to_numpy()
    rate = np.zeros(n)
    mix = np.zeros((n, len(KINDS)))
    for p, (r, kinds) in PURPOSE_REPLIES.items():
        sel = purposes == p
        rate[sel] = r
        mix[sel] = [kinds[k] for k in KINDS]
    # Each country answers more or less (a seeded factor per country of the world, in category order).
    factor = rng.uniform(0.6, 1.6, size=len(msgs["country"].cat.categories))
    rate = rate * factor[msgs["country"].cat.codes.to_numpy()]
    e_idx, v_idx = msgs["experiment_idx"].to_numpy(), msgs["variant_idx"].to_numpy()
    for ei, exp in enumerate(experiments):
        mult = getattr(exp, "opt_out_multiplier", 1.0)
        if mult != 1.0:
            treat = (e_idx == ei) & (v_idx == 1)
            mix[treat, 0] *= mult  # more opt-outs, the other kinds unchanged
    weights = mix * rate[:, None]
    cum = np.cumsum(weights, axis=1)
    u = rng.random(n)
    kind = (u[:, None] >= cum).sum(axis=1)  # len(KINDS): no reply
    delay = np.minimum(np.ceil(rng.lognormal(np.log(240), 1.3, size=n)), WINDOW_SECONDS - 3600).astype(np.int64)
    reopt_u, reopt_delay = rng.random(n), (rng.exponential(12, size=n) * 86400).astype(np.int64) + 3600
    kinds = senders["kind"].to_numpy()
    from_codes = msgs["from"].cat.codes.to_numpy()
    sender_kind = pd.Series(kinds, index=senders["sender"]).groupby(level=0).first()
    answerable = np.array([sender_kind.get(s, "alpha") != "alpha" for s in msgs["from"].cat.categories])
    ok = (kind < len(KINDS)) & (msgs["status"].astype(object).to_numpy() == "delivered") & answerable[from_codes]
    ts = np.maximum(msgs["final_at"].to_numpy(), msgs["date_sent"].to_numpy()) + delay
    ok &= ts < t1
    idx = np.flatnonzero(ok)
    return {"msg": idx, "kind": kind[idx], "ts": ts[idx], "reopt_u": reopt_u[idx], "reopt_delay": reopt_delay[idx]}


class _Blocks:
    """Outbound rows per (member, our number), in time order, to block and unblock with 21610."""

    def __init__(self, msgs: pd.DataFrame):
        self.msgs = msgs
        self.n_from = len(msgs["from"].cat.categories) + 1
        self.key = msgs["user_idx"].to_numpy().astype(np.int64) * self.n_from + msgs["from"].cat.codes.to_numpy()
        self.created = msgs["date_created"].to_numpy()
        self.order = np.lexsort((self.created, self.key))
        self.sorted_key = self.key[self.order]
        self.error = msgs["error_code"].to_numpy().copy()
        self.status = msgs["status"].cat.codes.to_numpy().copy()
        self.final = msgs["final_at"].to_numpy().copy()
        self.price = msgs["price"].to_numpy().copy()
        self.orig = (self.error.copy(), self.status.copy(), self.final.copy(), self.price.copy())
        self.failed_code = list(msgs["status"].cat.categories).index("failed")

    def rows_after(self, row: int, ts: int) -> np.ndarray:
        k = self.key[row]
        a, b = np.searchsorted(self.sorted_key, [k, k + 1])
        rows = self.order[a:b]
        return rows[self.created[rows] > ts]

    def block(self, rows: np.ndarray) -> None:
        self.error[rows] = 21610
        self.status[rows] = self.failed_code
        self.final[rows] = self.created[rows] + 1
        self.price[rows] = 0.001  # as every failed message in the world: the processing fee

    def unblock(self, rows: np.ndarray) -> None:
        for arr, orig in zip((self.error, self.status, self.final, self.price), self.orig):
            arr[rows] = orig[rows]

    def write_back(self) -> None:
        m = self.msgs
        m["error_code"] = self.error
        m["status"] = pd.Categorical.from_codes(self.status, categories=list(m["status"].cat.categories))
        m["final_at"] = self.final
        m["price"] = self.price


def _process(rng: np.random.Generator, msgs: pd.DataFrame, cand: dict[str, np.ndarray],
             t1: int) -> tuple[list[tuple], set[tuple[int, str]], int]:
    """Replies in time order: an opt-out blocks that member's later SMS from that number (21610),
    an opt-in lifts it; a reply to a message that an earlier opt-out blocked is never sent."""
    blocks = _Blocks(msgs)
    heap = [(int(t), 0, int(i)) for i, t in enumerate(cand["ts"])]
    heapq.heapify(heap)
    opted: dict[int, int] = {}  # key -> message row of the opt-out
    users, froms = msgs["user_idx"].to_numpy(), msgs["from"].astype(object).to_numpy()
    mgs, accts = msgs["messaging_service_sid"].astype(object).to_numpy(), msgs["account_idx"].to_numpy()
    rows: list[tuple] = []
    while heap:
        ts, ev, i = heapq.heappop(heap)
        m = int(cand["msg"][i])
        key = int(blocks.key[m])
        if ev == 1:  # the member opts back in, to the number they opted out of
            if key in opted:
                del opted[key]
                blocks.unblock(blocks.rows_after(m, ts))
                rows.append((ts, int(users[m]), froms[m], mgs[m], int(accts[m]), -1, "opt_in", i))
            continue
        if blocks.error[m] == 21610:
            continue  # an earlier opt-out stopped this message: nobody answers it
        kind = KINDS[int(cand["kind"][i])]
        rows.append((ts, int(users[m]), froms[m], mgs[m], int(accts[m]), m, kind, i))
        if kind == "opt_out" and key not in opted:
            opted[key] = m
            blocks.block(blocks.rows_after(m, ts))
            if cand["reopt_u"][i] < REOPT_IN_SHARE and ts + cand["reopt_delay"][i] < t1:
                heapq.heappush(heap, (int(ts + cand["reopt_delay"][i]), 1, i))
    blocked = int((blocks.error == 21610).sum() - (blocks.orig[0] == 21610).sum())
    blocks.write_back()
    opted_out = {(int(users[m]), str(froms[m])) for m in opted.values()}
    return rows, opted_out, blocked


def _unsolicited(rng: np.random.Generator, users: pd.DataFrame, msgs: pd.DataFrame, senders: pd.DataFrame,
                 t1: int) -> list[tuple]:
    """Members texting our long codes with no message before (free text or HELP)."""
    n = int(len(msgs) * UNSOLICITED_SHARE)
    if n == 0 or len(msgs) == 0:
        return []
    longs = senders[(senders["kind"] == "long_code") & (senders["account"] == 0)]["sender"].to_numpy()
    t0 = int(msgs["date_created"].min())
    ts = rng.integers(t0, t1 - 1, size=n)
    user = rng.integers(0, len(users), size=n)
    frm = longs[rng.integers(0, len(longs), size=n)]
    kind = np.where(rng.random(n) < 0.2, "help", "other")
    return [(int(ts[j]), int(user[j]), str(frm[j]), None, 0, -1, str(kind[j]), -1 - j) for j in range(n)]


def _texts(rng: np.random.Generator, users: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    """Each reply's text: one of its kind's texts in the member's language (English when none)."""
    locale = users["locale"].astype(object).to_numpy()
    picks = rng.random(len(frame))
    out = []
    for u, kind, p in zip(frame["user"].to_numpy(), frame["kind"].to_numpy(), picks):
        texts = reply_texts(kind, str(locale[u]).split("-")[0])
        out.append(texts[int(p * len(texts))])
    return out


def inbound_frame(replies: Replies, users: pd.DataFrame, msgs: pd.DataFrame, segment_info) -> pd.DataFrame:
    """The replies as rows shaped like ``msgs`` (direction ``inbound``): From is the member, To our number."""
    r = replies.frame
    n = len(r)
    u = r["user"].to_numpy().astype(np.int64)
    linked = r["linked"].to_numpy().astype(np.int64)
    has = linked >= 0
    safe = np.maximum(linked, 0)

    def from_msg(col: str, default):
        vals = msgs[col].to_numpy()[safe] if len(msgs) else np.full(n, default)
        return np.where(has, vals, default)

    texts = r["text"].tolist()
    info = [segment_info(t) for t in texts]
    return pd.DataFrame({
        "account_idx": r["account"].to_numpy().astype(np.int8),
        "date_created": r["ts"].to_numpy().astype(np.int64),
        "date_sent": r["ts"].to_numpy().astype(np.int64),
        "final_at": r["ts"].to_numpy().astype(np.int64),
        "status": "received",
        "error_code": np.zeros(n, dtype=np.int32),
        "to": r["from_"].astype(object).to_numpy(),  # our number: the member texted it
        "from": users["number"].to_numpy()[u],
        "messaging_service_sid": r["mg"].to_numpy(),
        "text": texts,
        "code": np.zeros(n, dtype=np.int64),
        "num_segments": np.array([s for _, s in info], dtype=np.int16),
        "encoding": [e for e, _ in info],
        "price": np.round(INBOUND_PRICE * np.array([s for _, s in info], dtype=float), 5),
        "country": users["country"].astype(object).to_numpy()[u],
        "carrier": users["carrier"].astype(object).to_numpy()[u],
        "line_type": users["line_type"].astype(object).to_numpy()[u],
        "purpose": np.where(has, msgs["purpose"].astype(object).to_numpy()[safe] if len(msgs) else None, None),
        "template_id": np.where(has, msgs["template_id"].astype(object).to_numpy()[safe] if len(msgs) else None,
                                None),
        "locale": users["locale"].astype(object).to_numpy()[u],
        "user_idx": u.astype(np.int32),
        "experiment_idx": from_msg("experiment_idx", -1).astype(np.int8),
        "variant_idx": from_msg("variant_idx", -1).astype(np.int8),
        "reply_kind": r["kind"].to_numpy(),
        "reply_to": linked,
    })


def _merge_categorical(a: pd.Series, b: pd.Series | None, n_b: int, order: np.ndarray) -> pd.Categorical:
    """``a`` then ``b`` (values, or all missing when None) as one categorical in ``order``."""
    cats = a.cat.categories.tolist()
    values = b.astype(object).tolist() if b is not None else []
    extra = sorted({v for v in values if v is not None and pd.notna(v)} - set(cats), key=str)
    union = pd.Index(cats + extra)
    codes_b = union.get_indexer(pd.Index(values, dtype=object)) if values else np.full(n_b, -1)
    codes = np.concatenate([a.cat.codes.to_numpy().astype(np.int64), codes_b.astype(np.int64)])[order]
    return pd.Categorical.from_codes(codes, categories=union)


def merge(msgs: pd.DataFrame, inbound: pd.DataFrame, salt: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Outbound and inbound messages in one frame in time order (the API lists them together, and a
    sid is its row), and each old outbound row's new row. Inbound bodies join the bodies list."""
    bodies = list(msgs.attrs["bodies"])
    inbound = inbound.copy()
    inbound["body_key"] = np.arange(len(bodies), len(bodies) + len(inbound), dtype=np.int32)
    bodies += inbound.pop("text").tolist()
    out = msgs.copy()
    # Categoricals merge by their codes (the outbound categories stay a prefix): no object arrays of
    # millions of strings.
    out["direction"] = pd.Categorical.from_codes(np.zeros(len(out), dtype=np.int8), categories=["outbound-api"])
    out["reply_kind"] = pd.Categorical.from_codes(np.full(len(out), -1, dtype=np.int8), categories=list(KINDS))
    out["reply_to"] = -1
    n_out = len(out)
    created = np.concatenate([out["date_created"].to_numpy(), inbound["date_created"].to_numpy()])
    order = np.argsort(created, kind="stable")
    new_row = np.empty(order.size, dtype=np.int64)
    new_row[order] = np.arange(order.size)
    inbound["direction"] = "inbound"
    inbound["reply_to"] = np.where(inbound["reply_to"].to_numpy() >= 0,
                                   new_row[np.maximum(inbound["reply_to"].to_numpy(), 0)], -1)
    cols = {}
    for c in out.columns:
        a = out[c]
        if c == "sid":
            continue
        if isinstance(a.dtype, pd.CategoricalDtype):
            cols[c] = _merge_categorical(a, inbound[c] if c in inbound.columns else None, len(inbound), order)
        else:
            fill = inbound[c].to_numpy() if c in inbound.columns else np.zeros(len(inbound), dtype=a.dtype)
            cols[c] = np.concatenate([a.to_numpy(), fill.astype(a.dtype)])[order]
    merged = pd.DataFrame(cols)
    merged.insert(0, "sid", sid_series("SM", np.arange(len(merged), dtype=np.int64), salt))
    merged.attrs["bodies"] = bodies
    return merged, new_row[:n_out]
