"""Shared plumbing for the benchmarks: results with targets, timing, memory, machine info,
and the cached, reproducible benchmark dataset.

Nothing here is imported by the application; ``bench`` is a tool, not part of the product.

* :class:`Results` collects :class:`Figure` rows (area, name, value, unit, target, pass/miss)
  and writes ``results.json`` and ``results.md``.
* :func:`timings` runs a callable repeatedly and returns seconds; :func:`median` and
  :func:`p95` summarise them.
* :func:`run_measured` runs a child process, samples the resident memory of its whole
  process tree every 50 ms, and returns its output with the peak.
* :func:`ensure_dataset` generates an ``N``-message world with the sandbox's vectorised
  generator once, writes its send logs (Parquet and JSONL) and BulkExport day files under
  ``bench/results/cache/n{N}-s{seed}/``, and reuses them on the next run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
CACHE_DIR = RESULTS_DIR / "cache"
PYTHON = sys.executable

# The history ends on a fixed day so a cached dataset is the same whatever day the bench runs;
# its last day (2026-11-24) is the one bench.bench_analytics's cases query (END, 90 days).
DATASET_END = datetime(2026, 11, 25, tzinfo=UTC)
DATASET_DAYS = 90
CACHE_VERSION = 2  # bump when the cached layout changes

_T0 = time.monotonic()


def say(msg: str) -> None:
    """Progress output (stderr, with elapsed time), so stdout stays parseable."""
    el = time.monotonic() - _T0
    print(f"[bench {int(el // 60):02d}:{el % 60:04.1f}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- results


@dataclass
class Figure:
    """One measured figure beside its target. ``op`` is '>=' or '<=' (None: informational)."""

    area: str
    name: str
    value: float | None
    unit: str
    target: float | None = None
    op: str | None = None
    note: str = ""
    ok: bool | None = None

    def __post_init__(self) -> None:
        if self.ok is None and self.value is not None and self.target is not None and self.op:
            if isinstance(self.value, float) and math.isnan(self.value):
                self.ok = None
            else:
                self.ok = self.value >= self.target if self.op == ">=" else self.value <= self.target

    @property
    def mark(self) -> str:
        if self.value is None:
            return "n/a"
        if self.ok is None:
            return ""
        return "pass" if self.ok else "MISS"


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("rows/s", "records/s"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if unit in ("x", "×"):
        return f"{value:.2f}"
    if unit == "MB":
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.3g}"
    return str(value)


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        area: str,
        name: str,
        value: float | None,
        unit: str,
        target: float | None = None,
        op: str | None = None,
        note: str = "",
    ) -> Figure:
        fig = Figure(area, name, None if value is None else float(value), unit, target, op, note)
        self.figures.append(fig)
        shown = f"{fmt_value(fig.value, unit)} {unit}"
        goal = f"  (target {op} {fmt_value(target, unit)} {unit}: {fig.mark})" if target is not None else ""
        say(f"  {area} | {name}: {shown}{goal}{'  — ' + note if note else ''}")
        return fig

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(f"  note: {text}")

    # ---- output

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "figures": [asdict(f) | {"mark": f.mark} for f in self.figures], "notes": self.notes}

    def to_markdown(self) -> str:
        m = self.meta
        lines = [
            "# Switchboard benchmark results",
            "",
            f"- When: {m.get('timestamp', '?')} (took {m.get('seconds', 0):,.0f} s)",
            f"- Machine: {m.get('cores', '?')} cores ({m.get('cpu', '?')}), {m.get('memory_gb', '?')} GB RAM, "
            f"{m.get('platform', '?')}",
            f"- Software: Python {m.get('python', '?')}, DuckDB {m.get('duckdb', '?')}, pandas {m.get('pandas', '?')}",
            f"- Data: {m.get('messages', 0):,} messages (seed {m.get('seed', '?')}), {m.get('calls', 0):,} calls, "
            f"{m.get('send_log_rows', 0):,} send-log rows, {m.get('conversion_rows', 0):,} conversions",
            f"- Command: `{m.get('command', '')}`",
            f"- Load average (1, 5, 15 min) at start: {m.get('load_average_at_start', '?')}, at end: "
            f"{m.get('load_average_at_end', '?')} (other work on the machine skews timings)",
            "",
        ]
        passed = sum(1 for f in self.figures if f.ok)
        missed = [f for f in self.figures if f.ok is False]
        lines.append(f"**{passed} targets met, {len(missed)} missed.**" + (
            " Missed: " + "; ".join(f"{f.area} / {f.name}" for f in missed) if missed else ""))
        lines.append("")
        for area in dict.fromkeys(f.area for f in self.figures):
            lines += [f"## {area}", "", "| figure | value | target | | note |", "|---|---:|---|---|---|"]
            for f in (f for f in self.figures if f.area == area):
                target = f"{f.op} {fmt_value(f.target, f.unit)} {f.unit}" if f.target is not None else ""
                lines.append(
                    f"| {f.name} | {fmt_value(f.value, f.unit)} {f.unit if f.value is not None else ''} | {target} "
                    f"| {f.mark} | {f.note} |"
                )
            lines.append("")
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        js, md = out_dir / "results.json", out_dir / "results.md"
        js.write_text(json.dumps(self.to_json(), indent=2, default=str))
        md.write_text(self.to_markdown())
        return js, md


def machine_info() -> dict[str, Any]:
    import duckdb
    import pandas

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cores": usable,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------- timing


def timings(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def p95(xs: Sequence[float]) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, math.ceil(0.95 * len(s)) - 1)
    return s[k]


# --------------------------------------------------------------------------- memory


def _tree_pids(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                kids = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                todo.extend(int(k) for k in kids)
        except OSError:
            continue
    return pids


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (0 when gone)."""
    total = 0
    for p in _tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


def self_peak_mb() -> float:
    """This process's own peak resident memory (VmHWM) in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemorySampler:
    """Samples the RSS of a process tree in a thread; ``peak`` in MB."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float | None = None,
                 echo_stderr: bool = True, cwd: Path | None = None) -> ChildRun:
    """Run ``cmd``; stderr lines are echoed as progress; memory of the process tree is sampled."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONPATH", str(REPO))
    t = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=str(cwd or REPO)
    )
    err_lines: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            if echo_stderr:
                print("    | " + line.rstrip()[:200], file=sys.stderr, flush=True)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    with MemorySampler(proc.pid) as mem:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    pumper.join(timeout=5)
    return ChildRun(proc.returncode, out or "", "".join(err_lines), time.perf_counter() - t, mem.peak)


def last_json(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that parses as a JSON object (how children report back)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


# --------------------------------------------------------------------------- dataset


def default_calls(messages: int) -> int:
    """Calls scale with messages (a tenth), as in the demo."""
    return max(100, messages // 10)


def scenario(messages: int, seed: int, calls: int | None = None):
    from switchboard.sandbox.world import Scenario

    return Scenario(
        seed=seed, days=DATASET_DAYS, messages=messages,
        calls=default_calls(messages) if calls is None else calls, end=DATASET_END,
    )


@dataclass
class Dataset:
    root: Path
    messages: int
    seed: int
    calls: int
    meta: dict[str, Any]

    @property
    def parquet_dir(self) -> Path:
        return self.root / "send_logs_parquet"

    @property
    def jsonl_dir(self) -> Path:
        return self.root / "send_logs_jsonl"

    @property
    def bulk_dir(self) -> Path:
        return self.root / "bulk_export"

    def bulk_dirs(self) -> list[Path]:
        return sorted(p for p in self.bulk_dir.iterdir() if p.is_dir()) if self.bulk_dir.exists() else []


def dataset_dir(messages: int, seed: int) -> Path:
    return CACHE_DIR / f"n{messages}-s{seed}-v{CACHE_VERSION}"


def ensure_dataset(messages: int, seed: int, *, bulk: bool = True, jsonl: bool = True) -> Dataset:
    """Generate (once) and return the cached files of an ``messages``-message world."""
    root = dataset_dir(messages, seed)
    meta_path = root / "dataset.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if (not bulk or meta.get("bulk")) and (not jsonl or meta.get("jsonl")):
            say(f"dataset: cached at {root.relative_to(REPO)}")
            return Dataset(root, messages, seed, meta["calls"], meta)
    from switchboard.sandbox.world import generate, write_bulk_export, write_send_logs

    sc = scenario(messages, seed)
    say(f"dataset: generating {messages:,} messages + {sc.calls:,} calls (seed {seed}) with sandbox.world.generate…")
    t = time.perf_counter()
    world = generate(sc, progress=lambda m: say(f"  generate: {m}"))
    gen_s = time.perf_counter() - t
    say(f"dataset: generated in {gen_s:.1f} s; writing send logs")
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    write_send_logs(world, root / "send_logs_parquet", fmt="parquet")
    pq_s = time.perf_counter() - t
    jsonl_s = None
    if jsonl:
        t = time.perf_counter()
        write_send_logs(world, root / "send_logs_jsonl", fmt="jsonl")
        jsonl_s = time.perf_counter() - t
    bulk_s = None
    if bulk:
        say("dataset: writing BulkExport day files (gzipped JSON lines), one folder per account")
        t = time.perf_counter()
        for acct in bulk_accounts(world.account_sids, messages):
            write_bulk_export(world, root / "bulk_export" / acct, acct)
        bulk_s = time.perf_counter() - t
    meta = {
        "messages": len(world.messages),
        "calls": len(world.calls),
        "send_log_rows": len(world.send_log),
        "conversion_rows": len(world.conversions),
        "accounts": world.account_sids,
        "start": world.start.isoformat(),
        "end": world.end.isoformat(),
        "generate_seconds": round(gen_s, 2),
        "write_parquet_seconds": round(pq_s, 2),
        "write_jsonl_seconds": None if jsonl_s is None else round(jsonl_s, 2),
        "write_bulk_seconds": None if bulk_s is None else round(bulk_s, 2),
        "bulk": bulk,
        "bulk_accounts": bulk_accounts(world.account_sids, messages) if bulk else [],
        "jsonl": jsonl,
        "scenario": {"seed": seed, "days": sc.days, "messages": sc.messages, "calls": sc.calls,
                     "end": sc.end.isoformat() if sc.end else None},
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    del world
    return Dataset(root, messages, seed, meta["calls"], meta)


BULK_ALL_ACCOUNTS_UP_TO = 2_000_000


def bulk_accounts(account_sids: list[str], messages: int) -> list[str]:
    """BulkExport files are written in Python (about 30k rows/s): above 2M messages only the
    subaccount's (about 15 %) are written, to keep generation in minutes."""
    return list(account_sids) if messages <= BULK_ALL_ACCOUNTS_UP_TO else list(account_sids[1:])


def files(directory: Path, prefix: str, ext: str) -> list[Path]:
    return sorted(directory.glob(f"{prefix}-*.{ext}"))


def sql_list(paths: Sequence[Path]) -> str:
    """A DuckDB list literal of file paths (ours, never user input)."""
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"
