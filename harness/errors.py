"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """Bad input: the message names the culprit (file, key, value) and the fix.

    The CLI prints it as one line (`harness: error: ...`) and exits with code 2; it never
    becomes a traceback.
    """
