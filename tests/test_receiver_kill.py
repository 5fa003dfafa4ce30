"""kill -9 of `switchboard listen` under load: every request answered 2xx is in the spool; restart, continue.

The kill point is tied to progress (the number of acknowledged callbacks), never to a timer; six client
connections keep requests in flight when the SIGKILL lands.
"""

from __future__ import annotations

import http.client
import threading

import pytest
import requests

from switchboard.ingest.receiver import ReadStats, iter_events
from tests.receiver_util import Receiver, signed_callback

TOKEN = "kill-test-token-0123456789abcdef"
CLIENTS = 6
KILL_AFTER_ACKS = 600


def _params(sid: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": "AC" + "2" * 32, "ErrorCode": ""}


class _Load:
    """Client threads posting signed callbacks until the server goes away; records what got a 204."""

    def __init__(self, server: Receiver, prefix: str, stop_after: int | None = None) -> None:
        self.server, self.prefix, self.stop_after = server, prefix, stop_after
        self.acked: list[str] = []
        self.lock = threading.Lock()
        self.reached = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(w,), daemon=True) for w in range(CLIENTS)]

    def _client(self, worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        url = f"{self.server.base}/twilio/status"
        n = 0
        while not (self.stop_after and self.reached.is_set()):
            sid = f"SM{self.prefix}{worker:02d}{n:026d}"
            n += 1
            body, headers = signed_callback(url, _params(sid), TOKEN)
            try:
                conn.request("POST", "/twilio/status", body, headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return  # the server was killed: this request was never acknowledged
            if response.status == 204:
                with self.lock:
                    self.acked.append(sid)
                    if len(self.acked) >= (self.stop_after or KILL_AFTER_ACKS):
                        self.reached.set()

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)
            assert not thread.is_alive()


@pytest.mark.slow
def test_kill9_under_load_loses_no_acknowledged_callback_and_restarts(tmp_path):
    spool = tmp_path / "spool"
    server = Receiver(spool, TOKEN)
    load = _Load(server, "aa")
    load.start()
    assert load.reached.wait(timeout=300), "the receiver never acknowledged enough callbacks"
    server.kill9()  # with CLIENTS requests in flight
    load.join()
    server.stop()

    stats = ReadStats()
    stored = [e.sid for e in iter_events(spool, stats=stats)]
    assert len(load.acked) >= KILL_AFTER_ACKS
    assert set(load.acked) <= set(stored), f"{len(set(load.acked) - set(stored))} acknowledged callbacks lost"
    assert len(stored) == len(set(stored)) and stats.corrupt == 0
    assert len(stored) <= len(load.acked) + CLIENTS  # at most the in-flight ones beyond the acknowledged

    with Receiver(spool, TOKEN) as again:  # restart on the same spool: replays are absorbed, new ones stored
        url = f"{again.base}/twilio/status"
        for sid in load.acked[:50] + load.acked[-50:]:
            body, headers = signed_callback(url, _params(sid), TOKEN)
            assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 204
        more = _Load(again, "bb", stop_after=200)
        more.start()
        more.join()
        health = requests.get(f"{again.base}/healthz", timeout=30).json()
        assert health["duplicates"] == 100 and health["accepted"] == len(more.acked)

    final = [e.sid for e in iter_events(spool)]
    assert len(final) == len(set(final)) == len(stored) + len(more.acked)
    assert set(load.acked) | set(more.acked) <= set(final)


@pytest.mark.slow
def test_incremental_reads_while_the_receiver_writes_see_each_event_once(tmp_path):
    """What the incremental ingest will do: read after its checkpoint again and again while `listen` takes
    traffic. No read may see a partial line, and the reads together see every event exactly once."""
    spool = tmp_path / "spool"
    seen: list[str] = []
    checkpoint, reads, corrupt = None, 0, 0
    with Receiver(spool, TOKEN) as server:
        load = _Load(server, "cc", stop_after=1500)
        load.start()
        while any(t.is_alive() for t in load.threads) or reads == 0:
            stats = ReadStats()
            seen.extend(e.sid for e in iter_events(spool, after=checkpoint, stats=stats))
            checkpoint = stats.position or checkpoint
            corrupt += stats.corrupt
            reads += 1
        load.join()
        stats = ReadStats()
        seen.extend(e.sid for e in iter_events(spool, after=checkpoint, stats=stats))  # the tail after the load
    assert reads > 1 and corrupt == 0 and stats.corrupt == 0
    assert len(seen) == len(set(seen)) == len(load.acked)  # no duplicates across reads, nothing missed
    assert set(seen) == set(load.acked)
