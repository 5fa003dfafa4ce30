"""Issue 18's "done when", end to end: the sandbox's exp_mkt_urgency (its urgent wording triples opt-outs, in
ground truth) goes through the real ingest (sandbox -> twilio SDK -> DuckDB, replies included), and the
Responses numbers per variant, the opt-out guardrail of the experiment readout and the Experiments page
all show the variant that raises opt-outs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from switchboard.analytics import experiments as ex
from switchboard.analytics import responses
from tests.conftest import sandbox_client_factory

pytestmark = pytest.mark.slow

END = datetime(2026, 11, 1, tzinfo=UTC)
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
EXPERIMENT = "exp_mkt_urgency"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 60-day, 40,000-SMS sandbox world (about 2,000 sends per arm of exp_mkt_urgency) ingested the way the
    demo ingests it; returns (data dir, the experiment's ground truth)."""
    from switchboard.core.settings import Settings
    from switchboard.ingest.pipeline import run_ingest
    from switchboard.sandbox.server import SandboxServer, SimClock
    from switchboard.sandbox.world import Scenario, generate, write_send_logs

    world = generate(Scenario(seed=7, days=60, messages=40_000, calls=2_000, end=END))
    data_dir = tmp_path_factory.mktemp("urgency")
    write_send_logs(world, data_dir / "send_logs")
    with SandboxServer(world, clock=SimClock(END)) as server:
        report = run_ingest(Settings(data_dir=data_dir), client_factory=sandbox_client_factory(server),
                            progress=False)
    assert report.ok, report.summary()
    truth = next(e for e in world.ground_truth["experiments"] if e["experiment_id"] == EXPERIMENT)
    return data_dir, truth


def test_opt_out_rates_per_variant_and_the_guardrail_match_ground_truth(built):
    data_dir, truth = built
    observed = truth["observed_opt_out_rate"]
    assert observed["urgent"] > 2 * observed["control"]  # the world's premise
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        start, end = con.execute("SELECT min(sent_day), max(sent_day) FROM attempt_facts").fetchone()
        rates = responses.response_rates(con, start=start, end=end, by="variant").set_index("key")
        urgent, control = rates.loc[f"{EXPERIMENT} · urgent"], rates.loc[f"{EXPERIMENT} · control"]
        # per delivered SMS, as the world drew them (about 1.5 % against 5 %)
        assert urgent["opt_out_rate"] == pytest.approx(observed["urgent"], abs=0.015)
        assert control["opt_out_rate"] == pytest.approx(observed["control"], abs=0.01)
        assert urgent["opt_out_ci_low"] > control["opt_out_ci_high"]
        page = ex.experiment_data(con)
        pre = ex.preperiod_data(con, EXPERIMENT)
        read = ex.experiment_readout(ex.analyse_from(page, EXPERIMENT, control="control"), page, pre)
    finally:
        con.close()
    assert pre.has_responses
    guard = read.guardrails["urgent"]["opt-out rate"]
    assert guard.treatment_rate > 2 * guard.control_rate
    assert read.decision.outcome != "Ship" and "opt-out rate" in read.decision.breached, read.decision.reason


def test_experiments_page_flags_the_variant_that_raises_opt_outs(built, monkeypatch):
    data_dir, _ = built
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/experiments.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="experiment").set_value(EXPERIMENT).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [a.value for kind in ("success", "info", "warning", "error") for a in getattr(at, kind)]
    assert any(s.startswith("**Don't ship**") and "opt-out rate got worse" in s for s in shown), shown
    assert not at.success  # nothing says ship
    table = next(df.value for df in at.dataframe if "guardrail" in df.value.columns)
    row = table[(table["guardrail"] == "opt-out rate") & (table["variant"] == "urgent")]
    assert len(row) == 1 and bool(row["hurt"].iat[0]), table
