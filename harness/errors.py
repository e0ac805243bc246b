"""The one exception type that means "the user gave us something wrong", and the one-line reason
every other failure is reported with."""


class UserError(Exception):
    """Bad input: the message names the culprit (file, key, value) and the fix.

    The CLI prints it as one line (`harness: error: ...`) and exits with code 2; it never
    becomes a traceback.
    """


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """A one-line reason from an exception (Ray's and transformers' messages run to dozens of
    lines); the exception's type name when it has no message.

    >>> first_line(ValueError("bad value\\nmore detail")), first_line(KeyError(), with_type=True)
    ('bad value', 'KeyError')
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if with_type else lines[0]
