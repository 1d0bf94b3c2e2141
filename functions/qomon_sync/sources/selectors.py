"""JMESPath selectors over a parsed body (https://jmespath.org): how the `json` preset and
the presets built on it find a delivery's events, ids, dates and answers.

An expression is compiled when the mapping file is loaded, so one that does not compile is
an error naming its place in the file. At run time a selector that cannot be applied to a
body (a function given text where it takes a number) is a BadPayload naming the selector,
never the body's values. The `jmespath` package comes with Powertools (pinned by it).

Besides JMESPath's own functions there is one more: `div(a, b)`, `a / b` (null when `b`
is 0), as amounts are often sent in cents.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import AfterValidator, StringConstraints

from qomon_sync.sources.base import BadPayload

MAX_EXPRESSION_CHARS = 1000


class _Functions(functions.Functions):  # type: ignore[misc]
    @functions.signature({"types": ["number"]}, {"types": ["number"]})  # type: ignore[untyped-decorator]
    def _func_div(self, dividend: float, divisor: float) -> float | None:
        return dividend / divisor if divisor else None


_OPTIONS = jmespath.Options(custom_functions=_Functions())


@lru_cache(maxsize=1024)
def compiled(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


def _compiles(expression: str) -> str:
    try:
        compiled(expression)
    except JMESPathError as exc:
        raise ValueError(f"`{expression}` is not a JMESPath expression ({_why(exc)})") from None
    return expression


def _why(exc: JMESPathError) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def compile_problem(expression: str) -> str | None:
    """Why `expression` is not a JMESPath expression, or None."""
    try:
        _compiles(expression)
    except ValueError as exc:
        return str(exc)
    return None


Selector = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EXPRESSION_CHARS),
    AfterValidator(_compiles),
]
"""A JMESPath expression, compiled at load."""


def select(expression: str, data: Any, where: str) -> Any:
    """What `expression` selects in `data`; `where` names the selector in the file."""
    try:
        return compiled(expression).search(data, options=_OPTIONS)
    except JMESPathError as exc:
        raise BadPayload(
            f"the selector `{where}` cannot be applied to this body ({type(exc).__name__})",
            field=where,
        ) from None


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and empty text, lists and objects are false."""
    return value not in (False, None, "", [], {})
