"""The Redis broker and peers: several servers as one chat, on one Redis or a Redis Cluster."""

from __future__ import annotations

import secrets

from tuichat.server.broker.redis.broker import RedisBroker
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.broker.redis.peers import RedisPeers
from tuichat.server.config import ServerConfig

__all__ = ["RedisBroker", "RedisLink", "RedisPeers", "make_redis_broker"]


def make_redis_broker(config: ServerConfig) -> tuple[RedisBroker, RedisPeers]:
    """A broker and peers for this server, sharing one connection to `config.redis_url`."""
    assert config.redis_url is not None
    link = RedisLink(config.redis_url, config.redis_cluster)
    server_id = secrets.token_hex(8)
    broker = RedisBroker(link, server_id, config.redis_history)
    return broker, RedisPeers(link, server_id, config.presence_ttl)
