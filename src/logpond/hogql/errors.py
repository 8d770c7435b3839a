"""What goes wrong with a HogQL query, said so that the user can find it.

``HogQLSyntaxError`` is the parser's (400 ``hogql_syntax_error``); ``HogQLQueryError`` is everything the
compiler refuses — unknown tables, fields and functions, disallowed constructs, OFFSET with a personal
API key (400 ``hogql_query_error``). Both carry a line and column when the position is known.
"""

from __future__ import annotations


def line_and_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    offset = max(0, min(offset, len(text)))
    before = text[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return line, column


class HogQLError(Exception):
    code = "hogql_error"

    def __init__(self, message: str, *, text: str | None = None, start: int | None = None) -> None:
        self.message = message
        self.line: int | None = None
        self.column: int | None = None
        if text is not None and start is not None:
            self.line, self.column = line_and_column(text, start)
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.message} (line {self.line}, column {self.column})"


class HogQLSyntaxError(HogQLError):
    code = "hogql_syntax_error"


class HogQLQueryError(HogQLError):
    code = "hogql_query_error"
