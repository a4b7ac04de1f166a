"""The one exception type for mistakes a user can fix (config, data, checkpoint).

`main.py` turns it into a single `error: ...` line on stderr and exit code 2; anything else is
an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem in what the user supplied. The message names the problem and the fix."""
