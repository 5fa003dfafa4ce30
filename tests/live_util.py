"""A real ``switchboard`` command in a subprocess whose stdout lines a test waits on (progress, not the clock).

``Command(args, data_dir)`` starts ``python -m switchboard.cli *args``; a reader thread queues its stdout lines;
``wait_line(regex)`` returns the first new line that matches (``TimeoutError`` only as a safety net when the
process stalls); ``interrupt()`` sends SIGINT (Ctrl-C) and returns the exit code.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Self


def default_sigint() -> None:
    """Ctrl-C as in a terminal: a suite started in the background of a non-interactive shell has SIGINT ignored,
    which its children inherit, and Python then never raises KeyboardInterrupt in them (a hang, not a test).
    A handled signal is reset to the default at exec, so this process handling it is enough."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Command:
    def __init__(self, args: list[str], data_dir: Path, env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_"))}
        self.err_path = data_dir.parent / f"{data_dir.name}-stderr.log"
        self._err = open(self.err_path, "w")  # noqa: SIM115 - closed in stop(); a file, never an unread pipe
        default_sigint()
        self.proc = subprocess.Popen([sys.executable, "-m", "switchboard.cli", *args], stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, env={**base, **(env or {})})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # the process closed its stdout (exited)

    def wait_line(self, pattern: str, timeout: float = 240) -> re.Match[str]:
        """The next stdout line matching ``pattern``; fails when the process ends first."""
        regex = re.compile(pattern)
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no line matching {pattern!r}; seen: {self.seen[-10:]}; "
                                   f"stderr: {self.stderr()[-2000:]}") from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {pattern!r}; seen: {self.seen[-10:]}; "
                                     f"stderr: {self.stderr()[-3000:]}")
            self.seen.append(line)
            if m := regex.search(line):
                return m

    def stderr(self) -> str:
        self._err.flush()
        return self.err_path.read_text()

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 180) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
