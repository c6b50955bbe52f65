"""`tuichat`: open the full-screen chat."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from tuichat import DEFAULT_PORT, __version__
from tuichat.app import config as settings
from tuichat.app import i18n, terminal
from tuichat.app.bidi import Mode
from tuichat.app.config import Config, ConfigError
from tuichat.app.dates import CALENDARS
from tuichat.app.i18n import for_terminal as _
from tuichat.app.identity import IdentityError, IdentityStore, default_path
from tuichat.client import ChatClient


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help, its own word ("usage:") in the language in use."""

    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        # TRANSLATORS: before the synopsis of --help (keep the space at the end)
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are told in the language in use (argparse's own reasons, like
    "expected one argument", stay in English)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        reason = i18n.plain(message)  # (reasons made by `_` elsewhere may hold isolates)
        self.exit(2, _("{prog}: error: {reason}").format(prog=self.prog, reason=reason) + "\n")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        wrong = _("invalid int value: {value}").format(value=repr(text))  # (argparse's words)
        raise argparse.ArgumentTypeError(wrong) from None


def _language(text: str) -> str:
    if text not in i18n.LANGUAGES:
        raise argparse.ArgumentTypeError(settings.unknown_language(text))
    return text


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(settings.not_one_of(text, choices))
        return text

    return check


def _metavar(choices: Iterable[str]) -> str:
    return "{" + ",".join(choices) + "}"


def wanted_language(argv: Sequence[str] | None = None) -> str | None:
    """The language `--lang` asks for in `argv` (by default the command line's), if it is
    given: read before the rest, so that --help and the errors are said in it."""
    early = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    early.add_argument("--lang")
    try:
        known, _rest = early.parse_known_args(argv)
    except argparse.ArgumentError:
        return None  # (the whole parse says what is wrong)
    lang: str | None = known.lang
    return lang


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the parsed command line (its help in the language in use)."""
    parser = _Parser(
        prog="tuichat",
        description=_(
            "Open a tuichat chat. Flags win over the settings file, which wins over"
            " the built-in defaults."
        ),
        formatter_class=_HelpFormatter,
        add_help=False,
        exit_on_error=False,
    )
    flags = parser.add_argument_group(_("options"))
    flags.add_argument("-h", "--help", action="help", help=_("show this help message and exit"))
    # Defaults are None ("not given"), so that the settings file fills what the flags leave.
    flags.add_argument(
        "--host", help=_("server address (default {host})").format(host=settings.DEFAULT_HOST)
    )
    flags.add_argument(
        "--port",
        type=_whole_number,
        help=_("server port (default {port})").format(port=DEFAULT_PORT),
    )
    flags.add_argument("--name", help=_("your name (default: your login)"))
    flags.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        help=_("connect with TLS, verifying the server's certificate (--no-tls: without)"),
    )
    flags.add_argument(
        "--ca", metavar="FILE", help=_("trust the CA certificates in FILE (PEM); implies --tls")
    )
    flags.add_argument(
        "--lang",
        type=_language,
        metavar=_metavar(i18n.LANGUAGES),
        help=_(
            "the language of the app: en (English) or fa (Persian, laid out right to left);"
            " default: your locale's (LANGUAGE, LC_ALL, LC_MESSAGES, LANG), else English"
        ),
    )
    flags.add_argument(
        "--calendar",
        type=_one_of(CALENDARS),
        metavar=_metavar(CALENDARS),
        help=_(
            "the calendar of the dates in the log (jalali: the Solar Hijri one);"
            " default: jalali in Persian, else gregorian"
        ),
    )
    flags.add_argument(
        "--bidi",
        type=_one_of(settings.BIDI_MODES),
        metavar=_metavar(settings.BIDI_MODES),
        help=_(
            "how right-to-left text is drawn: reordered by tuichat (app), by your terminal"
            " (terminal) or not at all (off); default: tuichat chooses"
        ),
    )
    files = flags.add_mutually_exclusive_group()
    files.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=_("read the settings from FILE (default {path})").format(path=settings.default_path()),
    )
    files.add_argument(
        "--no-config",
        action="store_true",
        help=_("ignore the settings file: flags and defaults"),
    )
    flags.add_argument(
        "--print-config",
        action="store_true",
        help=_("print a settings file with every setting at its default, then exit"),
    )
    flags.add_argument(
        "--export-identity",
        metavar="NAME",
        help=_("print the line that lets another device use NAME, then exit"),
    )
    flags.add_argument(
        "--import-identity",
        metavar="LINE",
        help=_(
            "store an identity line made by --export-identity on another device, then exit"
            " ('-' reads it from standard input, out of the shell's history)"
        ),
    )
    flags.add_argument(
        "--trust-address",
        action="store_true",
        help=_("sign in even if this server claims to be a chat you know at another address"),
    )
    flags.add_argument(
        "--identities",
        type=Path,
        default=None,
        help=_("identity file (default {path})").format(path=default_path()),
    )
    flags.add_argument(
        "--version",
        action="version",
        version=f"tuichat {__version__}",
        help=_("show program's version number and exit"),
    )
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as exc:
        reason = exc.message
        if exc.argument_name:
            reason = _("argument {flag}: {reason}").format(flag=exc.argument_name, reason=reason)
        parser.error(reason)


def tls_context(ca: str | None) -> ssl.SSLContext:
    """A client TLS context that verifies the server (against `ca`, or the system's CAs)."""
    return ssl.create_default_context(cafile=ca)


def config_from_args(args: argparse.Namespace) -> Config:
    """Return the settings: each flag given, else the settings file's, else the default.

    Raises `ConfigError` if the file is wrong, or if `--config` names a file that is not there.
    """
    config = Config() if args.no_config else settings.load_config(args.config)
    server = config.server
    tls = server.tls if args.tls is None else args.tls
    if args.ca is not None and args.tls is None:
        tls = True  # --ca alone means TLS, as before there was a settings file
    return replace(
        config,
        name=config.name if args.name is None else args.name,
        lang=config.lang if args.lang is None else args.lang,
        calendar=config.calendar if args.calendar is None else args.calendar,
        bidi=config.bidi if args.bidi is None else args.bidi,
        server=replace(
            server,
            host=server.host if args.host is None else args.host,
            port=server.port if args.port is None else args.port,
            tls=tls,
            ca=server.ca if args.ca is None else Path(args.ca),
        ),
    )


async def _reachable(host: str, port: int) -> str | None:
    """Return why the server cannot be reached, or None if it can."""
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, OSError) and exc.errno:
            return os.strerror(exc.errno)
        return str(exc) or _("timed out")
    writer.close()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tuichat`; returns the exit status.

    It speaks the language of `--lang`, else the environment's, from the start (its help,
    what is wrong with the settings file); once the file is read, its `lang` if `--lang`
    was not given. The language in use before is back when it returns.
    """
    before = i18n.language()
    i18n.set_language(wanted_language(argv))
    try:
        return _run(parse_args(argv))
    finally:
        i18n.set_language(before)


def _run(args: argparse.Namespace) -> int:
    if args.print_config:
        print(settings.example(), end="")
        return 0
    identities = IdentityStore(args.identities)
    if args.export_identity:
        print(identities.export(args.export_identity))
        print(_("tuichat: keep this line secret: whoever has it owns the name"), file=sys.stderr)
        return 0
    if args.import_identity:
        line = sys.stdin.readline() if args.import_identity == "-" else args.import_identity
        try:
            name = identities.import_line(line)
        except IdentityError as exc:
            print(f"tuichat: {exc}", file=sys.stderr)
            return 1
        print(_("tuichat: this device can now use the name {name}").format(name=name))
        return 0
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"tuichat: {exc}", file=sys.stderr)
        return 2
    config = replace(config, lang=i18n.set_language(config.lang))  # None: the environment's
    host, port = config.server.host, config.server.port
    problem = asyncio.run(_reachable(host, port))
    if problem is not None:
        said = _("tuichat: cannot reach a server at {address}: {reason}").format(
            address=f"{host}:{port}", reason=problem
        )
        print(said, file=sys.stderr)
        return 1
    from tuichat.app.app import ChatApp

    ca = config.server.ca
    tls = tls_context(None if ca is None else str(ca)) if config.server.tls else None

    address = f"{host.lower()}:{port}"

    async def connector(name: str) -> ChatClient:
        identity = identities.identity_for(name)
        return await ChatClient.connect(
            name,
            host,
            port,
            ssl_context=tls,
            reconnect=True,
            key=identity.key,
            legacy_key=identity.legacy,
            pins=identities.pins(name, address, trust_address=args.trust_address),
        )

    answers = terminal.answers_path()
    decision = terminal.decide(
        config.bidi, os.environ, terminal.load_answers(answers), rtl_ui=i18n.is_rtl()
    )

    def remember(mode: Mode) -> None:
        terminal.save_answer(answers, decision.terminal, mode)

    app = ChatApp(
        connector,
        config.name,
        server_label=f"{host}:{port}",
        config=replace(config, bidi=decision.mode),
        ask_bidi=decision.ask,
        bidi_answered=remember,
    )
    # VTE reorders rows unless told not to (`CSI 8 l`); where the app reorders, it is told,
    # and at exit it reorders again (`CSI 8 h`, its default; `/bidi` may have changed it)
    tty = sys.stdout.isatty()
    if tty and decision.mode == "app":
        sys.stdout.write(terminal.EXPLICIT)
        sys.stdout.flush()
    try:
        app.run()
    finally:
        if tty:
            sys.stdout.write(terminal.IMPLICIT)
            sys.stdout.flush()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
