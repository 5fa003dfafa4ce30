"""Recipients who opted out (issue 18), per the published warehouse: the sender does not text them.

The warehouse's ``opted_out_members`` view (``ingest/responses.sql``) lists (member, our number) pairs
whose last word was an opt-out keyword, or whose last message Twilio refused with 21610. A campaign
sending From a number skips the members opted out of that number; one sending through a Messaging
Service (whose number is picked by Twilio) skips members opted out of any of our numbers.

The sender reads the snapshot read-only through an in-memory connection that ATTACHes it, so a
snapshot replaced by the ingest's rename is seen (RECIPES: DuckDB and several processes). No
warehouse yet, or one built before issue 18: nobody is known to have opted out, and ``Suppression``
says so, so the plan can tell the user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from switchboard.sender.campaign import Campaign

log = logging.getLogger(__name__)
WAREHOUSE_FILE = "warehouse.duckdb"


@dataclass(frozen=True)
class Suppression:
    """Recipients' numbers opted out of this campaign's sender, and where that came from."""

    numbers: frozenset[str] = frozenset()
    evidence: dict[str, str] = field(default_factory=dict)  # number -> "keyword STOP" / "error 21610"
    source: str | None = None  # the warehouse read; None when there was none to read
    note: str | None = None  # why nothing could be checked, when so

    def __contains__(self, number: object) -> bool:
        return number in self.numbers

    def __len__(self) -> int:
        return len(self.numbers)


def opted_out(data_dir: str | Path, campaign: Campaign) -> Suppression:
    """The campaign's recipients who opted out of its sender, per ``<data_dir>/warehouse.duckdb``."""
    path = Path(data_dir) / WAREHOUSE_FILE
    if not path.is_file():
        return Suppression(note=f"no warehouse at {path}: opt-outs not checked (run `switchboard ingest` first)")
    numbers = sorted({r.number for r in campaign.recipients})
    if not numbers:
        return Suppression(source=str(path))
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH ? AS wh (READ_ONLY)", [str(path)])
        has_view = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE database_name = 'wh' AND view_name = 'opted_out_members'"
        ).fetchone()[0]
        if not has_view:
            return Suppression(source=str(path), note="the warehouse predates opt-out tracking: run `switchboard "
                                                      "ingest` to rebuild it; opt-outs not checked")
        rows = con.execute(
            """SELECT member_number, any_value(evidence), any_value(keyword)
               FROM wh.opted_out_members
               WHERE list_contains($numbers, member_number)
                 AND ($sender IS NULL OR our_number = $sender)
               GROUP BY member_number""",
            {"numbers": numbers, "sender": campaign.from_number},
        ).fetchall()
    except duckdb.Error as exc:  # a damaged or locked file: say so, do not guess
        log.warning("opt-outs not checked: %s", exc)
        return Suppression(source=str(path), note=f"could not read {path} ({type(exc).__name__}): opt-outs "
                                                  "not checked")
    finally:
        con.close()
    evidence = {n: (f"keyword {kw}" if ev == "keyword" and kw else "error 21610") for n, ev, kw in rows}
    return Suppression(numbers=frozenset(evidence), evidence=evidence, source=str(path))
