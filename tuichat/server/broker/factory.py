"""Choose the broker and peers a server's settings ask for."""

from __future__ import annotations

from tuichat.server.broker.base import Broker, Peers
from tuichat.server.broker.local import LocalBroker, LocalPeers
from tuichat.server.config import ServerConfig
from tuichat.server.history import HistoryStore, MemoryHistory, SQLiteHistory


def make_broker(config: ServerConfig) -> tuple[Broker, Peers]:
    """Redis (or a Redis Cluster) when `redis_url` is set; else this process, with SQLite
    history in `db` or memory only."""
    if config.redis_url:
        from tuichat.server.broker.redis import make_redis_broker

        return make_redis_broker(config)
    store: HistoryStore = (
        MemoryHistory()
        if config.db is None
        else SQLiteHistory(config.db, search_index=config.search_index)
    )
    loaded = store.load()
    broker = LocalBroker(
        store, loaded, config.chat.recent_ids_per_sender, where=config.db or "memory only"
    )
    return broker, LocalPeers(store, loaded)
