"""taskward: distributed task execution you can deploy, with a model that proves it right.

``taskward.connect(url, **options)`` opens a broker (``memory://``,
``sqlite:///path/to/file.db``, ``redis://host``); the types it speaks are
re-exported here from ``taskward.api``.
"""

from taskward.api import (
    POLICIES,
    Broker,
    BrokerConfig,
    Clock,
    ConfigError,
    Delivery,
    DuplicateTaskError,
    IndefiniteError,
    JSONValue,
    ManualClock,
    NotLeaderError,
    NotLeasedError,
    PayloadError,
    Policy,
    Stats,
    StoreError,
    SystemClock,
    TaskwardError,
)
from taskward.connect import connect

__version__ = "0.1.0"

__all__ = [
    "POLICIES",
    "Broker",
    "BrokerConfig",
    "Clock",
    "ConfigError",
    "Delivery",
    "DuplicateTaskError",
    "IndefiniteError",
    "JSONValue",
    "ManualClock",
    "NotLeaderError",
    "NotLeasedError",
    "PayloadError",
    "Policy",
    "Stats",
    "StoreError",
    "SystemClock",
    "TaskwardError",
    "__version__",
    "connect",
]
