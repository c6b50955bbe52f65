"""Presence and name ownership across servers, on Redis.

Each server keeps its users in a Redis hash that expires unless the server
refreshes it, and announces logins, joins, parts and logouts, away and back, tokens
and registrations on one shard channel. Each server keeps a view of everyone on the
others; a server whose hash expired (it died) has its users announced as gone.
Away belongs to the person: a change carries when it was made, the hash keeps it
(a server that starts later knows it), the servers that hold the person's other
sessions take it on and say so again, and of two versions the later one holds.
A registration is claimed in one atomic script, so two servers cannot give one
name to two keys; the registrations are read again after a lost subscription and
every few refreshes, so one whose notice was lost is enforced here all the same.
If Redis loses its data (the generation marker is gone), each server writes back
what it knows: its users, the tokens, and the registrations Redis has not been
given again since (one a server moved meanwhile stays where it was moved).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import msgpack

from tuichat.chat.names import name_keys
from tuichat.protocol.auth import new_server_id
from tuichat.server.broker.base import (
    BrokerHandler,
    LocalUser,
    Peers,
    RemoteAway,
    RemoteJoined,
    RemoteLeft,
    RemoteUser,
)
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.broker.redis.migrate import SCHEMA_VERSION
from tuichat.server.broker.redis.scripts import CLAIM
from tuichat.server.ownership import LEGACY_OWNER

log = logging.getLogger("tuichat.server")


@dataclass(frozen=True, slots=True)
class Notice:
    """What one server tells the others on the presence channel (a msgpack map on the wire).

    `kind` is `login` (with `rooms`, `devices` and the away state), `join`, `part`, `logout`,
    `devices` (a user's sessions on the server: `devices`), `away` (`away`, `away_since`),
    `kick` (`target` is the server that must drop `user_key`'s sessions, `reason` why),
    `token` (`value` is its hash) or `identity` (`identities`: name key → key hash). A user
    may be on several servers at once (several devices): news of a user is news of their
    sessions on the server that sends it.
    """

    kind: str
    server: str
    user_key: str = ""
    name: str = ""
    room: str = ""
    reason: str = ""
    rooms: tuple[str, ...] = ()
    target: str = ""
    value: str = ""
    identities: dict[str, str] = field(default_factory=dict)
    devices: int = 1
    echo: bool = False
    """A `join` or `part` that only follows the user's session on another server."""
    away: str | None = None
    """Why the user is away ("" for no reason), or None (`login`, `away`)."""
    away_since: int = 0
    """When `away` changed (ns since the Unix epoch; 0: never)."""

    def pack(self) -> bytes:
        """The notice as sent."""
        packed: bytes = msgpack.packb({f.name: getattr(self, f.name) for f in fields(self)})
        return packed

    @classmethod
    def unpack(cls, data: bytes) -> Notice:
        """A notice as received (fields this server does not know are ignored)."""
        raw = msgpack.unpackb(data)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["rooms"] = tuple(values.get("rooms", ()))
        return cls(**values)


REFRESH = 2.0
"""How often (at most) a server refreshes its presence and looks for servers that died."""
RELOAD_EVERY = 5
"""Refreshes between two full reads of the other servers' presence and of the registrations."""

Slot = tuple[str, str]
"""A user's sessions on one server: (user key, server id)."""
ENTRY_DEFAULTS: tuple[Any, ...] = (1, None, 0)
"""The devices, away reason and away time of a presence entry that has none (an older
server's)."""


class RedisPeers(Peers):
    """This server's view of the others, and its part in theirs."""

    def __init__(self, link: RedisLink, server_id: str, presence_ttl: float) -> None:
        self.link = link
        self.id = server_id
        self._ttl_ms = int(presence_ttl * 1000)
        self._refresh_every = min(REFRESH, presence_ttl / 5)
        self.remote: dict[Slot, RemoteUser] = {}
        """Users on other servers, by user key and server."""
        self._by_key: dict[str, dict[str, RemoteUser]] = {}
        """Users on other servers, by user key, then by server."""
        self._remote_names: dict[str, dict[Slot, RemoteUser]] = {}
        """Both look-alike keys of every remote user's name."""
        self._members: dict[str, dict[str, dict[str, RemoteUser]]] = {}
        """Remote users by room, then by user key, then by server."""
        self._away: set[str] = set()
        """The user keys of the remote users who are away (see `away`)."""
        self._heard = 0
        """Notices heard so far."""
        self._gone: dict[Slot, int] = {}
        """Users a notice took offline, and when (so that an older read does not bring them
        back)."""
        self._generation = ""
        self._server_id = ""
        self._handler: BrokerHandler | None = None
        self._reading_identities: list[set[str]] = []
        """For each read of the registrations under way, the name keys registered meanwhile
        (newer than what the read brings)."""

    # --- lifecycle -------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        redis = self.link.redis
        await redis.set(keys.GENERATION, secrets.token_hex(8), nx=True)
        self._generation = (await redis.get(keys.GENERATION)).decode()
        await redis.set(keys.SERVER_ID, new_server_id(), nx=True)
        self._server_id = (await redis.get(keys.SERVER_ID)).decode()
        await self.link.subscribe(keys.PRESENCE, self._on_event)
        handler.on_tokens(_decoded(await redis.hgetall(keys.TOKENS)))
        handler.on_identities(_decoded(await redis.hgetall(keys.IDENTITIES)))
        await redis.sadd(keys.SERVERS, self.id)
        await self._load_presence()
        self.link.on_reconnect.append(self._after_reconnect)
        self.link.spawn(self._refresh())

    async def stop(self) -> None:
        await self.link.last_words(self.link.redis.delete(keys.presence_key(self.id)))
        await self.link.last_words(self.link.redis.srem(keys.SERVERS, self.id))

    async def _after_reconnect(self) -> None:
        """Notices were lost meanwhile: read the registrations again, write our presence anew,
        have the others read everyone again (what we said while Redis was away may not have
        reached them), and read them."""
        await self._load_identities()
        await self._write_presence()
        await self._sync()

    async def _sync(self) -> None:
        await self.link.redis.spublish(keys.PRESENCE, Notice("sync", self.id).pack())
        await self._load_presence()

    # --- questions the server asks ----------------------------------------

    def find(self, name: str) -> RemoteUser | None:
        for key in name_keys(name):
            slots = self._remote_names.get(key)
            if slots:
                return next(iter(slots.values()))
        return None

    def names(self, room: str) -> list[str]:
        users = self._by_key if not room else self._members.get(room, {})
        return [next(iter(servers.values())).name for servers in users.values()]

    def keys(self, room: str) -> list[str]:
        return list(self._members.get(room, ()))

    def in_room(self, user_key: str, room: str) -> bool:
        members = self._members.get(room)
        return members is not None and user_key in members

    def rooms_of(self, user_key: str) -> list[str]:
        servers = self._by_key.get(user_key, {})
        return list(dict.fromkeys(room for user in servers.values() for room in user.rooms))

    def devices(self, user_key: str) -> int:
        return sum(user.devices for user in self._by_key.get(user_key, {}).values())

    def servers_of(self, user_key: str) -> list[RemoteUser]:
        return list(self._by_key.get(user_key, {}).values())

    def counts(self) -> dict[str, int]:
        return {room: len(members) for room, members in self._members.items() if members}

    def count(self, room: str) -> int:
        return len(self._members.get(room, ()))

    # --- what happens here -------------------------------------------------

    def logged_in(self, user: LocalUser) -> None:
        self._announce("login", user, rooms=user.rooms)

    def joined(self, user: LocalUser, room: str, *, echo: bool = False) -> None:
        self._announce("join", user, room=room, echo=echo)

    def parted(self, user: LocalUser, room: str, reason: str, *, echo: bool = False) -> None:
        self._announce("part", user, room=room, reason=reason, echo=echo)

    def logged_out(self, user_key: str, name: str, reason: str) -> None:
        self._announce("logout", LocalUser(user_key, name, ()), reason=reason, gone=True)

    def sessions_changed(self, user: LocalUser) -> None:
        self._announce("devices", user)

    def away_changed(self, user: LocalUser) -> None:
        self._announce("away", user)

    def away(self, user_key: str) -> tuple[str | None, int]:
        latest: tuple[str | None, int] = (None, 0)
        for user in self._by_key.get(user_key, {}).values():
            if user.away_since > latest[1]:
                latest = (user.away, user.away_since)
        return latest

    def away_users(self) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for key in self._away:
            reason, _ = self.away(key)
            servers = self._by_key.get(key)
            if reason is not None and servers:
                found[key] = (next(iter(servers.values())).name, reason)
        return found

    def _announce(
        self,
        kind: str,
        user: LocalUser,
        *,
        room: str = "",
        reason: str = "",
        rooms: tuple[str, ...] = (),
        gone: bool = False,
        echo: bool = False,
    ) -> None:
        """Tell the other servers of a presence change here, and keep our hash current."""
        event = Notice(
            kind, self.id, user.key, user.name, room, reason, rooms, devices=user.devices,
            echo=echo, away=user.away, away_since=user.away_since,
        ).pack()  # fmt: skip
        key = keys.presence_key(self.id)
        entry = None if gone else _entry(user)

        async def add(pipe: Any) -> None:
            if entry is None:
                pipe.hdel(key, user.key)
            else:
                pipe.hset(key, user.key, entry)
                pipe.sadd(keys.SERVERS, self.id)  # listed again (a server with nobody looks gone)
            pipe.pexpire(key, self._ttl_ms)
            pipe.spublish(keys.PRESENCE, event)

        self.link.enqueue(add)  # one lost in an outage is put right after the reconnect

    def kick(self, user: RemoteUser, reason: str = "replaced") -> None:
        if reason == "replaced":  # its rooms here hear it before the owner's return
            self._remote_logout((user.key, user.server), "disconnect")
        event = Notice("kick", self.id, user.key, target=user.server, reason=reason).pack()

        async def add(pipe: Any) -> None:
            pipe.spublish(keys.PRESENCE, event)

        self.link.enqueue(add)

    def save_token(self, user_key: str, token_hash: str) -> None:
        event = Notice("token", self.id, user_key, value=token_hash).pack()

        async def add(pipe: Any) -> None:
            pipe.hset(keys.TOKENS, user_key, token_hash)
            pipe.spublish(keys.PRESENCE, event)

        self.link.enqueue(add)

    async def server_id(self) -> str:
        return self._server_id

    def claim(
        self, name_keys: Iterable[str], name: str, owner: str, now: int,
        done: Callable[[bool | Exception], None], *, replacing: str | None = None,
    ) -> None:  # fmt: skip
        wanted = list(name_keys)
        # a version-1 owner may be stored as a bare hash
        replaced = [replacing, replacing.removeprefix(LEGACY_OWNER)] if replacing else ["", ""]

        async def add(pipe: Any) -> None:
            self.link.script(pipe, CLAIM, [keys.IDENTITIES], [owner, *replaced, *wanted])

        def claimed(result: Any) -> None:
            if isinstance(result, Exception) or result is None:
                log.warning("redis: registering %s failed: %s", name, result)
                done(result if isinstance(result, Exception) else RuntimeError("no answer"))
                return
            if int(result) != 1:
                self._reread_identities(wanted)  # another's, newer than ours: take it now
                done(False)
                return
            self._registered(wanted)
            self._share_identities({key: owner for key in wanted})
            done(True)

        self.link.enqueue(add, claimed)

    def _reread_identities(self, name_keys: list[str]) -> None:
        """Read the owners of `name_keys` from Redis and take them as this server's (a claim
        found one newer than what this server knew: the notice of it may still be on its
        way, and until it comes the next hello would be judged by the old owner)."""

        async def add(pipe: Any) -> None:
            pipe.hmget(keys.IDENTITIES, name_keys)

        def read(result: Any) -> None:
            if isinstance(result, Exception) or not result:
                return
            found = {
                key: (owner.decode() if isinstance(owner, bytes) else str(owner))
                for key, owner in zip(name_keys, result, strict=False)
                if owner is not None
            }
            if found:
                self._registered(found)
                assert self._handler is not None
                self._handler.on_identities(found)

        self.link.enqueue(add, read)

    def _share_identities(self, identities: Mapping[str, str]) -> None:
        event = Notice("identity", self.id, identities=dict(identities)).pack()

        async def add(pipe: Any) -> None:
            pipe.spublish(keys.PRESENCE, event)

        self.link.enqueue(add)

    # --- what the others say ---------------------------------------------

    async def _on_event(self, data: bytes) -> None:
        notice = Notice.unpack(data)
        if notice.server == self.id:
            return
        assert self._handler is not None
        self._heard += 1
        key = notice.user_key
        slot = (key, notice.server)
        user = self.remote.get(slot)
        if user is not None:
            user.heard = self._heard
        if notice.kind in ("join", "part", "logout", "devices", "away") and user is None:
            return  # late news of sessions that server has dropped since
        if notice.kind == "login":
            self._remote_login(
                notice.name, key, notice.server, notice.rooms, notice.devices,
                notice.away, notice.away_since,
            )  # fmt: skip
        elif notice.kind == "join":
            self._remote_join(slot, notice.room, echo=notice.echo)
        elif notice.kind == "part":
            self._remote_part(slot, notice.room, notice.reason or "part", echo=notice.echo)
        elif notice.kind == "logout":
            self._remote_logout(slot, notice.reason or "disconnect")
            self._gone[slot] = self._heard
        elif notice.kind == "devices" and user is not None:
            user.devices = notice.devices
        elif notice.kind == "away":
            self._away_heard(slot, notice.away, notice.away_since)
        elif notice.kind == "kick" and notice.target == self.id:
            self._handler.on_kick(key, notice.reason or "replaced")
        elif notice.kind == "token":
            self._handler.on_tokens({key: notice.value})
        elif notice.kind == "identity":
            self._registered(notice.identities)
            self._handler.on_identities(notice.identities)
        elif notice.kind == "sync":  # a server wrote its presence anew: read everyone again
            await self._load_presence()

    def _remote_login(
        self, name: str, key: str, server: str, rooms: Iterable[str] = (), devices: int = 1,
        away: str | None = None, away_since: int = 0,
    ) -> None:  # fmt: skip
        slot = (key, server)
        user = self.remote.get(slot)
        if user is None:
            user = self.remote[slot] = RemoteUser(name, key, server, heard=self._heard)
            self._by_key.setdefault(key, {})[server] = user
            for name_key in name_keys(name):
                self._remote_names.setdefault(name_key, {})[slot] = user
        user.devices = devices
        rooms = list(rooms)  # (its rooms are what the server says now)
        for room in [r for r in user.rooms if r not in rooms]:
            self._remote_part(slot, room, "disconnect")
        for room in rooms:  # what it brings is where the user is already (no news to follow)
            self._remote_join(slot, room, echo=True)
        self._away_heard(slot, away, away_since)

    def _remote_join(self, slot: Slot, room: str, *, echo: bool = False) -> None:
        user = self.remote.get(slot)
        if user is None or room in user.rooms:
            return
        user.rooms[room] = None
        servers = self._members.setdefault(room, {}).setdefault(user.key, {})
        changed = not servers
        servers[user.server] = user
        assert self._handler is not None
        self._handler.on_presence(RemoteJoined(user.name, room, user.key, changed, echo))

    def _remote_part(self, slot: Slot, room: str, reason: str, *, echo: bool = False) -> None:
        user = self.remote.get(slot)
        if user is None or room not in user.rooms:
            return
        del user.rooms[room]
        changed = self._forget_member(room, user)
        assert self._handler is not None
        self._handler.on_presence(RemoteLeft(user.name, room, reason, user.key, changed, echo))

    def _remote_logout(self, slot: Slot, reason: str | None) -> None:
        before = self.away(slot[0])
        user = self.remote.pop(slot, None)
        if user is None:
            return
        servers = self._by_key.get(user.key, {})
        servers.pop(user.server, None)
        if not servers:
            self._by_key.pop(user.key, None)
            self._away.discard(user.key)
        for name_key in name_keys(user.name):
            slots = self._remote_names.get(name_key)
            if slots is not None:
                slots.pop(slot, None)
                if not slots:
                    del self._remote_names[name_key]
        gone = [(room, self._forget_member(room, user)) for room in user.rooms]
        if reason is not None:
            assert self._handler is not None
            for room, changed in gone:
                self._handler.on_presence(RemoteLeft(user.name, room, reason, user.key, changed))
        if user.key in self._by_key:  # online elsewhere still: as the others have it now
            self._tell_away(user.name, user.key, before)

    def _away_heard(self, slot: Slot, away: str | None, since: int) -> None:
        """What `slot`'s server says of the user's away state; a later change than the one
        known is the person's now (their other servers say the same a moment later)."""
        user = self.remote.get(slot)
        if user is None or since <= user.away_since:
            return
        before = self.away(user.key)
        user.away, user.away_since = away, since
        self._tell_away(user.name, user.key, before)

    def _tell_away(self, name: str, key: str, before: tuple[str | None, int]) -> None:
        """The server hears of the user's away state if it moved on from `before`."""
        reason, since = self.away(key)
        if reason is None:
            self._away.discard(key)
        else:
            self._away.add(key)
        if since != before[1]:
            assert self._handler is not None
            self._handler.on_away(RemoteAway(name, key, reason, since, reason != before[0]))

    def _forget_member(self, room: str, user: RemoteUser) -> bool:
        """Take `user`'s sessions on their server out of `room`; return whether the user is in
        it on no other server now."""
        members = self._members.get(room)
        if members is None:
            return True
        servers = members.get(user.key)
        if servers is not None:
            servers.pop(user.server, None)
            if servers:
                return False
            del members[user.key]
        if not members:
            del self._members[room]
        return True

    # --- keeping it current ----------------------------------------------

    def _registered(self, name_keys: Iterable[str]) -> None:
        """Registrations were made (here, or heard of): a read under way must not undo them."""
        for changed in self._reading_identities:
            changed.update(name_keys)

    async def _load_identities(self) -> None:
        """Every registration, as Redis has it (the notice of one may have been lost)."""
        assert self._handler is not None
        changed: set[str] = set()
        self._reading_identities.append(changed)
        try:
            stored = _decoded(await self.link.redis.hgetall(keys.IDENTITIES))
        finally:
            self._reading_identities.remove(changed)
        self._handler.on_identities({k: v for k, v in stored.items() if k not in changed})

    async def _load_presence(self) -> None:
        """Everyone on the other servers, from their presence hashes."""
        redis = self.link.redis
        seen: dict[Slot, RemoteUser] = {}
        started = self._heard  # news heard while reading is newer than what is read
        alive: set[str] = set()
        for raw in await redis.smembers(keys.SERVERS):
            server = raw.decode()
            if server == self.id:
                continue
            entries = await redis.hgetall(keys.presence_key(server))
            if not entries:
                await redis.srem(keys.SERVERS, server)  # gone (a live one adds itself again)
                continue
            alive.add(server)
            for user_key, packed in entries.items():
                name, rooms, *more = msgpack.unpackb(packed)
                key = user_key.decode()
                devices, away, away_since = (*more, *ENTRY_DEFAULTS[len(more) :])[:3]
                seen[(key, server)] = RemoteUser(
                    name,
                    key,
                    server,
                    dict.fromkeys(rooms),
                    devices=devices,
                    away=away,
                    away_since=away_since,
                )
        for slot, user in list(self.remote.items()):  # gone while we were away
            if user.heard <= started and slot not in seen:
                # a server whose presence expired died: its users timed out
                self._remote_logout(slot, "disconnect" if user.server in alive else "timeout")
        for slot, user in seen.items():
            known = self.remote.get(slot)
            fresh = known.heard if known is not None else self._gone.get(slot, 0)
            if fresh <= started:
                self._remote_login(
                    user.name, user.key, user.server, user.rooms, user.devices, user.away,
                    user.away_since,
                )  # fmt: skip
        self._gone = {key: heard for key, heard in self._gone.items() if heard > started}

    async def _write_presence(self) -> None:
        """Our whole presence hash, as it is now."""
        assert self._handler is not None
        key = keys.presence_key(self.id)
        users = {u.key: _entry(u) for u in self._handler.local_users()}
        async with self.link.redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            if users:
                pipe.hset(key, mapping=users)
            pipe.pexpire(key, self._ttl_ms)
            pipe.sadd(keys.SERVERS, self.id)
            await pipe.execute()

    async def _refresh(self) -> None:
        """Keep our presence alive; notice servers that died, and a Redis that lost its data.

        Every `RELOAD_EVERY` rounds it also reads everyone's presence again, which puts right
        what a notice lost in a short outage said.
        """
        rounds = 0
        while not self.link.closing:
            await asyncio.sleep(self._refresh_every)
            rounds += 1
            try:
                redis = self.link.redis
                generation = await redis.get(keys.GENERATION)
                if generation is None or generation.decode() != self._generation:
                    await self._restore()
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.pexpire(keys.presence_key(self.id), self._ttl_ms)
                    pipe.sadd(keys.SERVERS, self.id)
                    await pipe.execute()
                if rounds % RELOAD_EVERY == 0:  # notices a dropped subscription missed
                    await self._load_presence()
                    await self._load_identities()
                for server in {u.server for u in self.remote.values()}:
                    if not await redis.exists(keys.presence_key(server)):
                        log.info("redis: server %s is gone; its users are offline", server)
                        for slot in [s for s, u in self.remote.items() if u.server == server]:
                            self._remote_logout(slot, "timeout")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("redis: refresh failed: %s", exc)

    async def _restore(self) -> None:
        """Redis lost its data: write back our users, the tokens and the registrations."""
        redis = self.link.redis
        await redis.set(keys.GENERATION, secrets.token_hex(8), nx=True)
        self._generation = (await redis.get(keys.GENERATION)).decode()
        assert self._handler is not None
        tokens, identities = self._handler.known_owners()
        log.warning(
            "redis: Redis lost its data (generation marker gone); writing back %d registration(s), "
            "%d token(s) and this server's users; rooms get new epochs",
            len(identities), len(tokens),
        )  # fmt: skip
        async with redis.pipeline(transaction=False) as pipe:  # one slot ({g}): one node
            pipe.set(keys.SERVER_ID, self._server_id, nx=True)  # signatures stay valid
            pipe.set(keys.SCHEMA, SCHEMA_VERSION, nx=True)  # (what is written back is of it)
            for name_key, owner in identities.items():
                # only where Redis has none again: another server may have written it back
                # already, or moved it since, and what this one holds may be older
                pipe.hsetnx(keys.IDENTITIES, name_key, owner)
            if tokens:
                pipe.hset(keys.TOKENS, mapping=dict(tokens))
            await pipe.execute()
        await self._write_presence()
        await self._sync()


def _entry(user: LocalUser) -> bytes:
    """A user's entry in this server's presence hash (a server reads the fields it knows)."""
    entry = [user.name, list(user.rooms), user.devices, user.away, user.away_since]
    packed: bytes = msgpack.packb(entry)
    return packed


def _decoded(mapping: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in mapping.items()}
