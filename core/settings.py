"""One typed settings object with defaults and help text.

Every value can be overridden by an environment variable ``SWITCHBOARD_<NAME>``
(upper case), so cron jobs, CI and the dashboard share one source of truth.
Secrets (Twilio credentials) are *not* settings: they are read from the
environment (or ``.streamlit/secrets.toml`` of the working directory) only where they
are used (``core.twilio``), and never logged. A value that does not parse is a
``ConfigError`` naming the variable (exit 2), not an unexpected error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from switchboard.core.errors import ConfigError


def _default_data_dir() -> Path:
    """``./data`` of the working directory, never the install location (site-packages holds no data)."""
    return Path.cwd() / "data"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(
        default_factory=_default_data_dir,
        metadata={"help": "Folder for the warehouse, send logs and exports (default: ./data where you run)."},
    )
    ingest_db_name: str = field(
        default="ingest.duckdb",
        metadata={"help": "The ingest's private read-write DuckDB file (inside data_dir)."},
    )
    warehouse_name: str = field(
        default="warehouse.duckdb",
        metadata={"help": "The published read-only snapshot the dashboard and analysts open."},
    )
    lag_hours: float = field(
        default=72.0,
        metadata={"help": "Ingest re-reads this many hours before its cursor: statuses and prices change late."},
    )
    conversion_window_minutes: int = field(
        default=30,
        metadata={"help": "A conversion counts for an attempt when it happens within this many minutes."},
    )
    alpha: float = field(default=0.05, metadata={"help": "Significance level for A/B tests and insights."})
    min_sample_size: int = field(
        default=100, metadata={"help": "Fewer units than this per arm and an A/B result is shown as too early."}
    )
    experiment_pre_days: int = field(
        default=28,
        metadata={"help": "CUPED pre-period: days before a member's first exposure whose conversions adjust the test."},
    )
    experiment_min_days: int = field(
        default=7, metadata={"help": "An A/B test runs at least this many days before the decision card says Ship."}
    )
    cache_ttl_seconds: int = field(default=300, metadata={"help": "Dashboard result cache lifetime."})
    web_send: bool = field(
        default=False,
        metadata={"help": "1 lets the dashboard's Send page send (to its server-side allow-list); off by default."},
    )
    # Alerts (switchboard.alerts): where notifications go when alerts.toml names no channel. The webhook URL
    # (a Slack one carries its token in the path) and the SMTP password are secrets: repr and --settings hide them.
    alerts_file: str = field(
        default="alerts.toml", metadata={"help": "Alert rules and channels (optional; built-in rules without it)."})
    alert_webhook_url: str = field(
        default="", repr=False,
        metadata={"help": "POST each alert here (Slack incoming webhook or any JSON receiver).", "secret": True})
    alert_webhook_format: str = field(
        default="slack", metadata={"help": "Webhook payload: slack (text + blocks) or json (every alert field)."})
    alert_email_to: str = field(default="", metadata={"help": "E-mail alerts to these addresses (comma-separated)."})
    alert_email_from: str = field(default="switchboard@localhost", metadata={"help": "From address of alert e-mail."})
    smtp_host: str = field(default="localhost", metadata={"help": "SMTP server for alert e-mail."})
    smtp_port: int = field(default=25, metadata={"help": "SMTP port (587 with smtp_starttls=1)."})
    smtp_user: str = field(default="", metadata={"help": "SMTP login, if the server needs one."})
    smtp_password: str = field(
        default="", repr=False, metadata={"help": "SMTP password (secret: never printed).", "secret": True})
    smtp_starttls: bool = field(default=False, metadata={"help": "1 upgrades the SMTP connection with STARTTLS."})

    @property
    def ingest_db_path(self) -> Path:
        return self.data_dir / self.ingest_db_name

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / self.warehouse_name

    @property
    def send_logs_dir(self) -> Path:
        return self.data_dir / "send_logs"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then ``SWITCHBOARD_*`` environment variables, then explicit overrides."""
        base = cls()
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"SWITCHBOARD_{f.name.upper()}")
            if raw is None:
                continue
            current = getattr(base, f.name)
            if isinstance(current, Path):
                values[f.name] = Path(raw)
            elif isinstance(current, bool):
                values[f.name] = raw.lower() in {"1", "true", "yes"}
            elif isinstance(current, (int, float)):
                values[f.name] = _number(f"SWITCHBOARD_{f.name.upper()}", raw, type(current))
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(base, **values)  # type: ignore[arg-type]


def _number(variable: str, raw: str, kind: type) -> int | float:
    """An int or float setting from the environment; anything else is the user's to fix (exit 2)."""
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not {'a whole number' if kind is int else 'a number'}: "
                          f"set it to one, or unset it for the default") from None
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{variable}={raw!r} is not a finite number: set it to one, or unset it for the default")
    return value


def settings_help() -> str:
    """A human-readable table of every setting, its default and its environment variable."""
    lines = []
    for f in fields(Settings):
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if f.metadata.get("secret"):
            default = "(secret, not shown)" if os.environ.get(f"SWITCHBOARD_{f.name.upper()}") else "(unset)"
        lines.append(f"SWITCHBOARD_{f.name.upper():<28} {default!s:<40} {f.metadata.get('help', '')}")
    return "\n".join(lines)
