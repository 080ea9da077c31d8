"""``taskward.connect(url, **options)``: one entry point, one backend module per scheme.

Optional backends (Redis) are imported only when their scheme is used, so the
embedded backends work without any extra package installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from taskward.api import Broker, BrokerConfig, Clock, ConfigError

SCHEMES = ("memory://", "sqlite:///", "redis://", "rediss://")

_CONFIG_FIELDS = tuple(f.name for f in fields(BrokerConfig))
_INT_FIELDS = ("lease_ms", "max_deliveries", "worker_timeout_ms", "election_lease_ms",
               "member_timeout_ms", "election_margin_ms")
_BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {
    "memory": (),
    "sqlite": ("durability", "synchronous", "busy_timeout_ms"),
    "redis": ("namespace",),
}


def connect(url: str, **options: Any) -> Broker:
    """Open a broker: ``memory://``, ``sqlite:///path/to/file.db`` or ``redis://host``.

    Options are the fields of ``BrokerConfig`` (``policy``, ``lease_ms``,
    ``max_deliveries``, ``worker_timeout_ms``, ``workers``, ``clock``, the
    election timings) plus a few backend-specific ones; anything else is a
    ConfigError that lists what is accepted.
    """
    if not isinstance(url, str):
        raise ConfigError(f"url must be a string such as 'memory://', got {url!r}")
    kind = _kind(url)
    config_options, extra = _split_options(kind, options)
    config = build_config(config_options)
    return _OPENERS[kind](url, config, extra)


def _kind(url: str) -> str:
    """Which backend a URL names; the error lists the schemes that exist."""
    if url == "memory://":
        return "memory"
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith(("redis://", "rediss://")):
        return "redis"
    raise ConfigError(
        f"unknown broker URL {url!r}; use one of: memory://, sqlite:///path/to/file.db, "
        "redis://host:port/db, rediss://host:port/db"
    )


def _split_options(kind: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate BrokerConfig fields from backend options, refusing unknown names."""
    backend = _BACKEND_OPTIONS[kind]
    unknown = sorted(set(options) - set(_CONFIG_FIELDS) - set(backend))
    if unknown:
        valid = ", ".join(sorted(_CONFIG_FIELDS + backend))
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for {kind}; valid: {valid}")
    config = {k: v for k, v in options.items() if k in _CONFIG_FIELDS}
    extra = {k: v for k, v in options.items() if k in backend}
    return config, extra


def build_config(options: dict[str, Any]) -> BrokerConfig:
    """A BrokerConfig from loose options, with type errors named before values are checked."""
    for name in _INT_FIELDS:
        value = options.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an int (milliseconds or a count), got {value!r}")
    if "workers" in options:
        workers = options["workers"]
        if isinstance(workers, str) or not all(isinstance(w, str) and w for w in workers):
            raise ConfigError("workers must be a list of non-empty worker id strings")
        options = {**options, "workers": tuple(workers)}
    if "clock" in options and not isinstance(options["clock"], Clock):
        raise ConfigError("clock must have a now_ms() method, e.g. taskward.ManualClock()")
    return BrokerConfig(**options)


def _open_memory(url: str, config: BrokerConfig, extra: dict[str, Any]) -> Broker:
    from taskward.backends.memory import MemoryBroker

    return MemoryBroker(config)


def _open_sqlite(url: str, config: BrokerConfig, extra: dict[str, Any]) -> Broker:
    from taskward.backends.sqlite import SQLiteBroker

    path = url[len("sqlite:///"):]
    if not path or path == ":memory:":
        raise ConfigError(
            f"{url!r} names no file; use sqlite:///relative.db or sqlite:////abs/path.db "
            "(memory:// for a broker without a file)"
        )
    return SQLiteBroker(path, config, **extra)


def _open_redis(url: str, config: BrokerConfig, extra: dict[str, Any]) -> Broker:
    try:
        module = importlib.import_module("taskward.backends.redis")
        broker_class = module.RedisBroker
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"the Redis backend is not available ({exc}); install it with "
            "pip install 'taskward[redis]'"
        ) from None
    broker: Broker = broker_class(url, config, **extra)
    return broker


_OPENERS: dict[str, Callable[[str, BrokerConfig, dict[str, Any]], Broker]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "redis": _open_redis,
}
