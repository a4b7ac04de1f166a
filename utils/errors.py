"""The one exception type for mistakes a user can fix (config, data, checkpoint).

`main.py` turns it into a single `error: ...` line on stderr and exit code 2; anything else is
an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem in what the user supplied. The message names the problem and the fix."""


def user_error_line(error: UserError) -> str:
    """The error's one line. One raised in a loader worker (a transform that cannot run) arrives
    wrapped in the worker's traceback, whose last line holds the original message."""
    lines = str(error).strip().splitlines()
    if len(lines) > 1 and "DataLoader worker process" in lines[0]:
        return lines[-1].split(": ", 1)[-1]
    return lines[0] if lines else ""
