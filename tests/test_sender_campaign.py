"""The campaign model, variant assignment and the dry-run plan: pure, no network."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.sender import api
from switchboard.sender.assignment import assign_variant, bucket
from switchboard.sender.campaign import (
    CampaignError,
    Variant,
    load_campaign_text,
    normalise_locale,
    say_language,
)
from switchboard.sender.planning import PLAN_COLUMNS, mask_number

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "campaign.toml"

MINIMAL = """\
id = "t1"
name = "Test"
purpose = "password_reset"
experiment_id = "exp1"
from = "+15005550006"
rate_limit = 5

[[variants]]
name = "a"
weight = 1
bodies = { en = "Hello", es = "Hola", pt-BR = "Olá" }
"""
RECIPIENTS = "number,user_id,locale\n+15005550010,u1,es-MX\n+15005550011,u2,pt_br\n+15005550012,u3,de\n"
ALLOW = "+15005550010\n+15005550011  # comment\n\n# only a comment\n+15005550012\n"


def load(text: str = MINIMAL, recipients: str = RECIPIENTS, allow: str = ALLOW) -> api.Campaign:
    return load_campaign_text(text, recipients_text=recipients, allow_list_text=allow, source="c.toml")


def problems(text: str = MINIMAL, recipients: str = RECIPIENTS, allow: str = ALLOW) -> list[str]:
    with pytest.raises(CampaignError) as info:
        load(text, recipients, allow)
    return [str(p) for p in info.value.problems]


# --- the example and loading ----------------------------------------------------------------------


def test_example_campaign_loads_and_plans() -> None:
    campaign = api.load_campaign(EXAMPLE)
    assert campaign.id == "pwreset-rehearsal"
    assert [v.name for v in campaign.variants] == ["control", "short"]
    assert campaign.fallback is not None and campaign.fallback.after_seconds == 120
    assert not campaign.outside_allow_list()
    preview = api.preview_campaign(campaign)
    assert list(preview.plan.columns) == PLAN_COLUMNS
    assert preview.recipients == len(campaign.recipients) == 10
    assert set(preview.totals["country"]) == {"US", "GB", "BR"}
    assert preview.totals["estimated_cost_usd"].sum() == pytest.approx(preview.estimated_cost_usd)


def test_load_campaign_accepts_toml_text_and_a_path_string() -> None:
    text = EXAMPLE.read_text()
    from_text = api.load_campaign(text, base_dir=EXAMPLE.parent)
    from_str_path = api.load_campaign(str(EXAMPLE))
    assert from_text.recipients == from_str_path.recipients
    uploaded = api.load_campaign(text, recipients_text=RECIPIENTS, allow_list_text=ALLOW)
    assert [r.user_id for r in uploaded.recipients] == ["u1", "u2", "u3"]


def test_language_comes_from_the_locale_with_fallback() -> None:
    frame = api.plan(load())
    by_user = frame.set_index("user_id")
    assert by_user.loc["u1", "language"] == "es"  # es-MX -> es
    assert by_user.loc["u2", "language"] == "pt-BR"  # pt_br normalised -> exact match
    assert by_user.loc["u3", "language"] == "en"  # de -> no body -> default language
    assert by_user.loc["u1", "body"] == "Hola"
    assert by_user.loc["u1", "encoding"] == "GSM-7" and by_user.loc["u2", "encoding"] == "UCS-2"


def test_say_language_and_locale_normalisation() -> None:
    assert normalise_locale("pt_br") == "pt-BR"
    assert say_language("es-MX") == "es-MX"
    assert say_language("es-CO") == "es-ES"  # no Colombian voice: the language's default
    assert say_language("xx") == "en-US"


def test_plan_masks_numbers_and_totals_per_country() -> None:
    frame = api.plan(load())
    assert not frame["number_masked"].str.contains("5550010").any()
    assert mask_number("+15005550010") == "+1 5•••• ••010"  # the UI's one style (core.phones)
    totals = api.plan_totals(frame)
    assert totals.to_dict("records") == [
        {
            "country": "US",
            "recipients": 3,
            "segments": 3,
            "estimated_cost_usd": pytest.approx(3 * 0.0083),
            "price_known": True,
        }
    ]


# --- validation: every problem, located -----------------------------------------------------------


def test_validation_reports_every_problem_with_file_line_and_field() -> None:
    text = MINIMAL.replace("rate_limit = 5", 'rate_limit = "fast"\nmax_size = 0').replace(
        "weight = 1", "weight = -2"
    )
    found = problems(text, recipients=RECIPIENTS + "5005550013,u4,en\n+15005550014,u1,en\n")
    joined = "\n".join(found)
    assert "c.toml line 6: rate_limit: must be a number" in joined
    assert "c.toml line 7: max_size: 0 is out of range" in joined
    assert "c.toml line 11: variants[0].weight" in joined
    assert "recipients line 5: number: '5005550013' is not an E.164 number" in joined
    assert "recipients line 6: user_id: duplicate 'u1' (also on line 2)" in joined


def test_missing_sender_and_both_body_forms() -> None:
    text = MINIMAL.replace('from = "+15005550006"\n', "").replace("bodies = {", 'body = "x"\nbodies = {')
    joined = "\n".join(problems(text))
    assert "from: set exactly one of from" in joined
    assert "variants[0].body: set either body" in joined


def test_bad_toml_names_the_line() -> None:
    joined = "\n".join(problems(MINIMAL.replace("rate_limit = 5", "rate_limit = ")))
    assert "c.toml line 6" in joined and "not valid TOML" in joined


def test_recipients_over_max_size_are_refused() -> None:
    text = MINIMAL.replace("rate_limit = 5", "rate_limit = 5\nmax_size = 2")
    assert any("has 3 recipients, more than max_size = 2" in p for p in problems(text))


def test_missing_header_and_bad_allow_list_line() -> None:
    joined = "\n".join(problems(recipients="phone,user\n+15005550010,u1\n", allow="+15005550010\n12345\n"))
    assert (
        "recipients line 1: header must include number,user_id,locale; missing number, user_id, locale"
        in joined
    )
    assert "allow_list line 2: '12345' is not an E.164 number" in joined


def test_a_top_level_key_after_a_table_gets_a_hint() -> None:
    joined = "\n".join(problems(MINIMAL + "max_size = 3\n"))
    assert (
        "variants[0].max_size: unknown setting" in joined and "move max_size = ... above the first" in joined
    )


def test_subtable_bodies_are_located() -> None:
    text = MINIMAL.replace(
        'bodies = { en = "Hello", es = "Hola", pt-BR = "Olá" }', '\n[variants.bodies]\nen = ""'
    )
    assert any(p.startswith("c.toml line 13: variants[0].bodies.en: empty body") for p in problems(text))


def test_cli_prints_problems_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    top = 'recipients = "missing.csv"\nallow_list = "a.txt"\n'
    bad.write_text(top + MINIMAL.replace("rate_limit = 5", "rate_limit = -1"))
    out = subprocess.run(
        [sys.executable, "-m", "switchboard.sender.cli", str(bad)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    assert "bad.toml line 8: rate_limit: -1 is out of range" in out.stderr
    assert "missing.csv" in out.stderr and "not found" in out.stderr


def test_dry_run_is_the_default_and_sends_nothing(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "switchboard.sender.cli", str(EXAMPLE)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "Dry run" in out.stdout and "nothing is sent" in out.stdout
    assert "Estimated total" in out.stdout and "(estimate)" in out.stdout
    assert "+15005550010" not in out.stdout  # masked
    assert not any(tmp_path.iterdir())  # no ledger, no send log


# --- deterministic assignment ---------------------------------------------------------------------


def _variants(*weights: float) -> list[Variant]:
    return [
        Variant(name=f"v{i}", weight=w, template_id=f"t{i}", bodies={"en": "x"})
        for i, w in enumerate(weights)
    ]


def test_assignment_honours_weights_over_10k_users() -> None:
    variants = _variants(70, 20, 10, 0)
    counts = Counter(assign_variant("exp-salt", f"user-{i}", variants).name for i in range(10_000))
    assert counts["v3"] == 0
    for name, share in (("v0", 0.7), ("v1", 0.2), ("v2", 0.1)):
        # binomial sd at n=10k is at most 0.5 pp; 2 pp is > 4 sd
        assert abs(counts[name] / 10_000 - share) < 0.02, counts


def test_assignment_is_stable_and_salt_dependent() -> None:
    variants = _variants(1, 1)
    first = [assign_variant("s1", f"u{i}", variants).name for i in range(2000)]
    again = [assign_variant("s1", f"u{i}", list(variants)).name for i in range(2000)]
    other = [assign_variant("s2", f"u{i}", variants).name for i in range(2000)]
    assert first == again
    assert sum(a != b for a, b in zip(first, other)) > 800  # a new salt reshuffles about half


def test_assignment_is_the_same_in_another_process() -> None:
    code = "from sender.assignment import bucket; print(repr(bucket('salt', 'user-42')))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert float(out.stdout) == bucket("salt", "user-42")


@settings(max_examples=200, deadline=None)
@given(
    salt=st.text(max_size=20),
    user=st.text(min_size=1, max_size=30),
    weights=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=5).filter(
        lambda w: sum(w) > 0
    ),
)
def test_assignment_never_picks_a_zero_weight_variant(salt: str, user: str, weights: list[float]) -> None:
    variants = _variants(*weights)
    chosen = assign_variant(salt, user, variants)
    assert chosen.weight > 0
    assert assign_variant(salt, user, variants) is chosen
    assert 0 <= bucket(salt, user) < 1


_values = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
    st.lists(st.text(max_size=5), max_size=3),
    st.just("+15005550010"),
)


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(
        [
            "id",
            "name",
            "rate_limit",
            "max_size",
            "from",
            "salt",
            "default_language",
            "purpose",
            "experiment_id",
            "messaging_service_sid",
            "status_callback",
            "template_id",
            "zzz",
        ]
    ),
    value=_values,
    csv_tail=st.text(max_size=60),
    allow=st.text(max_size=40),
)
def test_any_edit_gives_a_campaign_or_a_campaign_error_never_a_crash(
    key: str, value: object, csv_tail: str, allow: str
) -> None:
    """Whatever a user types, the answer is a campaign or a list of problems, never a traceback."""
    import tomllib  # noqa: F401 - the edit is written as TOML by hand below

    def toml_value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, list):
            return "[" + ", ".join(toml_value(x) for x in v) + "]"
        return repr(v)

    lines = [line for line in MINIMAL.splitlines() if not line.startswith(f"{key} =")]
    text = f"{key} = {toml_value(value)}\n" + "\n".join(lines) + "\n"
    try:
        load(text, recipients=RECIPIENTS + csv_tail, allow=ALLOW + allow)
    except CampaignError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)


# --- numbers: finite and in range, or one located problem (issue 13) ------------------------------

_NUMERIC_FIELDS = {
    # field path -> (where in MINIMAL it goes, lowest allowed, highest allowed)
    "rate_limit": (0.01, 100.0),
    "max_size": (1, 10_000),
    "variants[0].weight": (0.0, None),
    "fallback.after_seconds": (0.0, 86400.0),
    "fallback.after_minutes": (0.0, 1440.0),
}


def _with_number(field: str, literal: str) -> str:
    text = MINIMAL.replace("rate_limit = 5\n", "")
    if field == "rate_limit":
        return text.replace('from = "+15005550006"\n', f'from = "+15005550006"\nrate_limit = {literal}\n')
    if field == "max_size":
        return text.replace('from = "+15005550006"\n', f'from = "+15005550006"\nmax_size = {literal}\n')
    if field == "variants[0].weight":
        return text.replace("weight = 1", f"weight = {literal}")
    key = field.split(".")[1]
    return text + f"\n[fallback]\n{key} = {literal}\n"


def _toml_number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return repr(value)


@pytest.mark.parametrize("field", sorted(_NUMERIC_FIELDS))
@pytest.mark.parametrize("literal", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
def test_nan_and_infinity_are_refused_with_the_field_and_line(field: str, literal: str) -> None:
    found = problems(_with_number(field, literal))
    mine = [p for p in found if f": {field}: " in p]
    assert len(mine) == 1, found
    assert ("not a finite number" in mine[0] or "must be a whole number" in mine[0]), mine
    assert "c.toml line " in mine[0] and "\n" not in mine[0]


@settings(max_examples=200)
@given(
    field=st.sampled_from(sorted(_NUMERIC_FIELDS)),
    value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20)),
)
def test_every_campaign_number_is_finite_and_in_range_or_a_located_problem(field: str, value: float) -> None:
    low, high = _NUMERIC_FIELDS[field]
    text = _with_number(field, _toml_number(value))
    integer_only = field == "max_size"
    ok = (
        math.isfinite(value)
        and value >= low
        and (high is None or value <= high)
        and (not integer_only or isinstance(value, int))
        and (field != "variants[0].weight" or value > 0)  # the only variant: 0 would leave no one a variant
    )
    try:
        campaign = load(text)
    except CampaignError as exc:
        assert not ok, exc
        mine = [str(p) for p in exc.problems if f": {field}: " in str(p)]
        assert len(mine) == 1 and "c.toml line " in mine[0] and "\n" not in mine[0], exc.problems
        return
    assert ok, f"{field} = {value!r} was accepted"
    numbers = [campaign.rate_limit, campaign.max_size, *(v.weight for v in campaign.variants)]
    if campaign.fallback is not None:
        numbers.append(campaign.fallback.after_seconds)
    assert all(math.isfinite(n) for n in numbers)


def test_every_setting_of_the_field_tables_is_documented_in_the_example() -> None:
    """The loader reads the campaign through declarative tables; the example file documents each key."""
    import re

    from switchboard.sender.campaign import FALLBACK_KEYS, TOP_SETTINGS, VARIANT_KEYS

    text = EXAMPLE.read_text()
    keys = [s.key for s in TOP_SETTINGS] + list(VARIANT_KEYS) + list(FALLBACK_KEYS)
    missing = [k for k in keys if not re.search(rf"^#?\s*{k}\s*=", text, re.MULTILINE)]
    assert not missing, f"not documented in examples/campaign.toml: {missing}"
    api.load_campaign(EXAMPLE)  # and the example, comments and all, still loads
