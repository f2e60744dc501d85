"""Load and validate config.toml; every error names the key and what is wrong.

Validation is pydantic's; this module adds the pieces config.toml needs on top: durations
written as "90s"/"15m"/"4h"/"3d"/"3y" (a year is 365.25 days, the calendar's average), secrets
read from files (relative to systemd's $CREDENTIALS_DIRECTORY when set), and error messages in
`[section] key: problem` form.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass
from datetime import time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|y)\s*$")
# A year is the calendar's average (365.25 days): "3y" spans any three calendar years but one day.
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 31_557_600}
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")
_MAILBOX_NAME = re.compile(r"^[a-z0-9-]{1,40}$")
DEFAULT_MAILBOX = "default"
# How [business_hours] days are written; Monday first, as datetime.weekday() counts.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Rate:
    """At most `limit` messages in any `window`; `text` is how the config wrote it, for logs."""

    limit: int
    window: timedelta
    text: str

    def __str__(self) -> str:
        return self.text


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the problem."""


def parse_duration(value: object) -> timedelta:
    """Turn "90s", "15m", "4h", "3d" or "3y" (or a number of seconds) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(f'expected a duration such as "90s", "15m", "4h", "3d" or "3y", got {value!r}')


_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_size(value: object) -> int:
    """A byte count: a number, or a string such as "25MB" or "500kb" (decimal units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f'expected a size such as "25MB", "500KB" or a number of bytes, got {value!r}')
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def _email(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise ValueError(f"expected an email address, got {value!r}")
    return value.strip().lower()


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Email = Annotated[str, BeforeValidator(_email)]
Security = Literal["tls", "starttls", "none"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShopConfig(_Section):
    name: str = Field(min_length=1)
    address: Email
    languages: list[str] = Field(default_factory=lambda: ["es"], min_length=1)
    default_language: str = "es"
    # "light" trades 2 of 105 short test messages for ~85 MB less peak memory (daemon/language.py).
    language_detection: Literal["accurate", "light"] = "accurate"
    timezone: str = "Europe/Madrid"
    phone: str | None = None
    web: str | None = None
    signature: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        return [_language_code(code) for code in value]

    @field_validator("default_language")
    @classmethod
    def _default_code(cls, value: str, info: ValidationInfo) -> str:
        code = _language_code(value)
        offered = info.data.get("languages")
        if offered is not None and code not in offered:
            raise ValueError(f"{code!r} is not in languages {offered}")
        return code


def business_hours(value: str) -> tuple[time, time]:
    """ "09:00-20:00" → (09:00, 20:00); the window must not be empty."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if not match:
        raise ValueError(f'expected hours such as "09:00-20:00", got {value!r}')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if not (0 <= h1 <= 23 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
        raise ValueError(f"not a time of day in {value!r}")
    start, end = time(h1, m1), time(23, 59, 59) if h2 == 24 else time(h2, m2)
    if start >= end:
        raise ValueError(f"the window {value!r} is empty")
    return start, end


def _language_code(code: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", code):
        raise ValueError(f"expected a two-letter language code such as 'es', got {code!r}")
    return code.lower()


class _Server(_Section):
    host: str = Field(min_length=1)
    security: Security = "tls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    allow_insecure: bool = False
    timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> _Server:
        if self.security == "none" and not self.allow_insecure and not _is_loopback(self.host):
            raise ValueError(
                f'security = "none" sends the password in clear; refused for non-loopback host '
                f"{self.host!r} (set allow_insecure = true to override)"
            )
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapConfig(_Server):
    port: int = Field(default=993, ge=1, le=65535)
    username: str = Field(min_length=1)
    folder: str = "INBOX"
    processed_folder: str = "Procesados"
    quarantine_folder: str = "Cuarentena"
    idle: bool = True
    poll_every: Duration = timedelta(seconds=60)
    fetch_batch: int = Field(default=50, ge=1, le=1000)
    max_message_size: Annotated[int, BeforeValidator(parse_size)] = Field(default=25_000_000, ge=1024)
    alert_after: int = Field(default=5, ge=1)


class SmtpConfig(_Server):
    port: int = Field(default=465, ge=1, le=65535)
    max_attempts_per_run: int = Field(default=3, ge=1)
    retry_max: Duration = timedelta(hours=1)


class DatabaseConfig(_Section):
    url: str = "sqlite:///incidencias.db"


class AgentsConfig(_Section):
    addresses: list[Email] = Field(default_factory=list)
    notify: list[Email] = Field(default_factory=list)
    language: str = "es"
    secret: SecretStr | None = None
    secret_file: Path | None = None
    attachment_limit: int = Field(default=10_000_000, ge=0)
    trusted_authserv_id: str | None = None

    @field_validator("language")
    @classmethod
    def _code(cls, value: str) -> str:
        return _language_code(value)


class UpdatesConfig(_Section):
    every: Duration = timedelta(days=3)
    hours: str = "09:00-20:00"
    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat"],
                            min_length=1)
    waiting_reminder_after: Duration = timedelta(days=3)
    sweep_every: Duration = timedelta(seconds=60)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        business_hours(value)
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [d.strip().lower()[:3] for d in value]
        unknown = [d for d in days if d not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown day(s) {unknown}; use mon, tue, wed, thu, fri, sat, sun")
        return days

    @property
    def window(self) -> tuple[time, time]:
        return business_hours(self.hours)

    @field_validator("every")
    @classmethod
    def _under_a_week(cls, value: timedelta) -> timedelta:
        if value >= timedelta(days=7):
            raise ValueError("must be shorter than 7 days: a customer without news for a week "
                             "thinks the case is forgotten")
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value


class ClosingConfig(_Section):
    discount_percent: int = Field(default=10, ge=0, le=100)
    discount_provider: Literal["generated", "pool", "platform"] = "generated"
    discount_valid_for: Duration = timedelta(days=90)
    code_prefix: str = Field(default="GRACIAS", pattern=r"^[A-Za-z0-9]{1,20}$")
    pool_file: Path | None = None
    pool_warn_below: int = Field(default=10, ge=0)
    terms: dict[str, str] = Field(default_factory=dict)
    reopen_within: Duration = timedelta(days=14)

    @model_validator(mode="after")
    def _pool_needs_a_file(self) -> ClosingConfig:
        if self.discount_provider == "pool" and self.pool_file is None:
            raise ValueError('discount_provider = "pool" needs pool_file (a file of codes)')
        return self


class PlatformConfig(_Section):
    """The shop's platform: orders shown to agents, coupons created there (daemon/shop)."""

    kind: Literal["woocommerce", "prestashop", "shopify"]
    url: str
    key: SecretStr | None = None
    key_file: Path | None = None
    secret: SecretStr | None = None
    secret_file: Path | None = None
    timeout: Duration = timedelta(seconds=5)
    cache_for: Duration = timedelta(minutes=5)

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value.strip()):
            raise ValueError(f"expected the shop's address such as https://tienda.example, got {value!r}")
        return value.strip().rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _short(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=60):
            raise ValueError("must be between 0 and 60 seconds: mail is not held up longer for the shop")
        return value


class OrdersConfig(_Section):
    """Patterns that find order numbers in customers' mail, by language: a language given here
    replaces the built-in patterns of that language, a new one adds to them. Each is a regular
    expression with one group, the number."""

    patterns: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("patterns")
    @classmethod
    def _one_group(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for language, patterns in value.items():
            for pattern in patterns:
                try:
                    groups = re.compile(pattern).groups
                except re.error as error:
                    raise ValueError(f"{language}: {pattern!r} is not a regular expression: "
                                     f"{error}") from None
                if groups != 1:
                    raise ValueError(f"{language}: {pattern!r} needs exactly one group (the order number), "
                                     f"has {groups}; write (?:...) for the others")
        return value


class EscalationConfig(_Section):
    unanswered_after: Duration = timedelta(days=1)
    open_longer_than: Duration = timedelta(days=10)
    digest_hour: int | None = Field(default=8, ge=0, le=23)


class TemplatesConfig(_Section):
    directory: Path | None = None


def parse_rate(value: object) -> Rate:
    """ "3/10m" → at most 3 messages in any 10 minutes."""
    if isinstance(value, Rate):
        return value
    text = value.strip() if isinstance(value, str) else ""
    count, slash, window = text.partition("/")
    if not slash or not count.strip().isdigit():
        raise ValueError(f'expected a rate such as "3/10m" (messages per duration), got {value!r}')
    limit, period = int(count), parse_duration(window)
    if limit < 1 or period <= timedelta(0):
        raise ValueError(f"{text!r}: the count and the duration must both be positive")
    return Rate(limit=limit, window=period, text=text)


def _ladder(value: list[Rate]) -> list[Rate]:
    """Rungs sorted by window; a rung a shorter, stricter one makes unreachable is a mistake."""
    rungs = sorted(value, key=lambda rate: rate.window)
    for shorter, longer in pairwise(rungs):
        if shorter.window == longer.window:
            raise ValueError(f"{shorter} and {longer} have the same duration")
        if longer.limit <= shorter.limit:
            raise ValueError(f"{shorter} can never be reached: {longer} allows no more in a longer time")
    return rungs


Ladder = Annotated[list[Annotated[Rate, BeforeValidator(parse_rate)]], AfterValidator(_ladder)]


class LimitsConfig(_Section):
    """Caps on automatic mail to customers (acknowledgements, updates, reminders), whatever slips
    past loop detection; and how long an address that hard-bounced gets none."""

    automatic_per_address: Ladder = Field(default_factory=lambda: [parse_rate("5/10m"),
                                                                   parse_rate("20/24h")])
    automatic_per_ticket: Ladder = Field(default_factory=lambda: [parse_rate("3/10m"),
                                                                  parse_rate("6/24h")])
    bounce_suppression: Duration = timedelta(days=7)


class RetentionConfig(_Section):
    """How long personal data is kept (GDPR art. 5(1)(e)); every limit is off (None) by default.

    `raw_mail`: raw mails and attachments of tickets closed longer ago are erased, parsed texts kept.
    `closed_tickets`: tickets closed longer ago are pseudonymised as by `customers forget`.
    `imap_folders`: copies in the processed and quarantine folders older than this are deleted.
    """

    raw_mail: Duration | None = None
    closed_tickets: Duration | None = None
    imap_folders: Duration | None = None

    @field_validator("raw_mail", "closed_tickets", "imap_folders")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive (leave the key out to keep data without limit)")
        return value

    def policy_lines(self) -> list[str]:
        """The policy in force, one line per limit, as `check-config` prints it."""
        def said(limit: timedelta | None, what: str) -> str:
            return f"{what} after {_spoken(limit)}" if limit is not None else f"{what}: never"
        return [said(self.raw_mail, "raw mails and attachments of closed tickets erased"),
                said(self.closed_tickets, "closed tickets pseudonymised"),
                said(self.imap_folders, "copies in the processed and quarantine folders deleted")]


def _spoken(limit: timedelta) -> str:
    seconds = int(limit.total_seconds())
    for unit, size in (("y", 31_557_600), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class AdminConfig(_Section):
    """Who hears about trouble with the service itself (e.g. the mailbox refusing our login)."""

    address: Email | None = None


def listen_address(value: str) -> tuple[str, int]:
    """Split "127.0.0.1:9101" or "[::1]:9101" into (host, port)."""
    match = re.fullmatch(r"\s*(?:\[([0-9A-Fa-f:.]+)\]|([^\s:\[\]]+)):(\d{1,5})\s*", value)
    if not match or not 1 <= int(match.group(3)) <= 65535:
        raise ValueError(f'expected host:port such as "127.0.0.1:9101" or "[::1]:9101", got {value!r}')
    return match.group(1) or match.group(2), int(match.group(3))


class MetricsConfig(_Section):
    """The optional Prometheus endpoint; off unless `listen` is set."""

    listen: str | None = None
    allow_remote: bool = False

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> MetricsConfig:
        if self.listen is not None and not self.allow_remote:
            host, _ = listen_address(self.listen)
            if not _is_loopback(host):
                raise ValueError(f"listen {self.listen!r} is not a loopback address; the metrics "
                                 "tell anyone who can reach them about your tickets (set "
                                 "allow_remote = true to override)")
        return self

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self.listen is None else listen_address(self.listen)


class LoggingConfig(_Section):
    """`level` applies to `run` unless --log-level is given, and is re-read on SIGHUP."""

    level: Literal["debug", "info", "warning", "error"] | None = None


class MailboxConfig(_Section):
    """One shop's mailbox in [[mailboxes]]; [agents] and [templates] default to the top-level ones."""

    name: str
    shop: ShopConfig
    imap: ImapConfig
    agents: AgentsConfig | None = None
    templates: TemplatesConfig | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MAILBOX_NAME.match(value):
            raise ValueError(f"expected lower-case letters, digits and '-' (at most 40), got {value!r}")
        return value


_FAQ_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class FaqEntry(_Section):
    """One `[[faq]]` entry: keywords per language; the answer is `<templates>/<lang>/faq/<name>.j2`."""

    name: str
    keywords: dict[str, list[str]] = Field(min_length=1)
    url: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _FAQ_NAME.match(value):
            raise ValueError(f"expected lower-case letters, digits, '-' or '_' (at most 40), got {value!r}")
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        cleaned: dict[str, list[str]] = {}
        for code, words in value.items():
            kept = [" ".join(word.split()) for word in words]
            if not kept or not all(kept):
                raise ValueError(f"keywords.{code}: give at least one keyword, none of them empty")
            cleaned[_language_code(code)] = kept
        return cleaned

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://\S+", value):
            raise ValueError(f"expected an http(s):// address, got {value!r}")
        return value


class SelfHelpConfig(_Section):
    """Options of the `[[faq]]` self-help (a separate table: TOML cannot have both [faq] and [[faq]])."""

    discount_on_self_solved: bool = False


class ReasonsConfig(_Section):
    """`known` reasons (the agents' `#tag`): an unknown tag comes back with "did you mean"."""

    known: list[str] = Field(default_factory=list)

    @field_validator("known")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [word.strip().lower() for word in value if word.strip()]


class ReportConfig(_Section):
    """The weekly report: `to` None means the agents, [] turns it off; shop time zone."""

    to: list[Email] | None = None
    weekday: str = "mon"
    hour: int = Field(default=8, ge=0, le=23)

    @field_validator("weekday")
    @classmethod
    def _weekday(cls, value: str) -> str:
        day = value.strip().lower()[:3]
        if day not in WEEKDAYS:
            raise ValueError(f"unknown day {value!r}; use mon, tue, wed, thu, fri, sat or sun")
        return day


class Config(_Section):
    """The whole validated configuration; secrets are resolved into `*_password` fields."""

    shop: ShopConfig
    imap: ImapConfig
    smtp: SmtpConfig
    database: DatabaseConfig = DatabaseConfig()
    agents: AgentsConfig = AgentsConfig()
    updates: UpdatesConfig = UpdatesConfig()
    closing: ClosingConfig = ClosingConfig()
    escalation: EscalationConfig = EscalationConfig()
    templates: TemplatesConfig = TemplatesConfig()
    limits: LimitsConfig = LimitsConfig()
    admin: AdminConfig = AdminConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    platform: PlatformConfig | None = None
    orders: OrdersConfig = OrdersConfig()
    retention: RetentionConfig = RetentionConfig()
    mailboxes: list[MailboxConfig] = Field(default_factory=list)
    faq: list[FaqEntry] = Field(default_factory=list)
    self_help: SelfHelpConfig = SelfHelpConfig()
    reasons: ReasonsConfig = ReasonsConfig()
    report: ReportConfig = ReportConfig()

    _mailbox: str = PrivateAttr(default=DEFAULT_MAILBOX)

    @model_validator(mode="before")
    @classmethod
    def _sections_from_the_first_mailbox(cls, data: Any) -> Any:
        """With [[mailboxes]], [shop] and [imap] come from the first one (see `for_mailbox`)."""
        if not isinstance(data, dict) or not data.get("mailboxes"):
            return data
        given = [f"[{key}]" for key in ("shop", "imap") if key in data]
        if given:
            raise ValueError(f"{' and '.join(given)} and [[mailboxes]]: give each mailbox its own "
                             "sections inside [[mailboxes]], or use no [[mailboxes]] at all")
        first = data["mailboxes"][0]
        if not isinstance(first, dict):
            return data
        return {**data, **{key: first[key] for key in ("shop", "imap") if key in first}}

    @model_validator(mode="after")
    def _platform_for_coupons(self) -> Config:
        if self.closing.discount_provider == "platform" and self.platform is None:
            raise ValueError('[closing] discount_provider = "platform" needs a [platform] section')
        return self

    @field_validator("mailboxes")
    @classmethod
    def _unique_names(cls, value: list[MailboxConfig]) -> list[MailboxConfig]:
        names = [box.name for box in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"mailbox name(s) {repeated} used more than once")
        return value

    @field_validator("faq")
    @classmethod
    def _unique_faq(cls, value: list[FaqEntry]) -> list[FaqEntry]:
        names = [entry.name for entry in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"faq name(s) {repeated} used more than once")
        return value

    @property
    def mailbox(self) -> str:
        """The mailbox this config works: "default" for a config without [[mailboxes]]."""
        return self._mailbox

    def for_mailbox(self, box: MailboxConfig) -> Config:
        """The full config one mailbox runs with: its own sections, everything else shared."""
        derived = self.model_copy(update={
            "shop": box.shop, "imap": box.imap, "mailboxes": [],
            "agents": box.agents or self.agents, "templates": box.templates or self.templates})
        derived._mailbox = box.name
        return derived


class LiveConfig:
    """One mailbox's settings as they are now: the single reference every part reads.

    The parts wired for a mailbox (the Mailer, the router, agents' replies, the lifecycle) share
    one LiveConfig, so a SIGHUP reload swaps the settings once, for all of them. A unit of work
    takes one snapshot (`config`) and keeps it: a message is handled with one set of settings.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    @classmethod
    def of(cls, config: Config | LiveConfig) -> LiveConfig:
        """The reference itself, or a new one holding a fixed Config (tools and tests)."""
        return config if isinstance(config, LiveConfig) else cls(config)


class Secrets(BaseModel):
    """Passwords read at start; SecretStr keeps them out of reprs and logs."""

    model_config = ConfigDict(frozen=True)

    imap_password: SecretStr | None
    smtp_password: SecretStr | None
    agent_secret: SecretStr | None
    platform_key: SecretStr | None = None
    platform_secret: SecretStr | None = None


class Settings(BaseModel):
    """What the daemon runs with: the validated config, its secrets, and where it came from."""

    model_config = ConfigDict(frozen=True)

    config: Config
    secrets: Secrets
    path: Path
    mailboxes: tuple[Settings, ...] = ()

    def each_mailbox(self) -> tuple[Settings, ...]:
        """One Settings per mailbox to work; `config` and `secrets` above are the first one's."""
        return self.mailboxes or (self,)

    def for_mailbox(self, name: str) -> Settings | None:
        return next((box for box in self.each_mailbox() if box.config.mailbox == name), None)


def default_config_path() -> Path:
    return Path(os.environ.get("INCIDENCIAS_CONFIG", "config.toml"))


def load_settings(path: Path) -> Settings:
    """Read, validate and resolve secrets; raise ConfigError naming the key on any problem."""
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # With [[mailboxes]] the top-level [shop]/[imap] are the first mailbox's: report those once.
        errors = [err for err in exc.errors()
                  if not (data.get("mailboxes") and err["loc"][:1] in (("shop",), ("imap",)))]
        raise ConfigError(f"{path}: " + "; ".join(_describe(err) for err in errors)) from None
    smtp = _secret("smtp", config.smtp.password, config.smtp.password_file, path.parent)
    if not config.mailboxes:
        return Settings(config=config, secrets=_mailbox_secrets(config, smtp, path, "", False),
                        path=path)
    boxes = tuple(
        Settings(config=config.for_mailbox(box), path=path,
                 secrets=_mailbox_secrets(config.for_mailbox(box), smtp, path,
                                          f"mailboxes.{number}.", box.agents is not None))
        for number, box in enumerate(config.mailboxes, start=1))
    return Settings(config=boxes[0].config, secrets=boxes[0].secrets, path=path, mailboxes=boxes)


def _mailbox_secrets(config: Config, smtp: SecretStr | None, path: Path, prefix: str,
                     own_agents: bool) -> Secrets:
    """One mailbox's secrets; `prefix` ("mailboxes.2.") makes errors name the mailbox's section."""
    agents = f"{prefix}agents" if own_agents else "agents"
    secrets = Secrets(
        imap_password=_secret(f"{prefix}imap", config.imap.password, config.imap.password_file,
                              path.parent),
        smtp_password=smtp,
        agent_secret=_secret(agents, config.agents.secret, config.agents.secret_file, path.parent,
                             key="secret"),
        **_platform_secrets(config.platform, path),
    )
    if config.agents.addresses and secrets.agent_secret is None:
        raise ConfigError(f"{path}: [{agents}] secret_file: required when [{agents}] addresses are "
                          "set (it signs the tokens that prove an agent's reply is genuine)")
    return secrets


def _platform_secrets(platform: PlatformConfig | None, path: Path) -> dict[str, SecretStr | None]:
    if platform is None:
        return {}
    key = _secret("platform", platform.key, platform.key_file, path.parent, key="key")
    secret = _secret("platform", platform.secret, platform.secret_file, path.parent, key="secret")
    if key is None:
        raise ConfigError(f"{path}: [platform] key_file: required (the {platform.kind} API key)")
    if platform.kind == "woocommerce" and secret is None:
        raise ConfigError(f"{path}: [platform] secret_file: required for WooCommerce "
                          "(the consumer secret that goes with the consumer key)")
    return {"platform_key": key, "platform_secret": secret}


def _describe(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (misspelt?)"
    if not loc:
        return message
    if loc[0] == "mailboxes" and len(loc) > 1 and isinstance(error["loc"][1], int):
        # [[mailboxes]] entries are counted from 1, as a person reading the file counts them.
        section_depth = 3 if len(loc) > 3 else 2
        loc = [".".join(["mailboxes", str(error["loc"][1] + 1), *loc[2:section_depth]]),
               *loc[section_depth:]]
    section, *rest = loc
    where = f"[{section}]" + (" " + ".".join(rest) if rest else "")
    return f"{where}: {message}"


def _secret(section: str, inline: SecretStr | None, file: Path | None, base: Path,
            key: str = "password") -> SecretStr | None:
    if inline is not None and file is not None:
        raise ConfigError(f"[{section}] {key} and {key}_file: give one, not both")
    if file is None:
        return inline
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    candidate = file if file.is_absolute() else Path(credentials or base) / file
    try:
        return SecretStr(candidate.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(f"[{section}] {key}_file: cannot read {candidate}: {exc.strerror}") from None
