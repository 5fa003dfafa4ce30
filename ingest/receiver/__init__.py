"""The receiver of issue 16: ``switchboard listen`` (status callbacks and Event Streams into a spool).

* ``app.create_app(spool, ReceiverConfig(auth_token, public_url))``: the Starlette ASGI app;
* ``spool.Spool``: the fsynced, group-committed append-only spool; ``spool.Checkpoint``, ``spool.compact``;
* ``events.iter_events(spool_dir, after=checkpoint, stats=ReadStats())``: normalised ``StatusEvent``s for
  the incremental ingest; ``events.latest_status`` folds out-of-order arrivals.

See README.md beside this file.
"""

from switchboard.ingest.receiver.events import StatusEvent, iter_events, latest_status
from switchboard.ingest.receiver.spool import Checkpoint, ReadStats, compact

__all__ = ["Checkpoint", "ReadStats", "StatusEvent", "compact", "iter_events", "latest_status"]
