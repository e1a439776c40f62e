"""The one error type users see, and the wrapper that turns it into a one-line message."""

import functools
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Callable


class KeeptrashError(Exception):
    """A problem with the user's input or environment, explained in one line: what and what to do."""


EXIT_USER_ERROR = 2


def readable(text: Path | str) -> str:
    """Text for people: bytes of file names that are not valid UTF-8 show as \\xNN instead of breaking the page or CSV."""
    try:
        raw = os.fsencode(str(text))
    except UnicodeEncodeError:
        return str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


# What a terminal acts on instead of showing: C0 and C1 controls and DEL (ESC starts sequences that clear the screen,
# set the window title or move the cursor; a newline fakes a line of output), and the bidirectional overrides that
# reorder what is shown.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(control: re.Match) -> str:
    character = control[0]
    return _NAMED_CONTROLS.get(character) or (f"\\x{ord(character):02x}" if ord(character) < 0x100 else f"\\u{ord(character):04x}")


def printable(text: object) -> str:
    """Text safe to echo in a terminal: readable(text) with every control character escaped (ESC as \\x1b, a newline
    as \\n); accented and other letters stay as they are. Escaping what is already printable changes nothing."""
    return _CONTROL.sub(_escaped, readable(str(text)))


def say(line: str) -> None:
    """Print a progress or summary line that may echo a file name or other input, its control characters escaped."""
    print(printable(line), flush=True)


_show_warning = warnings.formatwarning


def _printable_warning(message, category, filename, lineno, line=None) -> str:
    return _show_warning(printable(message), category, filename, lineno, line)


def exits_cleanly(main: Callable[[], None]) -> Callable[[], None]:
    """Run a command so that a KeeptrashError ends it with one line on stderr, not a traceback."""

    @functools.wraps(main)
    def wrapper() -> None:
        warnings.formatwarning = _printable_warning  # a warning may quote a file name too
        try:
            main()
        except KeeptrashError as error:
            print(f"keeptrash: error: {printable(error)}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("keeptrash: interrupted; finished work is kept and the next run resumes", file=sys.stderr)
            sys.exit(130)

    return wrapper
