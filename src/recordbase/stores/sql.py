"""Query -> SQL, per dialect (SQLite and PostgreSQL).

The core's filter tree, sort keys and keyset position become a WHERE clause, an ORDER BY and
parameters. Values are always bound, never spliced; paths were checked by the core against a
strict pattern, so the JSON path literals built here cannot carry SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recordbase.core.query import And, Condition, Filter, Not, Or, SortKey

SYSTEM_COLUMNS = {
    "id": "id",
    "name": "name",
    "external_id": "external_id",
    "owner": "owner",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "created_by": "created_by",
    "updated_by": "updated_by",
    "version": "version",
}


@dataclass
class Dialect:
    name: str  # "sqlite" | "postgres"
    param: str  # "?" | "%s"

    def json_path(self, path: tuple[str, ...]) -> str:
        """SQL for the JSON value at data.<path> (as a typed value)."""
        if self.name == "sqlite":
            return "json_extract(data, '$" + "".join(f'."{p}"' for p in path[1:]) + "')"
        return "(data #> '{" + ",".join(path[1:]) + "}')"

    def json_text(self, path: tuple[str, ...]) -> str:
        if self.name == "sqlite":
            return self.json_path(path)
        return "(data #>> '{" + ",".join(path[1:]) + "}')"

    def like(self, case_insensitive: bool) -> str:
        if self.name == "postgres":
            return "ILIKE" if case_insensitive else "LIKE"
        return "LIKE"


SQLITE = Dialect("sqlite", "?")
POSTGRES = Dialect("postgres", "%s")


@dataclass
class Compiled:
    sql: str
    params: list[Any] = field(default_factory=list)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Compiler:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return self.d.param

    def column(self, path: tuple[str, ...]) -> str:
        if path[0] == "data":
            return self.d.json_path(path)
        return SYSTEM_COLUMNS[path[0]]

    def text_column(self, path: tuple[str, ...]) -> str:
        if path[0] == "data":
            return self.d.json_text(path)
        if self.d.name == "postgres" and path[0] in ("created_at", "updated_at", "version"):
            return f"{path[0]}::text"
        return SYSTEM_COLUMNS[path[0]]

    def scalar(self, path: tuple[str, ...], value: Any) -> tuple[str, str]:
        """(column SQL, placeholder) comparing like with like for this dialect."""
        if path[0] != "data" or self.d.name == "sqlite":
            if isinstance(value, bool) and self.d.name == "sqlite":
                value = int(value)
            return self.column(path), self.bind(value)
        # PostgreSQL: compare jsonb with jsonb so numbers, strings and booleans keep their type.
        from psycopg.types.json import Jsonb

        return self.d.json_path(path), self.bind(Jsonb(value)) + "::jsonb"

    def compile(self, node: Filter) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self.compile(i) for i in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.compile(i) for i in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.compile(node.item)})"
        return self.condition(node)

    def condition(self, c: Condition) -> str:
        op, v = c.op, c.value
        if op == "isnull":
            col = self.column(c.path)
            if c.path[0] == "data" and self.d.name == "postgres":
                col = self.d.json_text(c.path)
            return f"({col} IS NULL)" if v else f"({col} IS NOT NULL)"
        if op in ("eq", "not", "lt", "lte", "gt", "gte"):
            sql_op = {"eq": "=", "not": "IS NOT", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
            col, ph = self.scalar(c.path, v)
            if op == "not":
                return f"({col} IS NULL OR {col} <> {ph})"
            return f"({col} {sql_op[op]} {ph})"
        if op == "in":
            parts = [self.scalar(c.path, item) for item in v]
            if not parts:
                return "(1 = 0)"
            return f"({parts[0][0]} IN ({', '.join(p for _, p in parts)}))"
        if op == "iexact":
            return f"(lower({self.text_column(c.path)}) = lower({self.bind(str(v))}))"
        if op == "contains" and isinstance(v, (int, float, bool)) and c.path[0] == "data":
            return self.member(c.path, v)
        if op in ("contains", "icontains", "startswith", "endswith"):
            text = _escape_like(str(v))
            pattern = {
                "contains": f"%{text}%",
                "icontains": f"%{text}%",
                "startswith": f"{text}%",
                "endswith": f"%{text}",
            }[op]
            col = self.text_column(c.path)
            like = self.d.like(op == "icontains")
            if self.d.name == "sqlite" and op != "icontains":
                # SQLite's LIKE ignores ASCII case; GLOB-free exactness via instr/substr.
                return self._sqlite_exact(col, op, str(v))
            # Bind in the order the placeholders appear: the pattern first, then the member.
            clause = f"({col} {like} {self.bind(pattern)} ESCAPE '\\')"
            member = self.member(c.path, v) if op == "contains" and c.path[0] == "data" else None
            return f"({clause} OR {member})" if member else clause
        raise ValueError(op)

    def _sqlite_exact(self, col: str, op: str, value: str) -> str:
        if op == "contains":
            member = ""
            return f"(instr({col}, {self.bind(value)}) > 0{member})"
        if op == "startswith":
            return f"(substr({col}, 1, {self.bind(len(value))}) = {self.bind(value)})"
        return f"(substr({col}, -{self.bind(len(value))}) = {self.bind(value)})"

    def member(self, path: tuple[str, ...], value: Any) -> str:
        """Array membership: the array at `path` holds `value`."""
        if self.d.name == "sqlite":
            where = "$" + "".join(f'."{p}"' for p in path[1:])
            ph = self.bind(int(value) if isinstance(value, bool) else value)
            return (
                f"(json_type(data, '{where}') = 'array' AND EXISTS "
                f"(SELECT 1 FROM json_each(data, '{where}') WHERE value = {ph}))"
            )
        from psycopg.types.json import Jsonb

        return f"({self.d.json_path(path)} @> {self.bind(Jsonb([value]))}::jsonb)"

    def order_by(self, sort: tuple[SortKey, ...]) -> str:
        parts = []
        for key in sort:
            direction = "DESC" if key.descending else "ASC"
            nulls = "NULLS LAST" if not key.descending else "NULLS FIRST"
            parts.append(f"{self.column(key.path)} {direction} {nulls}")
        return ", ".join(parts)

    def keyset(self, sort: tuple[SortKey, ...], after: tuple[Any, ...]) -> str:
        """Rows strictly after `after` (the sort values) in the order of `order_by`."""
        keys = list(sort)
        ors = []
        for i, key in enumerate(keys):
            ands = []
            for prev, value in zip(keys[:i], after[:i], strict=False):
                if value is None:
                    ands.append(f"{self.column(prev.path)} IS NULL")
                else:
                    col, ph = self.scalar(prev.path, value)
                    ands.append(f"{col} = {ph}")
            col, value = self.column(key.path), after[i]
            if value is None:
                # NULLs sort last ascending / first descending: after a NULL only NULLs remain
                # ascending; descending, every non-null comes after.
                if key.descending:
                    ands.append(f"{col} IS NOT NULL")
                else:
                    continue
            else:
                op = "<" if key.descending else ">"
                col, ph = self.scalar(key.path, value)
                cmp = f"{col} {op} {ph}"
                if not key.descending:
                    cmp = f"({cmp} OR {col} IS NULL)"
                ands.append(cmp)
            ors.append("(" + " AND ".join(ands) + ")")
        return "(" + " OR ".join(ors) + ")" if ors else "(1 = 0)"
