"""Server CPU per read marker, on the default server (SQLite history).

N clients join a room that holds M messages; then either each client sends K markers at once
(each moving its marker on: they wait together and are stored as one), or, with `--rounds R`,
every client sends one marker per round, R rounds 0.15 s apart (every reader of a busy room
marking in the same moment: the worst case; each round is its own write). The figure is the
server's CPU time (all its threads) over that phase, divided by the markers sent.

    python benchmarks/read_markers.py                       # 200 clients x 100 markers
    python benchmarks/read_markers.py --clients 1000 --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from tuichat.bench.servers import cpu_seconds, start
from tuichat.protocol import Connection, Hello, Role
from tuichat.protocol.messages import Join, MarkRead, Message, ReadMarker, RoomState, Send, Welcome

ROOM = "#markers"


class Client:
    """One connection, its frames decoded into a queue."""

    def __init__(self) -> None:
        self.conn = Connection(Role.CLIENT)
        self.events: asyncio.Queue[Any] = asyncio.Queue()

    async def open(self, port: int, name: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.pump = asyncio.create_task(self._pump())
        self.writer.write(self.conn.send(Hello(name=name)))
        await self.until(lambda e: isinstance(e, Welcome))
        self.writer.write(self.conn.send(Join(ROOM, ref=1)))
        await self.until(lambda e: isinstance(e, RoomState))

    async def _pump(self) -> None:
        while data := await self.reader.read(1 << 20):
            for event in self.conn.receive_data(data):
                self.events.put_nowait(event)

    async def until(self, wanted: Any) -> Any:
        async with asyncio.timeout(60):
            while True:
                event = await self.events.get()
                if wanted(event):
                    return event

    def send(self, *messages: Any) -> None:
        self.writer.write(b"".join(self.conn.send(m) for m in messages))


async def measure(clients: int, messages: int, per_client: int, rounds: int) -> None:
    server = start("tuichat")
    try:
        pid = server.processes[0].pid
        room: list[Client] = []
        for i in range(clients):
            client = Client()
            await client.open(server.port, f"r{i:05d}")
            room.append(client)
        sender = room[0]
        sender.send(*(Send(ROOM, f"message {n}", id=str(n)) for n in range(1, messages + 1)))
        await sender.until(lambda e: isinstance(e, Message) and e.seq == messages)
        await asyncio.sleep(0.5)  # (the deliveries settle: their CPU is not the markers')
        started, cpu = time.monotonic(), cpu_seconds(pid)
        if rounds:
            for seq in range(1, rounds + 1):
                for client in room:
                    client.send(MarkRead(ROOM, seq))
                await asyncio.sleep(0.15)  # one round per write of the store
            sent = clients * rounds
        else:
            for client in room:
                client.send(*(MarkRead(ROOM, seq) for seq in range(1, per_client + 1)))
            sent = clients * per_client
        for client in room:  # its reply comes once everything before it is stored
            client.send(MarkRead(ROOM, 0, ref=7))
        for client in room:
            await client.until(lambda e: isinstance(e, ReadMarker) and e.ref == 7)
        seconds, used = time.monotonic() - started, cpu_seconds(pid) - cpu
        how = f"{rounds} rounds, all at once" if rounds else f"{per_client} each"
        print(
            f"{sent:,} read markers from {clients} clients ({how}): "
            f"{used / sent * 1e6:.1f} us of server CPU each, {seconds:.2f} s"
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--messages", type=int, default=500, help="messages in the room")
    parser.add_argument("--markers", type=int, default=100, help="markers each client sends")
    parser.add_argument("--rounds", type=int, default=0, help="one marker per client per round")
    args = parser.parse_args()
    asyncio.run(measure(args.clients, args.messages, args.markers, args.rounds))


if __name__ == "__main__":
    main()
