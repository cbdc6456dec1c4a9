"""The report's error type: anything a user can cause (no data, missing TeX, bad output path)."""


class ReportError(Exception):
    """A problem the user can fix. The message is one line: what is wrong and how to fix it."""
