"""The connection to Redis (one server or a Cluster): pipelined commands and sharded pub/sub.

Commands are queued and sent in order, many per round trip; one that meets a
Redis restart (connection lost, scripts not loaded, data still loading) is sent
again for up to `RETRY_FOR` seconds before its caller hears of the failure.
Subscriptions are to shard channels (`SSUBSCRIBE`), so on a Cluster each server
hears only the rooms it follows, from the node that holds them; a lost
subscription is made again and the owners are told (`on_reconnect`) so that they
can catch up on what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from tuichat.server.broker.base import BrokerRefused

log = logging.getLogger("tuichat.server")

RETRIES = 40
"""Attempts of one Redis command (backing off up to 1 s): a restart of Redis is waited out."""
RETRY_FOR = 30.0
"""Seconds a queued command is sent again while Redis restarts before its request fails."""
MAX_PIPELINE = 1000
"""Most commands sent to Redis in one round trip."""
STOP_GRACE = 2.0
"""Seconds the last words to Redis may take at shutdown."""
COMMAND_TIMEOUT = 10.0
"""Seconds one answer from Redis may take before the connection counts as lost."""
DRAIN_FOR = 5.0
"""Seconds, at shutdown, that queued commands may take to go out."""
READ_WAIT = 1.0
"""Seconds a subscription reader waits for a message before it looks around again."""

Handler = Callable[[bytes], Awaitable[None]]


@dataclass(slots=True)
class _Command:
    add: Callable[[Any], Awaitable[None]]
    """Puts the command(s) on a pipeline."""
    done: Callable[[Any], None] | None
    """Takes the result of the first command (or the exception)."""
    since: float
    """When it was first queued (loop time)."""
    retry: bool = True
    """Sent again after a Redis restart (for `RETRY_FOR`); if not, it is given up on."""


class RedisLink:
    """One server's connection to Redis, shared by its broker and its peers."""

    def __init__(self, url: str, cluster: bool) -> None:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.cluster import RedisCluster
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import ConnectionError, TimeoutError
        except ImportError:
            raise BrokerRefused("--redis needs redis-py: pip install 'tuichat[redis]'") from None
        self.url = url
        self.cluster = cluster
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES)

        def client(**timeouts: Any) -> Any:  # redis-py answers are loosely typed
            if cluster:
                return RedisCluster.from_url(url, retry=retry, **timeouts)
            return Redis.from_url(
                url,
                retry=retry,
                retry_on_error=[ConnectionError, TimeoutError, OSError],
                health_check_interval=5,
                **timeouts,
            )

        self.redis: Any = client(
            socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=COMMAND_TIMEOUT
        )  # a command never waits forever on a Redis that went silent
        self._subscriber: Any = client()
        """Subscriptions have a client of their own: on a Cluster, a failed command can move
        the client's pub/sub connection to another node."""
        self.closing = False
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._scripts: dict[str, str] = {}
        self._commands: list[_Command] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        """Set while no command is queued or on its way."""
        self._idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: dict[str, Handler] = {}
        self._pubsub: Any = None
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._generation = 0
        """Counts the subscriptions made anew; a reader of an older one stops."""
        self._lock = asyncio.Lock()

    # --- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Check that Redis can do what we need and start sending commands."""
        info = await self.redis.info("server")
        if self.cluster:  # one answer per node
            versions = [v["redis_version"] for v in info.values() if isinstance(v, dict)]
            version = min(versions) if versions else str(info.get("redis_version", "0"))
        else:
            version = str(info["redis_version"])
        if int(version.split(".")[0]) < 7:
            raise BrokerRefused(
                f"Redis {version} has no sharded pub/sub; tuichat needs Redis 7 or newer"
            )
        if self.cluster:
            await self._subscriber.initialize()  # its map of slots to nodes, for SSUBSCRIBE
        self.spawn(self._write())

    async def stop(self) -> None:
        """Stop the loops and close the connections.

        The loops also stop on `closing`: redis-py can turn a cancellation into an
        error of its own, which a loop that carries on after errors would outlive.
        """
        self.closing = True
        self._wake.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
        await self.last_words(self._close())

    async def _close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
        await self._subscriber.aclose()
        await self.redis.aclose()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` until it ends or the link stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def last_words(self, coro: Awaitable[Any]) -> None:
        """Run one command at shutdown, for at most `STOP_GRACE` seconds."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_GRACE):
                await coro

    # --- scripts ---------------------------------------------------------

    def script(self, pipe: Any, text: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Put a run of the Lua script `text` on `pipe` (loaded again if Redis forgot it)."""
        sha = self._scripts.get(text)
        if sha is None:
            sha = self._scripts[text] = hashlib.sha1(text.encode()).hexdigest()
        # as a plain command: redis-py's cluster pipelines refuse `evalsha()` (a script not loaded
        # on one node); `_load_scripts` loads them on every node, and a NOSCRIPT is sent again
        pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)

    async def run_script(self, text: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the Lua script `text` now and return its answer."""
        from redis.exceptions import NoScriptError

        for _ in range(2):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    self.script(pipe, text, keys, args)
                    (result,) = await pipe.execute()
                return result
            except NoScriptError:
                await self._load_scripts()
        raise RuntimeError("Redis does not keep our scripts")

    async def _load_scripts(self) -> None:
        for text in list(self._scripts):  # (others may add theirs while this one awaits)
            await self.redis.script_load(text)

    # --- commands --------------------------------------------------------

    def enqueue(
        self,
        add: Callable[[Any], Awaitable[None]],
        done: Callable[[Any], None] | None = None,
        *,
        retry: bool = True,
    ) -> None:
        """Queue one command (or a few) for Redis; they go out in order, many per round trip.
        Without `retry`, one that meets a Redis restart is given up on (not sent again)."""
        self._commands.append(_Command(add, done, asyncio.get_running_loop().time(), retry))
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Wait (at most `DRAIN_FOR` seconds) until every queued command has been answered."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_FOR):
                await self._idle.wait()

    async def _write(self) -> None:
        """Send queued commands in order, pipelined; hand each its result."""
        _passing = _restart_waiter()
        loop = asyncio.get_running_loop()
        delay = 0.05
        while not self.closing:
            await self._wake.wait()
            self._wake.clear()
            while self._commands and not self.closing:
                batch, self._commands = self._commands[:MAX_PIPELINE], self._commands[MAX_PIPELINE:]
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        ends = []
                        for command in batch:
                            await command.add(pipe)
                            ends.append(len(pipe))
                        results = await pipe.execute(raise_on_error=False)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis stayed away longer than the client retries
                    results, ends = [exc] * len(batch), list(range(1, len(batch) + 1))
                again = []
                start = 0
                for command, end in zip(batch, ends, strict=True):
                    result = results[start] if end > start else None
                    start = end
                    if (
                        _passing(result)
                        and command.retry
                        and loop.time() - command.since < RETRY_FOR
                    ):
                        again.append(command)
                    elif command.done is not None:
                        command.done(result)
                if not self._commands and not again:
                    self._idle.set()
                if again:
                    log.info("redis: %d command(s) met a Redis restart; sending again", len(again))
                    self._commands[:0] = again
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    with contextlib.suppress(Exception):
                        await self._load_scripts()
                else:
                    delay = 0.05

    # --- subscriptions ---------------------------------------------------

    @property
    def backlog(self) -> int:
        """Commands queued and not yet sent."""
        return len(self._commands)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Hear `channel` (a shard channel): each message's data goes to `handler`, in order."""
        await self.subscribe_many({channel: handler})

    async def subscribe_many(self, handlers: dict[str, Handler]) -> None:
        """Hear several shard channels of one slot, in one round trip (see `subscribe`)."""
        async with self._lock:
            self._handlers.update(handlers)
            if self._pubsub is None:
                self._pubsub = self._subscriber.pubsub()
            await self._pubsub.ssubscribe(*handlers)
            self._start_readers()

    async def unsubscribe(self, channel: str) -> None:
        """Stop hearing `channel`."""
        async with self._lock:
            if self._handlers.pop(channel, None) is not None and self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.sunsubscribe(channel)

    def _start_readers(self) -> None:
        generation = self._generation
        if not self.cluster:
            if "" not in self._readers:
                self._readers[""] = self.spawn(self._read(None, generation))
            return
        for name in list(self._pubsub.node_pubsub_mapping):
            if name not in self._readers:
                self._readers[name] = self.spawn(self._read(name, generation))

    async def _read(self, node_name: str | None, generation: int) -> None:
        """Hand on what one connection hears; after a loss, subscribe again (and catch up)."""
        while not self.closing and generation == self._generation:
            try:
                pubsub = self._pubsub
                if node_name is None:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=READ_WAIT
                    )
                else:
                    node = self._subscriber.get_node(node_name=node_name)
                    if node is None or node_name not in pubsub.node_pubsub_mapping:
                        self._readers.pop(node_name, None)
                        return  # no channel of ours there any more
                    message = await pubsub.get_sharded_message(
                        ignore_subscribe_messages=True, timeout=READ_WAIT, target_node=node
                    )
                if message is None and node_name is not None:
                    self._start_readers()  # a channel may have moved to another node
                elif message is not None and message.get("type") in ("smessage", "message"):
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    handler = self._handlers.get(channel)
                    if handler is not None:
                        await handler(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection to Redis is gone: subscribe again
                if not self.closing and generation == self._generation:
                    log.warning("redis: subscription lost (%s); subscribing again", exc)
                    self.spawn(self._resubscribe(generation))
                return

    async def _resubscribe(self, lost: int) -> None:
        """Subscribe to every channel again (until Redis is back), then let the owners catch up
        on what was published meanwhile."""
        delay = 0.05
        async with self._lock:
            if lost != self._generation:
                return  # another reader saw the same loss: done already
            self._generation += 1  # the old readers stop
            for task in self._readers.values():
                if task is not asyncio.current_task():
                    task.cancel()
            self._readers = {}
            while not self.closing:
                old, self._pubsub = self._pubsub, None
                with contextlib.suppress(Exception):
                    if old is not None:
                        await old.aclose()
                try:
                    self._pubsub = self._subscriber.pubsub()
                    if self._handlers:
                        await self._pubsub.ssubscribe(*self._handlers)
                    break
                except Exception as exc:
                    log.warning("redis: still no Redis (%s)", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
            if self.closing:
                return
            self._start_readers()
        for hook in self.on_reconnect:
            try:
                await hook()
            except Exception as exc:
                log.warning("redis: catching up after a reconnect failed: %s", exc)
        log.info("redis: subscribed again and caught up")


def _restart_waiter() -> Callable[[Any], bool]:
    """What tells a command worth sending again (for `RETRY_FOR`) from a final answer.

    Redis restarting (or a Cluster's nodes) shows as many things: refused or reset
    connections, scripts forgotten, data still loading, the cluster down or its slots not
    covered yet, and, when a connection closes under a write, errors redis-py passes on as
    they are (under uvloop a `RuntimeError`, "the handler is closed"; or an
    `AttributeError` from a connection torn down mid-command). So everything is waited out
    but what Redis itself answered (a `ResponseError` that is not about a restart) and a
    command redis-py refused to send (`DataError`).
    """
    from redis.exceptions import (
        BusyLoadingError,
        ClusterDownError,
        DataError,
        NoScriptError,
        ResponseError,
        TryAgainError,
    )

    restart_answers = (NoScriptError, BusyLoadingError, ClusterDownError, TryAgainError)

    def passing(result: Any) -> bool:
        if not isinstance(result, Exception) or isinstance(result, DataError):
            return False
        return not isinstance(result, ResponseError) or isinstance(result, restart_answers)

    return passing
