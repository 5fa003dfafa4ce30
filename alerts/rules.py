"""Alert rules: the built-in defaults and the optional ``alerts.toml`` that adds or tunes them.

A rule names a metric, the cells it is checked in (its scope), the windows, the thresholds a finding must
pass, its severity, quiet period and notification channels. With no file the built-in rules run with
their defaults. A ``[[rule]]`` whose name is a built-in's tunes it (``enabled = false`` turns it off); any
other name adds a rule. A mistake in the file is a ``ConfigError`` naming the file, the rule and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from switchboard.core.errors import ConfigError

SEVERITIES = ("info", "warning", "critical")
CHANNELS = ("webhook", "email")
# metric -> (engine, what it counts). "insights" metrics run through analytics.insights.what_changed (one
# engine with the Overview's "what changed"); "rate" metrics are a bad-outcome share per cell, tested
# recent against baseline (alerts.evaluate); "pumping" is the SMS-pumping watch (alerts.pumping).
METRICS: dict[str, str] = {
    "error_rate": "insights",        # one error code's share of final SMS rose (new or rising code)
    "delivery_rate": "insights",     # the share of final SMS delivered fell
    "cost_per_message": "insights",  # mean cost per priced SMS rose
    "standing_error_rate": "insights",  # one code fails far more SMS in a country (or carrier) than elsewhere,
                                        # over baseline and recent alike: a standing problem, not a change
    "failure_rate": "rate",          # share of final SMS that failed, in any scope (template, sender, purpose ...)
    "fallback_failure_rate": "rate",  # voice fallback calls not answered
    "slow_delivery_rate": "rate",    # delivered SMS slower than latency_seconds
    "opt_out_rate": "rate",          # delivered SMS answered with an opt-out keyword (needs the responses)
    "pumping": "pumping",
}
# scope name -> column of the facts the rate metrics read
SCOPES: dict[str, str] = {
    "country": "country_iso2", "carrier": "carrier", "template": "template_id", "sender": "sender",
    "purpose": "purpose", "channel": "channel",
}


# The scopes each rate metric can be checked in (the columns its facts carry).
METRIC_SCOPES: dict[str, frozenset[str]] = {
    "failure_rate": frozenset({"country", "carrier", "template", "sender", "purpose"}),
    "slow_delivery_rate": frozenset({"country", "carrier", "template", "sender", "purpose"}),
    "fallback_failure_rate": frozenset({"country", "template", "purpose"}),
    "opt_out_rate": frozenset({"country", "template", "sender", "purpose"}),
    "pumping": frozenset({"country"}),
    # insights metrics: the engine itself narrows to country, carrier and template
    "error_rate": frozenset({"country", "carrier", "template"}),
    "delivery_rate": frozenset({"country", "carrier", "template"}),
    "cost_per_message": frozenset({"country", "carrier", "template"}),
    "standing_error_rate": frozenset({"country", "carrier"}),
}
# where-filters the insights metrics accept (analytics.filters.Filters on message_facts)
INSIGHTS_WHERE = frozenset({"country", "carrier", "template", "sender", "purpose"})


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    scope: tuple[str, ...] = ("country",)
    where: tuple[tuple[str, str], ...] = ()  # (scope name, value) filters, e.g. (("purpose", "password_reset"),)
    recent_hours: float = 24.0  # the recent window, ending at the newest message in the warehouse
    baseline_days: float = 28.0  # the baseline: this many days before the recent window
    min_volume: int = 50  # fewer recent units in a cell and it is not checked
    alpha: float = 0.01  # false-discovery rate (Benjamini-Hochberg over every cell checked in one evaluation)
    min_effect: float = 0.02  # absolute rise of the rate
    min_ratio: float = 1.5  # relative rise of the rate
    min_impact: float = 10.0  # members not reached (or affected) so far
    latency_seconds: float = 120.0  # slow_delivery_rate: what counts as slow
    severity: str = "warning"
    critical_impact: float = 500.0  # impact from which the alert is critical
    quiet_minutes: float = 60.0  # no second notification of one alert within this long
    worse_factor: float = 1.5  # "worse" = impact grew this many times since the last notification
    channels: tuple[str, ...] = CHANNELS
    enabled: bool = True

    @property
    def engine(self) -> str:
        return METRICS[self.metric]


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("delivery_drop", "delivery_rate"),
    Rule("error_rise", "error_rate"),
    Rule("fallback_failure", "fallback_failure_rate", min_effect=0.05, min_volume=30),
    Rule("latency", "slow_delivery_rate", min_effect=0.05, min_ratio=2.0),
    Rule("cost_rise", "cost_per_message", severity="info"),
    Rule("standing_error", "standing_error_rate"),
    Rule("opt_out", "opt_out_rate", scope=("country", "template"), min_effect=0.005, min_ratio=2.0,
         min_impact=10),
    Rule("pumping", "pumping", severity="critical", min_volume=100, min_ratio=3.0, min_impact=100),
)


@dataclass(frozen=True)
class Webhook:
    url: str
    format: str = "slack"  # slack (text + blocks) or json (the alert's fields)


@dataclass(frozen=True)
class Email:
    to: tuple[str, ...]
    sender: str
    host: str
    port: int = 25
    user: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False


@dataclass(frozen=True)
class Config:
    rules: tuple[Rule, ...] = DEFAULT_RULES
    webhooks: tuple[Webhook, ...] = ()
    email: Email | None = None
    dashboard_url: str = "http://localhost:8501"
    max_attempts: int = 6  # delivery attempts of one notification before it is marked failed
    backoff_seconds: float = 30.0  # first retry after this long, doubling per attempt (capped at 1 hour)
    timeout_seconds: float = 5.0  # one HTTP/SMTP attempt
    source: str = "built-in defaults"

    def rule(self, name: str) -> Rule:
        return next(r for r in self.rules if r.name == name)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels that have a target: a notification is queued only for these."""
        return (("webhook",) if self.webhooks else ()) + (("email",) if self.email else ())


def load(path: Path | str | None = None, settings: Any = None) -> Config:
    """The configuration: ``path`` (default: the setting ``alerts_file``, ``alerts.toml`` of the working
    directory, used when it exists), then the channels from settings (``SWITCHBOARD_ALERT_WEBHOOK_URL``,
    ``SWITCHBOARD_ALERT_EMAIL_TO`` + SMTP settings) for whatever the file leaves out."""
    named = path is not None or (settings is not None and getattr(settings, "alerts_file", "alerts.toml")
                                 != "alerts.toml")
    path = Path(path if path is not None else getattr(settings, "alerts_file", "alerts.toml") or "alerts.toml")
    doc: dict[str, Any] = {}
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
    elif named:
        raise ConfigError(f"{path}: no such alerts file; fix the path (or SWITCHBOARD_ALERTS_FILE)")
    return parse(doc, str(path) if path.is_file() else "built-in defaults", settings)


def parse(doc: dict[str, Any], source: str = "alerts.toml", settings: Any = None) -> Config:
    unknown = set(doc) - {"defaults", "rule", "channels", "dashboard_url", "delivery"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}; allowed: defaults, "
                          "rule, channels, dashboard_url, delivery")
    defaults = _rule_fields(doc.get("defaults", {}), source, "[defaults]", allow_identity=False)
    rules = {r.name: replace(r, **defaults) for r in DEFAULT_RULES}
    for i, raw in enumerate(doc.get("rule", [])):
        where = f"[[rule]] #{i + 1}"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise ConfigError(f"{source}: {where} needs a name")
        name = raw["name"]
        values = _rule_fields({k: v for k, v in raw.items() if k != "name"}, source, f"rule {name!r}")
        if name in rules:
            rules[name] = replace(rules[name], **values)
        else:
            if "metric" not in values:
                raise ConfigError(f"{source}: rule {name!r} needs a metric: one of {', '.join(METRICS)}")
            rules[name] = replace(Rule(name, values["metric"]), **{**defaults, **values})
    delivery = doc.get("delivery", {})
    extra = {k: delivery[k] for k in ("max_attempts", "backoff_seconds", "timeout_seconds") if k in delivery}
    bad = set(delivery) - set(extra)
    if bad:
        raise ConfigError(f"{source}: [delivery] unknown key(s) {', '.join(sorted(bad))}; allowed: max_attempts, "
                          "backoff_seconds, timeout_seconds")
    for rule in rules.values():
        _check_rule(rule, source)
    webhooks, email = _channels(doc.get("channels", {}), source, settings)
    return Config(rules=tuple(rules.values()), webhooks=webhooks, email=email,
                  dashboard_url=str(doc.get("dashboard_url", "http://localhost:8501")).rstrip("/"),
                  source=source, **extra)


def _check_rule(rule: Rule, source: str) -> None:
    """A rule's scope and filters must be columns its metric's facts carry."""
    allowed = METRIC_SCOPES[rule.metric]
    if not set(rule.scope) <= allowed:
        raise ConfigError(f"{source}: rule {rule.name!r}: metric {rule.metric} can be scoped by "
                          f"{', '.join(sorted(allowed))} only")
    filters = INSIGHTS_WHERE if rule.engine == "insights" else allowed | {"channel"}
    bad = [k for k, _ in rule.where if k not in filters]
    if bad:
        raise ConfigError(f"{source}: rule {rule.name!r}: where {', '.join(bad)} is not available for metric "
                          f"{rule.metric}; use {', '.join(sorted(filters))}")


def _rule_fields(raw: Any, source: str, where: str, allow_identity: bool = True) -> dict[str, Any]:
    """Checked, typed rule values from a TOML table (``where`` names it in errors)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a table")
    types = {f.name: f.type for f in fields(Rule)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in types or key == "name" or (not allow_identity and key in ("metric", "scope", "where")):
            raise ConfigError(f"{source}: {where}: unknown key {key!r}")
        out[key] = _value(key, value, source, where)
    return out


def _value(key: str, value: Any, source: str, where: str) -> Any:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: {key} = {value!r} {what}")

    if key == "metric":
        if value not in METRICS:
            raise bad(f"is not a metric; use one of {', '.join(METRICS)}")
        return value
    if key in ("scope", "channels"):
        allowed = SCOPES if key == "scope" else CHANNELS
        if not isinstance(value, list) or not all(v in allowed for v in value):
            raise bad(f"must be a list of {', '.join(allowed)}")
        return tuple(value)
    if key == "where":
        if not isinstance(value, dict) or not all(k in SCOPES and isinstance(v, str) for k, v in value.items()):
            raise bad(f"must be a table of {', '.join(SCOPES)} = \"value\"")
        return tuple(sorted(value.items()))
    if key == "severity":
        if value not in SEVERITIES:
            raise bad(f"must be one of {', '.join(SEVERITIES)}")
        return value
    if key == "enabled":
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise bad("must be a number >= 0")
    if key == "min_volume":
        return int(value)
    return float(value)


def _channels(raw: Any, source: str, settings: Any) -> tuple[tuple[Webhook, ...], Email | None]:
    """Channels from the file's [channels] table, else from settings / environment."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [channels] must be a table")
    hooks = raw.get("webhook", [])
    hooks = [hooks] if isinstance(hooks, dict) else hooks
    webhooks = []
    for h in hooks:
        url, fmt = h.get("url"), h.get("format", "slack")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: [channels.webhook] url must be an http(s) URL")
        if fmt not in ("slack", "json"):
            raise ConfigError(f"{source}: [channels.webhook] format = {fmt!r}: use slack or json")
        webhooks.append(Webhook(url, fmt))
    url = getattr(settings, "alert_webhook_url", "") if settings is not None else ""
    if not webhooks and url:
        fmt = getattr(settings, "alert_webhook_format", "slack")
        if fmt not in ("slack", "json"):
            raise ConfigError(f"SWITCHBOARD_ALERT_WEBHOOK_FORMAT={fmt!r}: use slack or json")
        webhooks.append(Webhook(url, fmt))
    mail = raw.get("email")
    email = None
    if isinstance(mail, dict):
        to = mail.get("to", [])
        to = [to] if isinstance(to, str) else to
        if not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise ConfigError(f"{source}: [channels.email] to must list e-mail addresses")
        email = Email(tuple(to), str(mail.get("from", "switchboard@localhost")), str(mail.get("host", "localhost")),
                      int(mail.get("port", 25)), str(mail.get("user", "")),
                      getattr(settings, "smtp_password", "") if settings is not None else "",
                      bool(mail.get("starttls", False)))
    elif settings is not None and getattr(settings, "alert_email_to", ""):
        to = tuple(a.strip() for a in settings.alert_email_to.split(",") if a.strip())
        email = Email(to, settings.alert_email_from, settings.smtp_host, int(settings.smtp_port),
                      settings.smtp_user, settings.smtp_password, bool(settings.smtp_starttls))
    return tuple(webhooks), email
