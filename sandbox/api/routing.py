"""HTTP: the request handler and the routing of a path to a resource call."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from switchboard.sandbox.api.errors import ApiError, RawJSON, method_not_allowed, not_found

if TYPE_CHECKING:
    from switchboard.sandbox.server import SandboxServer

_KINDS = {"Messages": "messages", "Calls": "calls"}


def route(sb: SandboxServer, method: str, target: str, auth: str | None, raw: bytes) -> tuple[int, Any]:
    """(HTTP status, payload) of a request for ``target`` (path and query); ApiError on refusal."""
    parts = urlsplit(target)
    path = parts.path
    params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    seg = path.strip("/").split("/")
    if len(seg) < 2 or seg[0] != "2010-04-01" or not seg[-1].endswith(".json"):
        raise not_found(path)
    if seg[1] == "Accounts.json" and len(seg) == 2:
        ai = sb.authorize(auth, None)
        if method == "GET":
            return 200, sb.list_accounts(ai, params)
        raise method_not_allowed()
    if seg[1] != "Accounts" or len(seg) < 3:
        raise not_found(path)
    ai = sb.authorize(auth, seg[2].removesuffix(".json"))
    if len(seg) == 3:
        return 200, sb.account_json(ai)
    kind = _KINDS.get(seg[3].removesuffix(".json"))
    if kind is None or len(seg) > 5:
        raise not_found(path)
    if len(seg) == 5:
        if method == "GET":
            return 200, sb.fetch(kind, ai, seg[4].removesuffix(".json"))
        raise method_not_allowed()
    if method == "GET":
        return 200, sb.list_page(kind, ai, params, path, raw=True)
    if method == "POST":
        return 201, (sb.create_message if kind == "messages" else sb.create_call)(ai, _form(raw))
    raise method_not_allowed()


def _form(raw: bytes) -> dict[str, str]:
    """A form body: the last value of each field, except StatusCallbackEvent (repeated, space-joined)."""
    form = {}
    for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items():
        form[k] = " ".join(v) if k == "StatusCallbackEvent" else v[-1]
    return form


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SwitchboardSandbox/1.0"
    # Headers and body are written separately; with Nagle on, keep-alive clients
    # wait for a delayed ACK (~40 ms) on every response.
    disable_nagle_algorithm = True
    sandbox: SandboxServer  # set on the subclass made per server
    request_no = 0  # this request's number, for its Twilio-Request-Id

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sb = self.sandbox
        self.request_no = sb.request_started()
        try:
            self._answer(sb, method)
        finally:
            sb.request_finished()

    def _answer(self, sb: SandboxServer, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if sb.maybe_fault() == "drop":
                self._drop()
                return
            status, payload = route(sb, method, self.path, self.headers.get("Authorization"), raw)
            self._send(status, payload)
        except ApiError as e:
            self._send(e.status, e.body(), e.headers)
        except Exception as e:  # noqa: BLE001 - a bug must not kill the connection silently
            self._send(500, ApiError(500, 20500, f"Internal Server Error: {type(e).__name__}: {e}").body())

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = (payload if isinstance(payload, RawJSON) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Twilio-Request-Id", f"RQ{self.request_no:032x}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
