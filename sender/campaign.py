"""The campaign model: one TOML file, a recipients CSV and an allow-list of test numbers.

``load_campaign(path)`` (or ``load_campaign_text(text, base_dir=...)`` for the dashboard's
editor) reads and validates everything at once and raises ``CampaignError`` listing *every*
problem, each with the file, the line and the field, and what to write instead. Nothing
here touches the network.

The TOML file (see ``examples/campaign.toml`` for a commented example)::

    id = "pwreset-rehearsal"        # campaign id: the send log's campaign_id and the ledger name
    name = "Password reset copy rehearsal"
    purpose = "password_reset"
    experiment_id = "pwreset-copy-v2"
    salt = "pwreset-copy-v2"        # optional: variant assignment salt (default: experiment_id)
    recipients = "recipients.csv"   # relative to the TOML file
    allow_list = "test_numbers.txt"
    from = "+15005550006"           # or messaging_service_sid = "MG..."
    rate_limit = 2.0                # messages (and calls) per second
    max_size = 50                   # refuse a recipients file longer than this
    default_language = "en"

    [[variants]]
    name = "control"
    weight = 50
    template_id = "pwreset_control"
    bodies = { en = "...", es = "..." }

    [fallback]                      # optional voice fallback
    after_minutes = 5
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchboard.core.errors import ConfigError
from switchboard.core.phones import country_of  # the one rule, re-exported

__all__ = [
    "Campaign",
    "CampaignError",
    "Fallback",
    "Problem",
    "Recipient",
    "Variant",
    "country_of",
    "load_campaign",
    "load_campaign_text",
    "say_language",
]

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
RECIPIENT_COLUMNS = ("number", "user_id", "locale")
DEFAULT_MAX_SIZE = 100
# The ceiling of the ceiling: a test campaign this large is no longer a rehearsal.
HARD_MAX_SIZE = 10_000
MAX_BODY_CHARS = 1600  # Twilio rejects longer bodies (error 21617)

# Where a voice fallback's <Say> has a voice for the recipient's language. A locale that is
# listed is used as is; otherwise its language's default region; otherwise en-US.
SAY_LANGUAGES: dict[str, str] = {
    "en": "en-US",
    "es": "es-ES",
    "fr": "fr-FR",
    "de": "de-DE",
    "it": "it-IT",
    "pt": "pt-BR",
    "nl": "nl-NL",
    "sv": "sv-SE",
    "da": "da-DK",
    "nb": "nb-NO",
    "fi": "fi-FI",
    "pl": "pl-PL",
    "ru": "ru-RU",
    "ja": "ja-JP",
    "ko": "ko-KR",
    "zh": "zh-CN",
    "ca": "ca-ES",
}
SAY_LOCALES = frozenset(
    {
        "en-US",
        "en-GB",
        "en-AU",
        "en-CA",
        "en-IN",
        "es-ES",
        "es-MX",
        "es-US",
        "fr-FR",
        "fr-CA",
        "de-DE",
        "it-IT",
        "pt-BR",
        "pt-PT",
        "nl-NL",
        "sv-SE",
        "da-DK",
        "nb-NO",
        "fi-FI",
        "pl-PL",
        "ru-RU",
        "ja-JP",
        "ko-KR",
        "zh-CN",
        "zh-HK",
        "zh-TW",
        "ca-ES",
    }
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a campaign, located precisely enough to fix it."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" line {self.line}" if self.line else "")
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class CampaignError(ConfigError, ValueError):
    """The campaign cannot be used as written; ``problems`` says where and how to fix it."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the campaign:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    template_id: str
    bodies: Mapping[str, str]  # language or locale tag -> body

    def body_for(self, locale: str, default_language: str) -> tuple[str, str]:
        """(language tag used, body): exact locale, then its language, then the default, then the first."""
        wanted = [locale, locale.split("-")[0], default_language, default_language.split("-")[0]]
        lowered = {tag.lower(): tag for tag in self.bodies}
        for tag in wanted:
            if tag and tag.lower() in lowered:
                chosen = lowered[tag.lower()]
                return chosen, self.bodies[chosen]
        first = next(iter(self.bodies))
        return first, self.bodies[first]


@dataclass(frozen=True)
class Fallback:
    """Call the recipient (TwiML <Say> of the message) when the SMS is not delivered in time."""

    after_seconds: float
    from_number: str | None  # caller id; default: the campaign's from number
    on_error_categories: tuple[str, ...] = ("landline",)  # API rejections that also deserve a call


@dataclass(frozen=True)
class Recipient:
    number: str
    user_id: str
    locale: str
    line: int  # CSV line, for messages that point back at the file

    @property
    def country(self) -> str | None:
        return country_of(self.number)


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    purpose: str
    experiment_id: str
    salt: str
    variants: tuple[Variant, ...]
    recipients: tuple[Recipient, ...]
    allow_list: frozenset[str]
    from_number: str | None
    messaging_service_sid: str | None
    rate_limit: float
    max_size: int
    default_language: str
    fallback: Fallback | None
    status_callback: str | None = None
    source: str = "<text>"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    allow_list_path: str | None = None  # the server file the allow-list came from; None when given as text

    @property
    def sender(self) -> str:
        """The From number or the Messaging Service SID, whichever the campaign sends from."""
        return self.from_number or self.messaging_service_sid or ""

    def outside_allow_list(self) -> list[Recipient]:
        return [r for r in self.recipients if r.number not in self.allow_list]

    def fingerprint(self) -> str:
        """A hash of what is sent to whom: the ledger warns when a resumed campaign was edited."""
        h = hashlib.sha256()
        for v in self.variants:
            h.update(f"{v.name}\0{v.weight}\0{v.template_id}\0{sorted(v.bodies.items())}\0".encode())
        for r in self.recipients:
            h.update(f"{r.number}\0{r.user_id}\0{r.locale}\0".encode())
        h.update(f"{self.sender}\0{self.salt}".encode())
        return h.hexdigest()[:16]


def say_language(locale: str) -> str:
    """The <Say language="..."> for a recipient locale: exact if supported, else its language's default."""
    normal = normalise_locale(locale)
    if normal in SAY_LOCALES:
        return normal
    return SAY_LANGUAGES.get(normal.split("-")[0].lower(), "en-US")


def normalise_locale(locale: str) -> str:
    """``pt_br`` -> ``pt-BR``; ``ES`` -> ``es``."""
    parts = locale.strip().replace("_", "-").split("-")
    if not parts or not parts[0]:
        return ""
    return "-".join([parts[0].lower(), *(p.upper() if len(p) == 2 else p for p in parts[1:])])


# --- loading -------------------------------------------------------------------------------


def load_campaign(path: str | Path) -> Campaign:
    """Read a campaign TOML file (and the CSV and allow-list it names, relative to it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CampaignError([Problem(str(path), None, "", "file not found; check the path")]) from None
    except UnicodeDecodeError as exc:
        raise CampaignError(
            [Problem(str(path), None, "", f"not UTF-8 text ({exc.reason}); save it as UTF-8")]
        ) from None
    return load_campaign_text(text, base_dir=path.resolve().parent, source=str(path))


def load_campaign_text(
    text: str,
    *,
    base_dir: str | Path = ".",
    source: str = "campaign.toml",
    recipients_text: str | None = None,
    allow_list_text: str | None = None,
) -> Campaign:
    """Parse and validate a campaign from TOML text.

    ``recipients_text`` / ``allow_list_text`` let a caller (the dashboard's upload widgets)
    supply the CSV and allow-list contents instead of the files the TOML names.
    """
    return _Loader(text, Path(base_dir), source).load(recipients_text, allow_list_text)


@dataclass(frozen=True)
class Setting:
    """One scalar setting of a campaign table: its TOML key, type, range, default and the help
    its problems quote. The loader reads every table through these, so each rule is written once."""

    key: str
    kind: str = "string"  # string | number | integer
    required: bool = False
    default: Any = None
    pattern: re.Pattern[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


_E164_HELP = "an E.164 number such as +15005550006"
TOP_SETTINGS: tuple[Setting, ...] = (
    Setting("id", required=True, pattern=CAMPAIGN_ID,
            help="letters, digits, '-', '_' and '.', starting with a letter or digit (it names files)"),
    Setting("name", required=True),
    Setting("purpose", required=True, help="e.g. password_reset"),
    Setting("experiment_id"),  # default: the id
    Setting("salt"),  # default: the experiment_id
    Setting("recipients", help="path of the recipients CSV, relative to this file"),
    Setting("allow_list", help="path of the file of test numbers allowed to receive, relative to this file"),
    Setting("from", pattern=E164, help=_E164_HELP),
    Setting("messaging_service_sid", pattern=MESSAGING_SERVICE_SID, help="MG followed by 32 hex digits"),
    Setting("status_callback", pattern=re.compile(r"^https?://\S+$"), help="an http(s) URL"),
    Setting("rate_limit", "number", default=1.0, minimum=0.01, maximum=100),
    Setting("max_size", "integer", default=DEFAULT_MAX_SIZE, minimum=1, maximum=HARD_MAX_SIZE),
    Setting("default_language", default="en", pattern=LOCALE, help="a language tag such as en or pt-BR"),
    Setting("template_id"),
)
TOP_TABLES = ("variants", "fallback")
VARIANT_SETTINGS: tuple[Setting, ...] = (
    Setting("name", required=True),
    Setting("weight", "number", default=1.0, minimum=0),
    Setting("template_id"),  # default: <campaign template_id or id>:<name>
)
VARIANT_KEYS = ("name", "weight", "template_id", "bodies", "body")
FALLBACK_SETTINGS: tuple[Setting, ...] = (
    Setting("after_seconds", "number", minimum=0, maximum=86400),
    Setting("after_minutes", "number", default=5, minimum=0, maximum=1440),
    Setting("from", pattern=E164, help=_E164_HELP),
)
FALLBACK_KEYS = ("after_minutes", "after_seconds", "from", "on_error_categories", "enabled")


class _Loader:
    def __init__(self, text: str, base_dir: Path, source: str):
        self.text = text
        self.base_dir = base_dir
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    # -- helpers
    def problem(
        self, field_path: str, message: str, *, file: str | None = None, line: int | None = None
    ) -> None:
        if file is None:
            file, line = self.source, _locate(self.text, field_path)
        self.problems.append(Problem(file, line, field_path, message))

    def settings(
        self, data: Mapping[str, Any], table: Sequence[Setting], prefix: str = "", **required: bool
    ) -> dict[str, Any]:
        """Every setting of ``table`` read from ``data`` (its default where missing or wrong, with a problem
        for each wrong one). ``required`` overrides a setting's own (``recipients=False`` when uploaded)."""
        out: dict[str, Any] = {}
        for s in table:
            path = f"{prefix}{s.key}"
            if s.kind == "string":
                out[s.key] = self.string(
                    data, s.key, path, required=required.get(s.key, s.required), default=s.default,
                    pattern=s.pattern, hint=s.help,
                )
            else:
                out[s.key] = self.number(
                    data, s.key, path, s.default, minimum=s.minimum or 0, maximum=s.maximum,
                    integer=s.kind == "integer",
                )
        return out

    def unknown_keys(self, data: Mapping[str, Any], known: Sequence[str], prefix: str = "") -> None:
        for key in data:
            if key in known:
                continue
            if prefix:
                self.problem(f"{prefix}{key}", f"unknown setting; use {', '.join(known)}" + _misplaced_hint(key))
            else:
                self.problem(key, f"unknown setting; remove it or use one of {', '.join(sorted(known))}")

    def string(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
    ) -> str | None:
        if key not in data:
            if required:
                self.problem(path, f'missing; add {key} = "..."{(" (" + hint + ")") if hint else ""}')
            return default
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"must be a non-empty string in quotes, not {value!r}")
            return default
        value = value.strip()
        if pattern is not None and not pattern.match(value):
            self.problem(path, f"{value!r} is not valid{': ' + hint if hint else ''}")
            return default
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        default: float | None,
        *,
        minimum: float,
        maximum: float | None = None,
        integer: bool = False,
    ) -> Any:
        if key not in data:
            return default
        value = data[key]
        kind = "a whole number" if integer else "a number"
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (integer and not isinstance(value, int))
        ):
            self.problem(path, f"must be {kind}, not {value!r}")
            return default
        upper = f" and at most {maximum:g}" if maximum is not None else ""
        if not math.isfinite(value):
            # TOML has nan and inf; either would silently switch a limit off or skew a split.
            self.problem(path, f"{value!r} is not a finite number; use at least {minimum:g}{upper}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            self.problem(path, f"{value!r} is out of range; use at least {minimum:g}{upper}")
            return default
        return value

    # -- the file
    def parse(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            line = _toml_error_line(str(exc))
            message = f"not valid TOML: {exc}. Check quotes, brackets and '=' there"
            raise CampaignError([Problem(self.source, line, "", message)]) from None

    def load(self, recipients_text: str | None, allow_list_text: str | None) -> Campaign:
        data = self.parse()
        self.unknown_keys(data, [s.key for s in TOP_SETTINGS] + list(TOP_TABLES))
        top = self.settings(data, TOP_SETTINGS, recipients=recipients_text is None,
                            allow_list=allow_list_text is None)
        campaign_id = top["id"] or ""
        experiment_id = top["experiment_id"] or campaign_id
        if ("from" in data) == ("messaging_service_sid" in data):
            self.problem(
                "from",
                'set exactly one of from = "+1..." (a Twilio number) or messaging_service_sid = "MG..."',
            )
        variants = self.variants(data.get("variants"), top["template_id"] or campaign_id)
        fallback = self.fallback(data.get("fallback"))
        if fallback is not None and top["from"] is None and fallback.from_number is None:
            self.problem(
                "fallback.from", 'a voice fallback needs a caller id: add from = "+1..." under [fallback]'
            )
        default_language = normalise_locale(top["default_language"] or "en")
        max_size = int(top["max_size"])
        recipients = self.recipients_from(recipients_text, top["recipients"], default_language, max_size)
        allow, allow_path = self.allow_list_from(allow_list_text, top["allow_list"])
        if self.problems:
            raise CampaignError(self.problems)
        return Campaign(
            id=campaign_id,
            name=top["name"] or "",
            purpose=top["purpose"] or "",
            experiment_id=experiment_id,
            salt=top["salt"] or experiment_id,
            variants=tuple(variants),
            recipients=tuple(recipients),
            allow_list=allow,
            from_number=top["from"],
            messaging_service_sid=top["messaging_service_sid"],
            rate_limit=float(top["rate_limit"]),
            max_size=max_size,
            default_language=default_language,
            fallback=fallback,
            status_callback=top["status_callback"],
            source=self.source,
            warnings=tuple(self.warnings),
            allow_list_path=allow_path,
        )

    def recipients_from(
        self, given: str | None, name: str | None, default_language: str, max_size: int
    ) -> list[Recipient]:
        if given is None and not name:
            return []
        text, source = self.read_file(given, name, "recipients")
        if text is None:
            return []
        recipients = self.recipients(text, source, default_language)
        if len(recipients) > max_size:
            self.problem(
                "max_size",
                f"{source} has {len(recipients)} recipients, more than "
                f"max_size = {max_size}; shorten the list or raise max_size",
            )
        return recipients

    def allow_list_from(self, given: str | None, name: str | None) -> tuple[frozenset[str], str | None]:
        """The allow-list, and the path of the file it came from (None when the caller supplied the text)."""
        if given is None and not name:
            return frozenset(), None
        text, source = self.read_file(given, name, "allow_list")
        if text is None:
            return frozenset(), None
        path = None if given is not None else str(self.resolve(source))
        return self.allow_list(text, source), path

    def resolve(self, name: str) -> Path:
        return (self.base_dir / name) if not Path(name).is_absolute() else Path(name)

    def read_file(self, given: str | None, name: str | None, key: str) -> tuple[str | None, str]:
        if given is not None:
            return given, name or key
        assert name is not None
        path = self.resolve(name)
        try:
            return path.read_text(encoding="utf-8-sig"), name
        except FileNotFoundError:
            self.problem(key, f"file {str(path)!r} not found; the path is relative to the campaign file")
        except (UnicodeDecodeError, IsADirectoryError) as exc:
            self.problem(key, f"cannot read {str(path)!r} as UTF-8 text ({exc}); save it as UTF-8 CSV")
        return None, name

    def variants(self, raw: Any, default_template: str) -> list[Variant]:
        if raw is None:
            self.problem(
                "variants", "missing; add at least one [[variants]] table with name, weight and bodies"
            )
            return []
        if not isinstance(raw, list) or not raw or not all(isinstance(v, dict) for v in raw):
            self.problem("variants", "must be one or more [[variants]] tables")
            return []
        out: list[Variant] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            variant = self.variant(item, f"variants[{i}]", default_template, seen)
            if variant is not None:
                out.append(variant)
        if out and sum(v.weight for v in out) <= 0:
            self.problem(
                "variants[0].weight", "all weights are 0; give at least one variant a positive weight"
            )
        return out

    def variant(self, item: Mapping[str, Any], path: str, default_template: str, seen: set[str]) -> Variant | None:
        self.unknown_keys(item, VARIANT_KEYS, prefix=f"{path}.")
        values = self.settings(item, VARIANT_SETTINGS, prefix=f"{path}.")
        name = values["name"] or path.replace("variants[", "variant").rstrip("]")
        if name in seen:
            self.problem(f"{path}.name", f"duplicate variant name {name!r}; give each variant its own name")
        seen.add(name)
        bodies = self.bodies(item, path)
        if not bodies:
            return None
        template_id = values["template_id"] or f"{default_template}:{name}"
        return Variant(name=name, weight=float(values["weight"]), template_id=template_id, bodies=bodies)

    def bodies(self, item: Mapping[str, Any], path: str) -> dict[str, str]:
        """``body = "..."`` (keyed "") or ``bodies = { en = "...", ... }`` (keyed by normalised locale)."""
        bodies: dict[str, str] = {}
        if "body" in item and "bodies" in item:
            self.problem(f"{path}.body", 'set either body = "..." or a bodies table per language, not both')
        if "body" in item:
            if isinstance(item["body"], str):
                bodies[""] = item["body"]
            else:
                self.problem(f"{path}.body", "must be a string")
        elif isinstance(item.get("bodies"), dict):
            for lang, body in item["bodies"].items():
                if not LOCALE.match(lang):
                    self.problem(f"{path}.bodies.{lang}", "not a language tag; use e.g. en, es or pt-BR")
                elif not isinstance(body, str):
                    self.problem(f"{path}.bodies.{lang}", "must be a string")
                else:
                    bodies[normalise_locale(lang)] = body
        else:
            self.problem(f"{path}.bodies", 'missing; add bodies = { en = "..." } (one body per language)')
        for lang, body in bodies.items():
            field_path = f"{path}.bodies.{lang}" if lang else f"{path}.body"
            if not body.strip():
                self.problem(field_path, "empty body; write the message text (Twilio error 21602 otherwise)")
            elif len(body) > MAX_BODY_CHARS:
                self.problem(field_path, f"{len(body)} characters; Twilio's limit is {MAX_BODY_CHARS} (error 21617)")
        return bodies

    def fallback(self, raw: Any) -> Fallback | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.problem("fallback", "must be a [fallback] table with after_minutes (or after_seconds)")
            return None
        self.unknown_keys(raw, FALLBACK_KEYS, prefix="fallback.")
        if raw.get("enabled", True) is False:
            return None
        if "after_minutes" in raw and "after_seconds" in raw:
            self.problem("fallback.after_seconds", "set after_minutes or after_seconds, not both")
        values = self.settings(raw, FALLBACK_SETTINGS, prefix="fallback.")
        seconds = values["after_seconds"]
        if seconds is None:
            seconds = values["after_minutes"] * 60
        categories = raw.get("on_error_categories", ["landline"])
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            self.problem(
                "fallback.on_error_categories", 'must be a list of error categories, e.g. ["landline"]'
            )
            categories = ["landline"]
        return Fallback(
            after_seconds=float(seconds), from_number=values["from"], on_error_categories=tuple(categories)
        )

    def recipients(self, text: str, source: str, default_language: str) -> list[Recipient]:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as exc:  # a stray quote, carriage return or NUL byte
            self.problem(
                "",
                f"not readable as CSV ({exc}); save it as plain comma-separated UTF-8 text",
                file=source,
                line=max(1, reader.line_num),
            )
            return []
        missing = [c for c in RECIPIENT_COLUMNS if c not in header]
        if missing:
            self.problem(
                "",
                f"header must include {','.join(RECIPIENT_COLUMNS)}; missing {', '.join(missing)}"
                f" (found {','.join(header) or 'nothing'})",
                file=source,
                line=1,
            )
            return []
        out: list[Recipient] = []
        users: dict[str, int] = {}
        numbers: dict[str, int] = {}
        for line, row in rows:
            recipient = self.recipient(row, source, line, default_language, users)
            if recipient is None:
                continue
            if recipient.number in numbers:
                self.warnings.append(
                    f"{source} line {line}: number also on line {numbers[recipient.number]}; "
                    "that phone will receive one message per user"
                )
            users[recipient.user_id] = line
            numbers.setdefault(recipient.number, line)
            out.append(recipient)
        if not out and not any(p.file == source for p in self.problems):
            self.problem(
                "", "no recipients; add one row per test phone under the header", file=source, line=2
            )
        return out

    def recipient(
        self, row: Mapping[str, Any], source: str, line: int, default_language: str, users: Mapping[str, int]
    ) -> Recipient | None:
        """One CSV row as a recipient, or None with a problem for each thing wrong with it."""
        number = (row.get("number") or "").strip()
        user_id = (row.get("user_id") or "").strip()
        locale = normalise_locale(row.get("locale") or "") or default_language
        before = len(self.problems)
        if not E164.match(number):
            self.problem(
                "number",
                f"{number!r} is not an E.164 number; write it as + country code and "
                "digits, no spaces (e.g. +15005550006)",
                file=source,
                line=line,
            )
        if not user_id:
            self.problem("user_id", "empty; every recipient needs a user_id", file=source, line=line)
        elif user_id in users:
            self.problem(
                "user_id",
                f"duplicate {user_id!r} (also on line {users[user_id]}); user ids must be "
                "unique: they key the idempotency ledger",
                file=source,
                line=line,
            )
        if not LOCALE.match(locale):
            self.problem(
                "locale",
                f"{row.get('locale')!r} is not a locale; use e.g. en, es-MX or pt-BR "
                "(or leave it empty for the default language)",
                file=source,
                line=line,
            )
        if len(self.problems) > before:
            return None
        return Recipient(number=number, user_id=user_id, locale=locale, line=line)

    def allow_list(self, text: str, source: str) -> frozenset[str]:
        numbers: set[str] = set()
        for line_no, raw in enumerate(text.splitlines(), start=1):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            if not E164.match(entry):
                self.problem(
                    "",
                    f"{entry!r} is not an E.164 number; one number per line like +15005550006, "
                    "comments after #",
                    file=source,
                    line=line_no,
                )
                continue
            numbers.add(entry)
        return frozenset(numbers)


# --- locating a field in the TOML text, for messages with a line number ----------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*\"?([A-Za-z0-9_\-]+)\"?\s*=")


def _locate(text: str, field_path: str) -> int | None:
    """Best-effort line of ``field_path`` (``rate_limit``, ``variants[1].weight``, ``fallback.from``).

    Falls back to the line of the enclosing table (or inline table) when the key itself is absent.
    """
    if not field_path:
        return None
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", field_path)
    want_index = next((int(p[1:-1]) for p in parts if p.startswith("[")), None)
    names = [p for p in parts if not p.startswith("[")]
    want_table, key = names[:-1], names[-1]
    table: list[str] = []
    index: int | None = None
    counts: dict[str, int] = {}
    enclosing: int | None = None

    def here(t: list[str]) -> bool:
        return table == t and (want_index is None or index == want_index)

    for line_no, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = header.group(2).replace('"', "").split(".")
            if header.group(1) == "[[":
                counts[table[0]] = counts.get(table[0], -1) + 1
            index = counts.get(table[0])
            if want_table and here(want_table):
                enclosing = enclosing or line_no
            continue
        match = _KEY.match(line)
        if not match:
            continue
        if here(want_table) and match.group(1) == key:
            return line_no
        if want_table and here(want_table[:-1]) and match.group(1) == want_table[-1]:
            # an inline table: bodies = { en = "..." } holds its keys on this line
            enclosing = enclosing or line_no
    return enclosing


_TOP_LEVEL_KEYS = frozenset(s.key for s in TOP_SETTINGS) - {"from"}


def _misplaced_hint(key: str) -> str:
    if key in _TOP_LEVEL_KEYS:
        return (
            f". A key written after a [table] header belongs to that table: move {key} = ... above the first "
            "[[variants]] or [fallback] header"
        )
    return ""


def _toml_error_line(message: str) -> int | None:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None
