"""Helpers for the receiver tests and bench: a real ``switchboard listen`` process and signed requests.

* ``Receiver(spool_dir, token, public_url=None)``: ``python -m switchboard.ingest.receiver.cli --port 0`` as a
  subprocess; the port is read from its first output line (the socket is bound and listening before that
  line is printed, so requests made after it simply queue until the server accepts them: no polling).
* ``signed_callback(url, params, token)`` / ``signed_batch(url, events, token)``: what Twilio sends, signed
  with the twilio SDK's ``RequestValidator.compute_signature`` (the batch adds ``bodySHA256`` to the URL as
  Twilio does for JSON bodies).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Self
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


class Receiver:
    def __init__(self, spool_dir: Path, token: str, public_url: str | None = None, *extra: str) -> None:
        cmd = [sys.executable, "-m", "switchboard.ingest.receiver.cli", "--port", "0", "--spool", str(spool_dir),
               "--log-level", "warning", *extra]
        if public_url:
            cmd += ["--public-url", public_url]
        env = {**os.environ, "TWILIO_AUTH_TOKEN": token}
        # stderr to a file, never an unread pipe: a full pipe would block the server's logging
        self.log_path = Path(spool_dir).parent / f"receiver-{os.getpid()}-{id(self)}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - open for the process's life, closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True)
        first = self.proc.stdout.readline() if self.proc.stdout else ""
        if not first.startswith("listening on http://"):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"receiver did not start: {first!r} {self.log_path.read_text()}")
        self.base = first.split()[2]  # http://127.0.0.1:PORT
        self.port = int(self.base.rsplit(":", 1)[1])

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def signed_callback(url: str, params: dict[str, str], token: str) -> tuple[bytes, dict[str, str]]:
    """(form body, headers) of a status callback to ``url`` signed as Twilio signs it."""
    signature = RequestValidator(token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return urlencode(params).encode(), headers


def signed_batch(url: str, events: list[dict], token: str) -> tuple[str, bytes, dict[str, str]]:
    """(URL with bodySHA256, JSON body, headers) of an Event Streams webhook batch signed as Twilio signs it."""
    body = json.dumps(events).encode()
    full = f"{url}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(token).compute_signature(full, {})
    return full, body, {"X-Twilio-Signature": signature, "Content-Type": "application/json"}


def message_event(event_id: str, sid: str, status: str, timestamp: str, error_code: int | None = None) -> dict:
    """An outbound-message status CloudEvent in Twilio's documented shape (Messaging.MessageStatus)."""
    data = {"messageSid": sid, "timestamp": timestamp, "accountSid": "AC" + "0" * 32,
            "eventName": f"com.twilio.messaging.message.{status}", "apiVersion": "2010-04-01",
            "from": "+15005550006", "to": "+6281234567890", "messageStatus": status.upper(),
            "body": "a message body that must never be stored", "mcc": "510", "mnc": "10",
            "numberOfSegments": 1}
    if error_code is not None:
        data["errorCode"] = error_code
    return {"specversion": "1.0", "type": f"com.twilio.messaging.message.{status}", "source": "AB" + "0" * 32,
            "id": event_id, "dataschema": "https://events-schemas.twilio.com/Messaging.MessageStatus/8",
            "datacontenttype": "application/json", "time": timestamp, "data": data}
