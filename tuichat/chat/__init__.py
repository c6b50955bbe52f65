"""The chat logic, free of I/O: users, rooms, presence and sequence numbers."""

from tuichat.chat.chat import LOBBY, Chat, ChatLimits, Delivery, Room, User
from tuichat.chat.errors import ChatError

__all__ = ["LOBBY", "Chat", "ChatError", "ChatLimits", "Delivery", "Room", "User"]
