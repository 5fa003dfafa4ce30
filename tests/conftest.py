"""Shared fixtures. Keep additive: several packages' tests use these.

``small_warehouse``: a real published warehouse built by ``ingest.pipeline.run_ingest``
through the real twilio SDK from a small seeded sandbox world (2,000 messages, 14 days
ending 2026-11-01), with its send logs; built once per test session (about 2 s).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

SMALL_END = datetime(2026, 11, 1, tzinfo=UTC)
SMALL_SCENARIO_ARGS = {"seed": 11, "days": 14, "messages": 2000, "calls": 200, "end": SMALL_END}


def sandbox_client_factory(server, account_sid: str | None = None, token: str | None = None):
    """A factory of real ``twilio.rest.Client`` objects pointed at ``server`` (with ingest's retrying HTTP client)."""
    from twilio.rest import Client

    from switchboard.core.twilio import RetryingHttpClient

    sid = account_sid or server.account_sid
    tok = token or server.accounts[sid]

    def make():
        client = Client(sid, tok, http_client=RetryingHttpClient(base_delay=0.01, max_delay=0.2))
        client.api.base_url = server.base_url
        return client

    return make


@pytest.fixture(scope="session")
def small_world():
    from switchboard.sandbox.world import Scenario, generate

    return generate(Scenario(**SMALL_SCENARIO_ARGS))


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory, small_world) -> Path:
    """Path of a published warehouse (open read-only) built from ``small_world``."""
    from switchboard.core.settings import Settings
    from switchboard.ingest.pipeline import run_ingest
    from switchboard.sandbox.server import SandboxServer, SimClock
    from switchboard.sandbox.world import write_send_logs

    data_dir = tmp_path_factory.mktemp("small_warehouse")
    write_send_logs(small_world, data_dir / "send_logs")
    with SandboxServer(small_world, clock=SimClock(SMALL_END)) as server:
        report = run_ingest(Settings(data_dir=data_dir), client_factory=sandbox_client_factory(server), progress=False)
    assert report.ok, report.summary()
    return data_dir / "warehouse.duckdb"


@pytest.fixture(scope="session")
def seeded(tmp_path_factory):
    """A read-only 20,000-message synthetic warehouse (bench.bench_analytics.build, the real
    facts SQL with its rollup tables), built once for every test that compares query paths."""
    import duckdb

    from bench.bench_analytics import build

    path = tmp_path_factory.mktemp("seeded_synthetic") / "w.duckdb"
    build(path, 20_000)
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def bench_periods():
    """Whole history, last week, and a single day of the seeded synthetic warehouse."""
    from datetime import timedelta

    from bench.bench_analytics import END, START

    return [(START, END), (END - timedelta(days=6), END), (START + timedelta(days=10), START + timedelta(days=10))]


# Hypothesis: random examples on a developer's machine (to find new bugs), a fixed
# derandomised sequence in CI (so a run is reproducible and a red CI is not luck).
from hypothesis import settings as _hypothesis_settings

_hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
_hypothesis_settings.register_profile("dev", deadline=None, print_blob=True)
_hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")
