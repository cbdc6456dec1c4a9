"""The analysis package's error type."""


class AnalysisError(Exception):
    """User-fixable problem; message is ONE line: what is wrong and how to fix it."""
