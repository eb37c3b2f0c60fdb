"""How the command-line tools (``sentiment-local``, ``sentiment-model``) end on a failure: one line.

Whatever a command raises becomes ``<prog>: error: <what failed>`` on stderr and exit code 1 (130 on
Ctrl-C), never a traceback. Errors the tools raise themselves already say what to do; an AWS or
network error botocore raises names the operation and the reason (``An error occurred (500) when
calling the CreateTable operation ...``, ``Could not connect to the endpoint URL ...``); anything else
is named by its type.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def one_line(message: str) -> str:
    """Whitespace folded, anything not encodable (lone surrogates from a non-UTF-8 argument) escaped,
    so reporting an error can never raise one of its own."""
    return " ".join(message.split()).encode("utf-8", "backslashreplace").decode("utf-8")


def failure_line(exc: BaseException, own: tuple[type[BaseException], ...] = ()) -> str:
    """What failed, in one line: ``own`` errors by their message, AWS errors prefixed, others by type."""
    if isinstance(exc, own):
        return one_line(str(exc))
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"AWS: {one_line(str(exc))}" + (f" (HTTP {status})" if status else "")
    if isinstance(exc, BotoCoreError):
        return f"AWS: {one_line(str(exc))}"
    return f"{type(exc).__name__}: {one_line(str(exc))}"


def run_command(
    prog: str,
    command: Callable[[], int],
    own: tuple[type[BaseException], ...] = (),
    hint: Callable[[BaseException], str] = lambda _exc: "",
) -> int:
    """Run ``command``; any failure ends as one line on stderr and a non-zero exit code."""
    try:
        return command()
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the whole point: no traceback reaches a CLI user
        sys.stderr.write(f"{prog}: error: {failure_line(exc, own)}{hint(exc)}\n")
        return EXIT_FAILURE
