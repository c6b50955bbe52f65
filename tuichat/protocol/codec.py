"""Turns message dataclasses into msgpack bodies and validated bodies back into messages."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from tuichat.protocol.errors import ErrorCode, ProtocolError
from tuichat.protocol.messages import AnyMessage

TYPE_KEY = "type"


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A well-formed frame that is not a valid message (unknown type, wrong field).

    Not fatal: the peer is told with an `error` frame and the connection stays.
    """

    code: ErrorCode
    detail: str
    ref: int | None = None


class _FieldError(Exception):
    pass


Validator = Callable[[Any], Any]


def _check_str(value: Any) -> str:
    if type(value) is not str:
        raise _FieldError("must be a string")
    return value


def _check_int(value: Any) -> int:
    if type(value) is not int:
        raise _FieldError("must be an integer")
    return value


def _check_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _FieldError("must be a boolean")
    return value


def _validator(hint: Any) -> Validator:
    simple: dict[Any, Validator] = {
        str: _check_str,
        int: _check_int,
        bool: _check_bool,
    }
    if hint in simple:
        return simple[hint]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _nested_validator(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        (inner_hint,) = [a for a in args if a is not type(None)]
        inner = _validator(inner_hint)
        return lambda v: None if v is None else inner(v)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _validator(args[0])

        def check_tuple(value: Any) -> tuple[Any, ...]:
            if type(value) is not tuple:
                raise _FieldError("must be an array")
            return tuple(item(v) for v in value)

        return check_tuple
    if origin is dict and args == (str, int):

        def check_dict(value: Any) -> dict[str, int]:
            if type(value) is not dict:
                raise _FieldError("must be a map")
            return {_check_str(k): _check_int(v) for k, v in value.items()}

        return check_dict
    raise TypeError(f"no validator for {hint!r}")


def _nested_validator(cls: type[Any]) -> Validator:
    """A map inside a message (a row of a list, a history entry) checked by its own schema."""

    def check_nested(value: Any) -> Any:
        if type(value) is not dict:
            raise _FieldError("must be a map")
        try:
            return _build(_schema(cls), value)
        except _FieldError as exc:
            raise _FieldError(f"holds a wrong entry: {exc}") from None

    return check_nested


def _build(schema: _Schema, value: dict[Any, Any]) -> Any:
    """Return `schema.cls` made from a wire map; raise `_FieldError` naming the bad field."""
    kwargs: dict[str, Any] = {}
    for name, check in schema.required:
        if name not in value:
            raise _FieldError(f"missing field {name!r}")
        kwargs[name] = _check_field(name, check, value[name])
    for name, check in schema.optional:
        if name in value:
            kwargs[name] = _check_field(name, check, value[name])
    return schema.cls(**kwargs)


def _check_field(name: str, check: Validator, value: Any) -> Any:
    try:
        return check(value)
    except _FieldError as exc:
        raise _FieldError(f"{name!r} {exc}") from None


@dataclass(frozen=True, slots=True)
class _Schema:
    cls: type[Any]
    required: tuple[tuple[str, Validator], ...]
    optional: tuple[tuple[str, Validator], ...]
    names: tuple[str, ...]


def _schema(cls: type[Any]) -> _Schema:
    schema = _SCHEMAS.get(cls)
    if schema is None:
        schema = _SCHEMAS[cls] = _make_schema(cls)
    return schema


_SCHEMAS: dict[type[Any], _Schema] = {}


def _make_schema(cls: type[Any]) -> _Schema:
    hints = typing.get_type_hints(cls)
    required: list[tuple[str, Validator]] = []
    optional: list[tuple[str, Validator]] = []
    for f in dataclasses.fields(cls):
        check = (f.name, _validator(hints[f.name]))
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        (required if no_default else optional).append(check)
    names = tuple(f.name for f in dataclasses.fields(cls))
    return _Schema(cls, tuple(required), tuple(optional), names)


class Codec:
    """Encodes any message; decodes only the message types it is told to accept.

    `max_frame` bounds every length msgpack may announce inside a body.
    """

    def __init__(self, accepts: Iterable[type[Any]], max_frame: int) -> None:
        self._schemas = {cls.TYPE: _schema(cls) for cls in accepts}
        self._max = max_frame

    def decode(self, body: bytes) -> AnyMessage | InvalidMessage:
        """Return the message in `body`, or why it is not a valid one.

        Raises `ProtocolError` (code `bad_frame`) if `body` is not exactly one msgpack value.
        """
        # No length inside a body can exceed the body: msgpack must not pre-allocate more.
        limit = min(self._max, len(body))
        try:
            value = msgpack.unpackb(
                body,
                raw=False,
                use_list=False,
                strict_map_key=True,
                max_str_len=limit,
                max_bin_len=limit,
                max_array_len=limit,
                max_map_len=limit,
                max_ext_len=0,
                ext_hook=_refuse_ext,
            )
        except Exception as exc:  # msgpack raises many kinds; all mean "not msgpack"
            raise ProtocolError(
                ErrorCode.BAD_FRAME, f"not a single msgpack value ({type(exc).__name__}: {exc})"
            ) from None
        if type(value) is not dict:
            return InvalidMessage(ErrorCode.BAD_MESSAGE, "a message must be a map")
        raw_ref = value.get("ref")
        ref = raw_ref if type(raw_ref) is int else None
        type_name = value.get(TYPE_KEY)
        if type(type_name) is not str:
            return InvalidMessage(ErrorCode.BAD_MESSAGE, "missing string field 'type'", ref)
        schema = self._schemas.get(type_name)
        if schema is None:
            return InvalidMessage(
                ErrorCode.UNKNOWN_TYPE, f"unknown message type {type_name!r}", ref
            )
        try:
            result: AnyMessage = _build(schema, value)
        except _FieldError as exc:
            return InvalidMessage(ErrorCode.BAD_MESSAGE, f"{type_name}: {exc}", ref)
        return result

    @staticmethod
    def encode(message: AnyMessage) -> bytes:
        """Return the msgpack body of `message` (fields that are None are left out)."""
        body: bytes = msgpack.packb(to_wire(message))
        return body


def to_wire(message: Any) -> dict[str, Any]:
    """Return the map that represents `message` on the wire."""
    return _fields(message, {TYPE_KEY: message.TYPE})


_PLAIN = frozenset({str, int, bool, bytes, float, dict})
"""Field values that are never a nested map (checked first: most fields are these)."""


def _fields(value: Any, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of a dataclass added to `result` (a new map by default), nested
    dataclasses as maps, None left out."""
    if result is None:
        result = {}
    for name in _schema(type(value)).names:
        item = getattr(value, name)
        if item is None:
            continue
        kind = type(item)
        if kind is tuple:
            if item and dataclasses.is_dataclass(item[0]):
                item = [_fields(row) for row in item]
        elif kind not in _PLAIN and dataclasses.is_dataclass(item):
            item = _fields(item)
        result[name] = item
    return result


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError("ext types are not allowed")
