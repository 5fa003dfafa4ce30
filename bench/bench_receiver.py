"""Benchmark of `switchboard listen`: signed status callbacks per second on loopback, and its memory.

    python -m bench.bench_receiver [--seconds 20] [--connections 64] [--spool-dir DIR]

Runs, in one go on the same machine and disk, so the numbers compare:
  * baseline 1, raw fsync: append a 250-byte line and fdatasync it, one at a time, in the spool's folder:
    the ceiling of a receiver that syncs once per request (no group commit);
  * baseline 2, echo: the same HTTP client against a bare uvicorn app that answers 204 at once (no
    signature check, no spool): the ceiling of HTTP on this machine;
  * the receiver: the real `switchboard listen` process, every request a distinct status callback signed
    with the twilio SDK's RequestValidator, every 204 answered only after the event is fdatasync'ed
    (group commit). Its resident memory is sampled every second over the whole burst.

The issue's targets: >= 2,000 signed callbacks/s with batched fsync, memory flat over a 5-minute burst
(``--seconds 300``). Memory grows at first while the dedupe window (``--dedupe-window``, 100,000 keys)
fills, then stays flat; the table shows RSS at the start, when the window is full, and at the end.
The client is Python too and shares the 2 cores: the echo baseline shows what it can drive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

TOKEN = "bench-auth-token-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


async def echo_app(scope, receive, send) -> None:  # the echo baseline (ASGI, no framework)
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def cpu_calibration() -> float:
    """Microseconds for a fixed pure-Python loop: how contended the CPU was during this run (compare runs)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(1000):
            sum(range(1000))
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def raw_fsync_rate(folder: Path, seconds: float = 3.0) -> float:
    """Appends + fdatasyncs per second, one line at a time (what a per-request sync would cost)."""
    path = folder / "fsync-probe.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    line, n, start = b"x" * 249 + b"\n", 0, time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            os.write(fd, line)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        path.unlink()
    return n / (time.perf_counter() - start)


def _callback_params(n: int) -> dict[str, str]:
    """A realistic SMS status callback (the parameters Twilio posts), message n."""
    sid = f"SM{n:032x}"
    return {"SmsSid": sid, "SmsStatus": "delivered", "MessageStatus": "delivered", "To": "+6281234567890",
            "MessagingServiceSid": "MG" + "3" * 32, "MessageSid": sid, "AccountSid": "AC" + "4" * 32,
            "From": "+15005550006", "ApiVersion": "2010-04-01", "RawDlrDoneDate": "2612041000"}


class Client:
    """Keep-alive HTTP/1.1 connections posting signed callbacks as fast as answers come back."""

    def __init__(self, port: int, connections: int, sign: bool) -> None:
        self.port, self.connections, self.sign = port, connections, sign
        self.validator = RequestValidator(TOKEN)
        self.url = f"http://127.0.0.1:{port}/twilio/status"
        self.counter = 0
        self.statuses: dict[int, int] = {}
        self.cpu_seconds = 0.0  # the client's own CPU (it shares the machine's cores with the server)

    def _request(self) -> bytes:
        self.counter += 1
        params = _callback_params(self.counter)
        body = urlencode(params).encode()
        signature = self.validator.compute_signature(self.url, params) if self.sign else "unsigned"
        return (f"POST /twilio/status HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def _worker(self, deadline: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while time.monotonic() < deadline:
                writer.write(self._request())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if length and int(length.group(1)):
                    await reader.readexactly(int(length.group(1)))
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 503:
                    await asyncio.sleep(0.05)  # what Twilio would do with Retry-After, shortened
        finally:
            writer.close()

    def run(self, seconds: float) -> tuple[dict[int, int], float]:
        async def main() -> float:
            deadline = time.monotonic() + seconds
            start = time.perf_counter()
            await asyncio.gather(*(self._worker(deadline) for _ in range(self.connections)))
            return time.perf_counter() - start

        cpu0 = time.process_time()
        try:
            import uvloop

            elapsed = uvloop.run(main())
        except ImportError:
            elapsed = asyncio.run(main())
        self.cpu_seconds = time.process_time() - cpu0
        return self.statuses, elapsed


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(1.0):
            try:
                self.samples.append((time.monotonic() - start, _rss_mb(self.pid)))
            except OSError:
                return


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bench_echo(seconds: float, connections: int) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) of the bare echo app."""
    sock = _listening_socket()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.bench_receiver:echo_app", "--fd",
                             str(sock.fileno()), "--log-level", "warning", "--no-access-log"],
                            cwd=REPO, pass_fds=[sock.fileno()])
    try:
        cpu0 = _cpu_seconds(proc.pid)
        statuses, elapsed = Client(sock.getsockname()[1], connections, sign=False).run(seconds)
        cpu = _cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait()
        sock.close()
    done = statuses.get(204, 0)
    return done / elapsed, cpu / max(done, 1) * 1e6


def bench_receiver(spool: Path, seconds: float, connections: int, extra: list[str]) -> dict:
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "switchboard.ingest.receiver.cli", "--port", "0", "--spool",
                             str(spool), "--log-level", "warning", *extra],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(proc.stdout.readline().split()[2].rsplit(":", 1)[1])  # "listening on http://127.0.0.1:P"
        sampler = RssSampler(proc.pid)
        sampler.start()
        cpu0 = _cpu_seconds(proc.pid)
        client = Client(port, connections, sign=True)
        statuses, elapsed = client.run(seconds)
        cpu = _cpu_seconds(proc.pid) - cpu0
        sampler.stop.set()
        sampler.join()
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as answer:
            health = json.load(answer)
    finally:
        proc.terminate()
        proc.wait()
    return {"statuses": statuses, "elapsed": elapsed, "rss": sampler.samples, "health": health, "cpu": cpu,
            "client_cpu": client.cpu_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the receiver burst (default 20)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent client connections")
    parser.add_argument("--spool-dir", type=Path, default=None, help="where the spool goes (default: a temp dir)")
    parser.add_argument("--dedupe-window", type=int, default=100_000,
                        help="the receiver's --dedupe-window; RSS grows until this many events are in (default "
                             "100000, the receiver's default)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.spool_dir) as tmp:
        folder = Path(tmp)
        calibration = cpu_calibration()
        fsyncs = raw_fsync_rate(folder)
        echo, echo_us = bench_echo(min(args.seconds, 10.0), args.connections)
        result = bench_receiver(folder / "spool", args.seconds, args.connections,
                                ["--dedupe-window", str(args.dedupe_window)])
        spool_bytes = sum(p.stat().st_size for p in (folder / "spool").glob("seg-*.jsonl"))
    ok = result["statuses"].get(204, 0)
    rate = ok / result["elapsed"]
    health = result["health"]
    per_sync = health["accepted"] / max(health["fsync_batches"], 1)
    rss = result["rss"]
    print(f"\nswitchboard listen benchmark: {args.seconds:.0f} s burst, {args.connections} connections, "
          f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores; sum(range(1000)) took "
          f"{calibration:.1f} us (the CPU's contention: compare runs by it)")
    print(f"  baseline raw fdatasync, one per line:      {fsyncs:10,.0f} syncs/s")
    cpu_us = result["cpu"] / max(ok, 1) * 1e6
    print(f"  baseline echo (uvicorn, 204, no checks):   {echo:10,.0f} requests/s   "
          f"server CPU {echo_us:5.0f} us/request")
    print(f"  receiver, signed callbacks, fsync'd:       {rate:10,.0f} callbacks/s  "
          f"server CPU {cpu_us:5.0f} us/callback = {1e6 / cpu_us:,.0f}/s per core   (target >= 2,000/s)")
    client_us = result["client_cpu"] / max(ok, 1) * 1e6
    print(f"    client CPU {client_us:.0f} us/callback (signing + HTTP, on the same cores); "
          f"server + client = {1e6 / (cpu_us + client_us):,.0f}/s per core of this machine")
    print(f"    answers {dict(sorted(result['statuses'].items()))}, accepted {health['accepted']:,}, "
          f"{health['fsync_batches']:,} fdatasyncs ({per_sync:.1f} events per sync), spool {spool_bytes / 1e6:.1f} MB")
    if rss:
        marks = [rss[0], rss[len(rss) // 4], rss[len(rss) // 2], rss[3 * len(rss) // 4], rss[-1]]
        peak = max(mb for _, mb in rss)
        second_half = [mb for t, mb in rss if t >= rss[-1][0] / 2]
        print("    RSS MB at " + ", ".join(f"{t:.0f}s {mb:.1f}" for t, mb in marks)
              + f"; peak {peak:.1f}; second half {min(second_half):.1f}..{max(second_half):.1f}")
        full_at = args.dedupe_window / max(rate, 1)  # seconds until the dedupe window is full
        after = [mb for t, mb in rss if t >= full_at + 5]
        if after:
            print(f"    dedupe window ({args.dedupe_window:,} keys) full at ~{full_at:.0f}s; RSS after it "
                  f"{min(after):.1f}..{max(after):.1f} MB over {rss[-1][0] - full_at - 5:.0f}s")
    return 0 if rate >= 2000 else 1


if __name__ == "__main__":
    sys.exit(main())
