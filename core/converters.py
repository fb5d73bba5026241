"""The `<id:...>` path converter: a database id (a positive bigint) or no match at all.

Django's `<int:...>` takes any run of digits, and a 5,000-digit id then overflows the database driver (a 500).
With this converter such a URL does not match, so the answer is the 404 of any unknown address.
"""

from django.urls import register_converter

from core.ids import MAX_ID


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_ID:
            raise ValueError("not a database id")  # Django reads a ValueError as "this pattern does not match"
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


# Registered when the module is first imported: config/urls.py and every app's urls.py import it before their
# path() calls, so `<id:...>` is known whichever URLconf Django loads first.
register_converter(IdConverter, "id")
