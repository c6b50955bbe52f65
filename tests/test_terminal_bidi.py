"""Who reorders right-to-left text: the terminal as told by its environment, the first-run
check's answers, kept per terminal program."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import sys
import termios
from pathlib import Path

import pytest

from tuichat.app.terminal import (
    EXPLICIT,
    IMPLICIT,
    Decision,
    answers_path,
    decide,
    load_answers,
    save_answer,
    terminal_program,
)
from tuichat.server import ChatServer


@pytest.mark.parametrize(
    ("environ", "program"),
    [
        ({"KONSOLE_VERSION": "230804", "TERM": "xterm-256color"}, "konsole"),
        ({"VTE_VERSION": "7600", "TERM": "xterm-256color"}, "vte"),
        ({"KITTY_WINDOW_ID": "1", "TERM": "xterm-kitty"}, "kitty"),
        ({"TERM_PROGRAM": "Apple_Terminal"}, "apple_terminal"),
        ({"TERM_PROGRAM": "iTerm.app"}, "iterm.app"),
        ({"TMUX": "/tmp/tmux-0/default,1,0", "KONSOLE_VERSION": "1"}, "tmux"),
        ({"TERM": "xterm-256color"}, "xterm-256color"),
        ({}, ""),
    ],
)
def test_the_terminal_program_is_told_by_its_environment(
    environ: dict[str, str], program: str
) -> None:
    assert terminal_program(environ) == program


def test_a_mode_chosen_by_flag_or_config_is_never_asked_about() -> None:
    for mode in ("app", "terminal", "off"):
        assert decide(mode, {"KONSOLE_VERSION": "1"}, {}, rtl_ui=True) == Decision(
            mode, False, "konsole"
        )


def test_terminals_that_reorder_on_their_own_are_asked_about() -> None:
    decision = decide(None, {"KONSOLE_VERSION": "1"}, {}, rtl_ui=False)
    assert decision == Decision("terminal", True, "konsole")


def test_terminals_that_draw_as_written_get_the_app_s_reordering_without_a_question() -> None:
    for environ in ({"KITTY_WINDOW_ID": "3"}, {"VTE_VERSION": "7600"}, {"WT_SESSION": "x"}):
        assert decide(None, environ, {}, rtl_ui=True).mode == "app"
        assert not decide(None, environ, {}, rtl_ui=True).ask


def test_an_unknown_terminal_is_asked_about_only_in_a_right_to_left_ui() -> None:
    environ = {"TERM": "xterm-256color"}
    assert decide(None, environ, {}, rtl_ui=True) == Decision("app", True, "xterm-256color")
    assert decide(None, environ, {}, rtl_ui=False) == Decision("app", False, "xterm-256color")


def test_an_answer_is_remembered_for_its_terminal_program(tmp_path: Path) -> None:
    path = tmp_path / "data" / "terminals.json"
    assert load_answers(path) == {}
    save_answer(path, "tmux", "terminal")
    save_answer(path, "konsole", "terminal")
    save_answer(path, "tmux", "app")
    answers = load_answers(path)
    assert answers == {"tmux": "app", "konsole": "terminal"}
    assert decide(None, {"TMUX": "x"}, answers, rtl_ui=True) == Decision("app", False, "tmux")
    path.write_text('{"tmux": "sideways", "x": 3}')  # a bad file: as good as none
    assert load_answers(path) == {}
    path.write_text("not json")
    assert load_answers(path) == {}


def test_answers_live_in_the_user_data_dir() -> None:
    assert answers_path().name == "terminals.json"


async def run_in_a_terminal(server: ChatServer, tmp_path: Path, *flags: str) -> bytes:
    """Run the app in a pseudo-terminal against `server` until it draws, quit it with ctrl+q,
    and return everything it wrote to the terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "VIRTUAL_ENV")},
        "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"), "TERM": "xterm-256color",
        "LANG": "C.UTF-8", "LANGUAGE": "en",
    }  # fmt: skip
    host, port = server.address
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.app", "--host", host, "--port", str(port),
        "--name", "tty", "--no-config", *flags,
        stdin=slave, stdout=slave, stderr=slave, env=env,
    )  # fmt: skip
    os.close(slave)
    written = bytearray()
    got_some = asyncio.Event()

    def readable() -> None:
        try:
            written.extend(os.read(master, 65536))
        except OSError:  # the other side closed
            loop.remove_reader(master)
        got_some.set()

    loop = asyncio.get_running_loop()
    loop.add_reader(master, readable)
    try:
        async with asyncio.timeout(20):
            while server.chat.find("tty") is None or b"tty" not in written:
                got_some.clear()
                await got_some.wait()
            os.write(master, b"\x11")  # ctrl+q
            await process.wait()
        return bytes(written)
    finally:
        loop.remove_reader(master)
        os.close(master)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_vte_terminal_is_told_not_to_reorder_while_the_app_does(
    server: ChatServer, tmp_path: Path
) -> None:
    written = await run_in_a_terminal(server, tmp_path, "--bidi", "app")
    assert written.startswith(EXPLICIT.encode())  # before anything is drawn
    assert IMPLICIT.encode() in written[-64:]  # and at the end, reordering as it did


async def test_where_the_terminal_reorders_it_is_left_to_do_so(
    server: ChatServer, tmp_path: Path
) -> None:
    written = await run_in_a_terminal(server, tmp_path, "--bidi", "terminal")
    assert EXPLICIT.encode() not in written
    assert IMPLICIT.encode() in written[-64:]  # (its default, whatever /bidi did meanwhile)
