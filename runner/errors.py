"""The runner's error type: anything a user can cause (bad spec, bad option, bad file)."""


class RunnerError(Exception):
    """A problem the user can fix. The message is one line: what is wrong and how to fix it."""
