"""Benchmark of the Twilio sandbox: list pages over loopback.

    python -m bench.bench_sandbox [--messages 200000] [--page-size 1000] [--max-records 200000]

Prints records per second for
  * baseline: in-process json.dumps of the same pages' records (render + dumps, no HTTP) and
    json.loads of those bytes, measured in the same run, so the numbers are comparable;
  * raw HTTP: GET page after page over a keep-alive connection, following next_page_uri, json.loads;
  * twilio SDK: ``client.messages.stream(page_size=...)`` against the sandbox (builds MessageInstance objects).
The machine's load matters (2 shared cores here): compare the HTTP numbers with the in-process
baselines of the same run. The target of issue 3 is 20,000 records/s or more for pages of 1,000 over loopback.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from switchboard.sandbox.server import SandboxServer
from switchboard.sandbox.world import Scenario, generate


def _raw_http(server: SandboxServer, page_size: int, max_records: int) -> tuple[int, float]:
    u = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    auth = "Basic " + base64.b64encode(f"{server.account_sid}:{server.auth_token}".encode()).decode()
    uri = f"/2010-04-01/Accounts/{server.account_sid}/Messages.json?PageSize={page_size}"
    n = 0
    t = time.perf_counter()
    while uri and n < max_records:
        conn.request("GET", uri, headers={"Authorization": auth, "Accept": "application/json"})
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        if resp.status != 200:
            raise RuntimeError(payload)
        n += len(payload["messages"])
        uri = payload["next_page_uri"]
    conn.close()
    return n, time.perf_counter() - t


def _sdk(server: SandboxServer, page_size: int, max_records: int) -> tuple[int, float]:
    from twilio.rest import Client

    client = Client(server.account_sid, server.auth_token)
    client.api.base_url = server.base_url
    n = 0
    t = time.perf_counter()
    for _m in client.messages.stream(page_size=page_size, limit=max_records):
        n += 1
    return n, time.perf_counter() - t


def _baseline(server: SandboxServer, page_size: int, max_records: int) -> tuple[int, float, float, float]:
    """In-process, no HTTP: render dicts + json.dumps; the server's template renderer; json.loads."""
    ids = server.messages.account_ids(0)[::-1][:max_records].tolist()
    blobs = []
    t = time.perf_counter()
    for i in range(0, len(ids), page_size):
        blobs.append(json.dumps({"messages": server.render_messages(ids[i : i + page_size])}))
    dumps = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, len(ids), page_size):
        ", ".join(server.render_messages_json(ids[i : i + page_size]))
    fast = time.perf_counter() - t
    t = time.perf_counter()
    for b in blobs:
        json.loads(b)
    loads = time.perf_counter() - t
    return len(ids), dumps, fast, loads


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_sandbox", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200_000, help="world size in messages (default %(default)s)")
    p.add_argument("--calls", type=int, default=2_000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--max-records", type=int, default=200_000, help="records to page through per method")
    p.add_argument("--skip-sdk", action="store_true")
    a = p.parse_args(argv)

    t = time.perf_counter()
    world = generate(Scenario(messages=a.messages, calls=a.calls, days=a.days, end=datetime(2026, 1, 1, tzinfo=UTC)))
    gen = time.perf_counter() - t
    print(f"generated {a.messages:,} messages + {a.calls:,} calls in {gen:.1f} s "
          f"({a.messages / gen:,.0f} messages/s)")
    with SandboxServer(world) as server:
        n, dumps, fast, loads = _baseline(server, a.page_size, a.max_records)
        print(f"baseline  render dicts+json.dumps in-process : {n / dumps:>10,.0f} records/s  ({n:,} records)")
        print(f"baseline  template render in-process (served): {n / fast:>10,.0f} records/s")
        print(f"baseline  json.loads in-process              : {n / loads:>10,.0f} records/s")
        _raw_http(server, a.page_size, a.page_size)  # warm the filter cache and the connection path
        n, secs = _raw_http(server, a.page_size, a.max_records)
        print(f"raw HTTP  GET + json.loads, pages of {a.page_size}  : {n / secs:>10,.0f} records/s  ({n:,} in {secs:.2f} s)")
        if not a.skip_sdk:
            n, secs = _sdk(server, a.page_size, a.max_records)
            print(f"twilio SDK messages.stream                    : {n / secs:>10,.0f} records/s  ({n:,} in {secs:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
