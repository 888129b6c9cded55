"""Text every store can hold: the one check a string from outside passes before SQL sees it.

PostgreSQL's text type refuses NUL, and UTF-8 cannot encode a lone surrogate (how Python
carries undecodable bytes, such as those of a command-line argument); SQLite takes the
first and its driver refuses the second. Unchecked, either surfaces as a driver error, and
a different one per backend. An id that fails this check cannot have been stored, so a
lookup of it finds nothing without asking the database; free text that fails it is refused
with its own field's code.
"""

from __future__ import annotations


def storable(value: object) -> bool:
    """Whether `value` is a str that every backend stores and compares as given."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    if value.isascii():  # the common case, without encoding anything
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
