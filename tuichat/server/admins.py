"""The server's admins: a file of names and keys, read again whenever it changes.

One admin a line: a registered name (`ali`), or the key that owns names (`ed25519:` and the
public key as a `hello` carries it, 43 base64url characters); `#` begins a comment.
An admin acts in every room; a name only counts once its holder has proved its key, so
nobody becomes an admin by taking a name. Every server of a chat reads its own file: give
them the same one. `tuichat-server admin add NAME` writes it (see `main`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import platformdirs

from tuichat.chat import ChatError
from tuichat.chat.names import check_name, name_keys
from tuichat.server.ownership import KEY_OWNER


def default_admins_path() -> Path:
    """Where `tuichat-server` looks for its admins unless told otherwise."""
    return Path(platformdirs.user_config_dir("tuichat")) / "admins"


class Admins:
    """Who the admins are: name keys and key owners, from `entries` and the file at `path`."""

    def __init__(self, entries: Iterable[str] = (), path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._given = tuple(entries)
        self._stamp: tuple[int, int] | None = None
        self.names: frozenset[str] = frozenset()
        """Name keys (both of each name's keys)."""
        self.owners: frozenset[str] = frozenset()
        """Key owners (`ed25519:<key>`)."""
        self.problems: list[str] = []
        """Lines of the file that name nobody (the last read)."""
        self.listed: tuple[str, ...] = ()
        """The names listed (as written)."""
        self._parse(self._given)
        self.reload()

    def reload(self) -> bool:
        """Read the file again if it changed since the last read; return whether it did."""
        if self.path is None:
            return False
        try:
            info = os.stat(self.path)
            stamp: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        lines = read_lines(self.path) if stamp is not None else []
        self._parse((*self._given, *lines))
        return True

    def _parse(self, entries: Iterable[str]) -> None:
        names: set[str] = set()
        owners: set[str] = set()
        listed: list[str] = []
        self.problems = []
        for entry in entries:
            if entry.startswith(KEY_OWNER):
                owners.add(entry)
                continue
            try:
                names.update(name_keys(check_name(entry)))
                listed.append(entry)
            except ChatError as exc:
                self.problems.append(f"{entry!r}: {exc.message}")
        self.names, self.owners = frozenset(names), frozenset(owners)
        self.listed = tuple(dict.fromkeys(listed))

    def holds(self, user_key: str, owner: str) -> bool:
        """Whether the user (of name key `user_key`, whose key is `owner`, "" for none: then
        they are nobody's admin) is an admin."""
        return bool(owner) and (user_key in self.names or owner in self.owners)


def read_lines(path: Path) -> list[str]:
    """The entries of an admins file (comments and blank lines left out)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    entries = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [entry for entry in entries if entry]


def main(argv: Sequence[str] | None = None) -> int:
    """`tuichat-server admin add|remove|list`: edit the admins file; a running server reads it
    again within seconds."""
    parser = argparse.ArgumentParser(
        prog="tuichat-server admin",
        description="Edit who the server's admins are (a running server takes it in at once).",
    )
    parser.add_argument("action", choices=["add", "remove", "list"])
    parser.add_argument("entries", nargs="*", metavar="NAME", help="a name, or ed25519:<key>")
    parser.add_argument(
        "--admins", metavar="FILE", default=str(default_admins_path()),
        help=f"the admins file (default {default_admins_path()})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    path = Path(args.admins)
    current = read_lines(path)
    if args.action == "list":
        for entry in current:
            print(entry)
        return 0
    if not args.entries:
        parser.error(f"{args.action} needs at least one NAME")
    checked = Admins(args.entries)
    if checked.problems:
        for problem in checked.problems:
            print(f"tuichat-server admin: {problem}", file=sys.stderr)
        return 2

    def same(entry: str) -> set[str]:  # a name as its keys, a key as itself
        if entry.startswith(KEY_OWNER):
            return {entry}
        try:
            return set(name_keys(check_name(entry)))
        except ChatError:
            return {entry}

    given = set().union(*(same(entry) for entry in args.entries))
    if args.action == "add":
        known = set().union(*(same(entry) for entry in current)) if current else set()
        kept = [*current, *(e for e in args.entries if not same(e) & known)]
    else:
        kept = [entry for entry in current if not same(entry) & given]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text("".join(f"{entry}\n" for entry in kept), encoding="utf-8")
    os.replace(temporary, path)
    print(f"{len(kept)} admin{'s' if len(kept) != 1 else ''} in {path}")
    return 0
