"""`POST /search`: the query checked (exactly two levels, as documented) and matched
against the stored contacts.

Two operators are played: `eql:strictdata`, documented as "equals (case-sensitive, exact
match)", and `eql`, documented only as "equals" and observed live to be a loose,
case-insensitive token or prefix match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qomon_sync_dev.standin.common import InvalidRequest, Problem, is_int
from qomon_sync_dev.standin.fields import BASIC_FIELD_KINDS, CURRENT_NAMES
from qomon_sync_dev.standin.records import StoredContact

SEARCHABLE_FIELDS = frozenset(name for name, kind in BASIC_FIELD_KINDS.items() if kind != "boolean")
SEARCH_GROUPS = {"$all": True, "$at_least_one": False}
"""Group key -> whether every item must match (else at least one)."""

STRICT_EQUALS = "eql:strictdata"
LOOSE_EQUALS = "eql"
MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 100
"""Used when a search omits `per_page`: the docs do not say whether it may be omitted."""

_TOKEN_SEPARATORS = re.compile(r"[\W_]+")


# -- what a search asks for -------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    attr: str
    strict: bool
    value: str


@dataclass(frozen=True)
class Group:
    every: bool
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class SearchRequest:
    every: bool
    groups: tuple[Group, ...]
    per_page: int
    page: int


def parse_search(
    advanced_search: Any,
    *,
    location: str = "body.data.advanced_search",
    max_conditions: int | None = None,
) -> SearchRequest:
    """Validate `data.advanced_search`; raises `InvalidRequest` naming each bad spot.

    `max_conditions`: how many conditions one search may hold in all (Qomon documents no
    limit; the stand-in refuses more than it is told to, as a 422, for the client's
    shrinking to be tested)."""
    if not isinstance(advanced_search, Mapping):
        raise InvalidRequest([Problem(location, "must be an object", advanced_search)])
    problems: list[Problem] = []
    per_page = advanced_search.get("per_page", DEFAULT_PER_PAGE)
    page = advanced_search.get("page", 0)
    if not is_int(per_page) or not 1 <= per_page <= MAX_PER_PAGE:
        message = f"must be an integer from 1 to {MAX_PER_PAGE}"
        problems.append(Problem(f"{location}.per_page", message, per_page))
    if not is_int(page) or page < 0:
        problems.append(Problem(f"{location}.page", "must be an integer, 0 or more", page))
    where = f"{location}.query"
    groups: list[Group] = []
    root = _group_items(advanced_search.get("query"), where, problems, root=True)
    if root is not None:
        root_key, items = root
        for index, item in enumerate(items):
            spot = f"{where}.{root_key}[{index}]"
            group = _group_items(item, spot, problems, root=False)
            if group is None:
                continue
            group_key, raw_conditions = group
            conditions = [
                _parse_condition(raw, f"{spot}.{group_key}[{position}]", problems)
                for position, raw in enumerate(raw_conditions)
            ]
            groups.append(
                Group(SEARCH_GROUPS[group_key], tuple(c for c in conditions if c is not None))
            )
    held = sum(len(group.conditions) for group in groups)
    if max_conditions is not None and held > max_conditions:
        message = f"holds {held} conditions: at most {max_conditions} in one search"
        problems.append(Problem(where, message, held))
    if problems or root is None:
        raise InvalidRequest(problems)
    return SearchRequest(SEARCH_GROUPS[root[0]], tuple(groups), per_page, page)


def _group_items(
    node: Any, where: str, problems: list[Problem], *, root: bool
) -> tuple[str, list[Any]] | None:
    """The key and items of a group node, or None after noting why it is not one.

    Observed: the query has exactly two levels, the root and its groups of conditions.
    """
    if isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in SEARCH_GROUPS:
        key, items = next(iter(node.items()))
        if isinstance(items, list):
            return key, items
        problems.append(Problem(f"{where}.{key}", "must be a list", items))
        return None
    kinds = " or ".join(f'{{"{key}": [...]}}' for key in SEARCH_GROUPS)
    if isinstance(node, Mapping) and "$condition" in node:
        message = (
            f"the query has exactly two levels: its root must be {kinds}"
            if root
            else f"a condition cannot sit directly under the root: wrap it in {kinds}"
        )
    else:
        message = f"must be {kinds}"
    problems.append(Problem(where, message, node))
    return None


def _parse_condition(node: Any, where: str, problems: list[Problem]) -> Condition | None:
    body = node.get("$condition") if isinstance(node, Mapping) and len(node) == 1 else None
    if not isinstance(body, Mapping):
        message = 'must be {"$condition": {"attr", "ope", "value"}}: groups do not nest deeper'
        problems.append(Problem(where, message, node))
        return None
    where = f"{where}.$condition"
    attr, ope, value = body.get("attr"), body.get("ope"), body.get("value")
    before = len(problems)
    attr = CURRENT_NAMES.get(attr, attr) if isinstance(attr, str) else attr
    if attr != "tags" and attr not in SEARCHABLE_FIELDS:
        problems.append(Problem(f"{where}.attr", "is not a searchable attribute", body.get("attr")))
    if ope not in (STRICT_EQUALS, LOOSE_EQUALS):
        message = f"unsupported operator: use {STRICT_EQUALS!r} or {LOOSE_EQUALS!r}"
        problems.append(Problem(f"{where}.ope", message, ope))
    if not isinstance(value, str):
        problems.append(Problem(f"{where}.value", "must be a string", value))
    if len(problems) > before or not isinstance(attr, str) or not isinstance(value, str):
        return None
    return Condition(attr, ope == STRICT_EQUALS, value)


# -- matching ---------------------------------------------------------------------------


def matches(contact: StoredContact, request: SearchRequest) -> bool:
    """Whether the contact is one the search finds (whatever its page)."""
    results = (_group_matches(contact, group) for group in request.groups)
    return all(results) if request.every else any(results)


def _group_matches(contact: StoredContact, group: Group) -> bool:
    results = (_condition_matches(contact, c) for c in group.conditions)
    return all(results) if group.every else any(results)


def _condition_matches(contact: StoredContact, condition: Condition) -> bool:
    if condition.attr == "tags":
        candidates = contact.tags
    else:
        value = contact.fields.get(condition.attr)
        candidates = [] if value is None or isinstance(value, bool) else [str(value)]
    if condition.strict:
        # Documented: "equals (case-sensitive, exact match)". Lea.Martin@Example.org is not
        # lea.martin@example.org.
        return condition.value in candidates
    wanted = condition.value.casefold()
    for candidate in candidates:
        text = candidate.casefold()
        if text.startswith(wanted) or any(
            token.startswith(wanted) for token in _TOKEN_SEPARATORS.split(text) if token
        ):
            # Observed: `eql` is a loose case-insensitive token/prefix match, so searching
            # one e-mail also finds longer addresses that begin with it.
            return True
    return False
