"""`--format` templates: one line of text from a row's named values (`ls --format '{title} ({length})'`).

A module of its own so that `string`, whose import compiles a regex, loads for a template only,
not for every read command.
"""

from __future__ import annotations

import string
from typing import Any, Callable, Mapping, Sequence

from .errors import ArchiverError, UsageError


class _Template(string.Formatter):
    """str.format over row fields, without attribute or index access, blank for missing values.

    One line of text from named values: `--format` rows and the tag templates (`artist`, `album`)
    have the same needs. Path templates do not (paths.py says why) and have their own renderer.
    """

    def __init__(self, fields: Sequence[str], error: type[ArchiverError] = UsageError) -> None:
        super().__init__()
        self.fields = set(fields)
        self.error = error

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if field_name not in self.fields:
            raise self.error(f"unknown template field {{{field_name}}}; valid fields: "
                             f"{', '.join(sorted(self.fields))}")
        return kwargs.get(field_name), field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return ""
        for candidate in (value, str(value)):
            try:
                return format(candidate, format_spec)
            except (TypeError, ValueError):
                continue
        return str(value)


def template_renderer(template: str, fields: Sequence[str], *, what: str = "--format template",
                      error: type[ArchiverError] = UsageError) -> Callable[[Mapping[str, Any]], str]:
    """A function row -> text; the template is checked once, so a bad one fails before output.

    `what` and `error` name the template and the error class in messages (a tag template in the
    configuration is a ConfigError).
    """
    formatter = _Template(fields, error)
    try:
        parsed = list(formatter.parse(template))
    except ValueError as exc:
        raise error(f"bad {what} {template!r}: {exc}") from None
    for _, name, _, _ in parsed:
        if name is not None:
            if name == "" or name.isdigit():
                raise error(f"bad {what} {template!r}: use named fields like {{title}}")
            formatter.get_field(name, (), {})

    def render(row: Mapping[str, Any]) -> str:
        try:
            return formatter.vformat(template, (), row)
        except (ValueError, TypeError) as exc:
            raise error(f"bad {what} {template!r}: {exc}") from None

    return render
