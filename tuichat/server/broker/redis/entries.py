"""Messages as Redis streams keep them: an entry's id is `<seq or pid>-0`."""

from __future__ import annotations

from tuichat.protocol import Message, PrivateMessage


def number(entry_id: bytes | str) -> int:
    """The seq or pid a stream entry is stored under (its id is `<number>-0`)."""
    text = entry_id if isinstance(entry_id, str) else entry_id.decode()
    return int(text.split("-")[0])


def message_from_entry(room: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Message:
    """A room message as read back from its stream."""
    return Message(
        room,
        number(entry_id),
        fields[b"s"].decode(),
        fields[b"t"].decode(),
        int(fields[b"ts"]),
        fields[b"a"] == b"1",
    )


def private_from_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> PrivateMessage:
    """A private message as read back from a user's stream."""
    return PrivateMessage(
        fields[b"f"].decode(),
        fields[b"to"].decode(),
        fields[b"t"].decode(),
        int(fields[b"ts"]),
        fields[b"a"] == b"1",
        pid=number(entry_id),
    )


def private_parties(fields: dict[bytes, bytes]) -> tuple[str, str]:
    """The sender's and the target's keys of a private message as read back from a stream."""
    return fields[b"fk"].decode(), fields[b"tk"].decode()
