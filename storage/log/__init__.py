"""Persistent message stores: segment logs with ack files (see :mod:`storage.log.store`)."""

from warren.storage.log.laned import LanedLogStore, open_laned_log_store
from warren.storage.log.store import LogStore, default_executor, set_default_segment_size

__all__ = ["LanedLogStore", "LogStore", "default_executor", "open_laned_log_store",
           "set_default_segment_size"]
