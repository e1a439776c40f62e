"""The one error type users see, and the wrapper that turns it into a one-line message."""

import functools
import os
import sys
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


def exits_cleanly(main: Callable[[], None]) -> Callable[[], None]:
    """Run a command so that a KeeptrashError ends it with one line on stderr, not a traceback."""

    @functools.wraps(main)
    def wrapper() -> None:
        try:
            main()
        except KeeptrashError as error:
            print(f"keeptrash: error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("keeptrash: interrupted; finished work is kept and the next run resumes", file=sys.stderr)
            sys.exit(130)

    return wrapper
