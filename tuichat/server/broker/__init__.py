"""The seam under the server: brokers that number, store and hand back messages, and peers."""

from tuichat.server.broker.base import (
    MAX_MARKERS,
    Broker,
    BrokerHandler,
    BrokerRefused,
    BrokerUnavailable,
    LocalUser,
    Peers,
    Post,
    PresenceEvent,
    PrivatePost,
    Published,
    PublishedPrivate,
    ReadMarker,
    RemoteJoined,
    RemoteLeft,
    RemoteUser,
    RoomPosition,
)
from tuichat.server.broker.factory import make_broker

__all__ = [
    "MAX_MARKERS",
    "Broker",
    "BrokerHandler",
    "BrokerRefused",
    "BrokerUnavailable",
    "LocalUser",
    "Peers",
    "Post",
    "PresenceEvent",
    "PrivatePost",
    "Published",
    "PublishedPrivate",
    "ReadMarker",
    "RemoteJoined",
    "RemoteLeft",
    "RemoteUser",
    "RoomPosition",
    "make_broker",
]
