"""SIGHUP: re-read config.toml and templates, and apply what can change under a running daemon.

Wording and timing (templates, the shop's signature and contact lines, updates, escalation,
closing texts and percent, the log level, the order-number patterns) take effect at once.
Connections, the database, agents, secrets, the shop's [platform] and the discount provider are
wired in at start, so a change to them is reported and waits for a restart. A reload that fails
validation changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pydantic import BaseModel

from daemon.config import Config, ConfigError, LiveConfig, Settings, load_settings
from daemon.outbound.rendering import Renderer
from daemon.runtime import logs

log = logging.getLogger("daemon.reload")

_SHOP_WORDING = ("name", "phone", "web", "signature")
_WHOLE_SECTIONS = ("updates", "escalation", "closing", "templates", "logging", "faq", "self_help",
                   "reasons", "report", "orders")
# Used when the daemon starts: the scheduler's interval and the discount provider.
_FIXED = {"updates": ("sweep_every",),
          "closing": ("discount_provider", "discount_valid_for", "code_prefix", "pool_file")}


class HasRenderer(Protocol):
    renderer: Renderer


def merge(running: Config, new: Config) -> Config:
    """`running` with the settings of `new` that can change without a restart."""
    update: dict[str, Any] = {
        "shop": running.shop.model_copy(update={k: getattr(new.shop, k) for k in _SHOP_WORDING})}
    for name in _WHOLE_SECTIONS:
        section: BaseModel | list[Any] = getattr(new, name)
        if isinstance(section, list):  # [[faq]]: the entries as a whole
            update[name] = section
            continue
        kept = {k: getattr(getattr(running, name), k) for k in _FIXED.get(name, ())}
        update[name] = section.model_copy(update=kept)
    return running.model_copy(update=update)


def needing_restart(applied: Config, new: Config) -> list[str]:
    """`[section] key` of every setting that differs between what runs and what the file says."""
    changed: list[str] = []
    for name in type(new).model_fields:
        ours, theirs = getattr(applied, name), getattr(new, name)
        if ours == theirs:
            continue
        if isinstance(ours, BaseModel) and isinstance(theirs, BaseModel):
            mine, file = ours.model_dump(), theirs.model_dump()
            changed.extend(f"[{name}] {key}" for key in file if mine.get(key) != file[key])
        else:
            changed.append(f"[{name}]")
    return changed


class Reloader:
    """Holds the running settings; `reload()` is safe to call from any thread.

    Every part of the mailbox reads the one LiveConfig, so applying new settings is one swap.
    """

    def __init__(self, settings: Settings, live: LiveConfig,
                 render_users: list[HasRenderer]) -> None:
        self.settings = settings
        self.live = live
        self.render_users = render_users

    def reload(self) -> bool:
        path = self.settings.path
        try:
            new = load_settings(path)
        except ConfigError as exc:
            log.error("reload refused, the running settings stay: %s", exc)
            return False
        mailbox = self.settings.config.mailbox
        mine = new.for_mailbox(mailbox)
        if mine is None:
            log.error("reload refused for mailbox %s: it is no longer in %s (removing a mailbox "
                      "takes a restart)", mailbox, path)
            return False
        new = mine
        merged = merge(self.settings.config, new.config)
        renderer = Renderer(merged.templates.directory)
        problems = renderer.check()
        if problems:
            for problem in problems:
                log.error("reload refused, the running settings stay: template error: %s", problem)
            return False
        for user in self.render_users:
            user.renderer = renderer
        self.live.config = merged
        logs.apply_config_level(merged.logging.level)
        restart = needing_restart(merged, new.config)
        if new.secrets != self.settings.secrets:
            restart.append("secrets")
        self.settings = self.settings.model_copy(update={"config": merged})
        if restart:
            log.warning("reloaded %s; these changes wait for a restart: %s", path, ", ".join(restart))
        else:
            log.info("reloaded %s: templates and settings in use", path)
        return True
