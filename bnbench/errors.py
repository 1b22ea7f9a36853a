"""The one exception type that means "the user gave us something wrong".

The CLI turns it into a message and exit code 2, never a traceback.
"""


class SpecError(ValueError):
    """A spec, override or command-line value that cannot be used, with a message for the user."""
