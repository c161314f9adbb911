"""Query -> SQL, per dialect (SQLite and PostgreSQL).

The core's checked filter tree (every condition carries its field's kind), sort keys and
keyset position become a WHERE clause, an ORDER BY and parameters. Values are always bound,
never spliced; paths were checked by the core against a strict pattern, so the JSON path
literals built here cannot carry SQL. `Compiler.expression` is the one place that says how a
path is read: declared indexes are built from the same text, so the planner matches them.

Ordering convention (both dialects): null and missing sort as the smallest values (first
ascending, last descending); ties break on `id`. Date-times compare as instants; strings
compare by code point.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from recordbase.core.filters import field_kind
from recordbase.core.query import And, Condition, Filter, Not, Or, SortKey
from recordbase.core.types import RecordType, parse_path
from recordbase.errors import InvalidFilter

# Characters a JSON string holds as they are in every serializer's output (no escape, and
# none of the HTML-safe escapers' `<`, `>`, `&`, `/`): see Compiler.text_hint.
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9 _.,:;!?@#$%*+=()~^|'-]{1,200}")


def type_is(type_id: str) -> str:
    """`type_id = '<id>'`, the type id as a literal: on PostgreSQL the predicate of the partial
    declared indexes and the type condition of list queries, which must hold that very term
    for the planner to use such an index (a bound parameter does not match). SQLite's records
    hold type numbers: there it is `type_id = <number>` (SqliteTx._type_is)."""
    return "type_id = '" + type_id.replace("'", "''") + "'"


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
# Columns that are never NULL: sorting on them needs no NULLS clause, and on PostgreSQL one
# (NULLS FIRST ascending) would not match the btree indexes' default order, so a keyset page
# or a filtered page sorted by created_at sorted the whole type instead of walking
# `records_created` (1M records: 5.6 keyset pages/s against 515 for the same query without it).
NOT_NULL_COLUMNS = frozenset({"id", "created_at", "updated_at", "version"})
# Canonical UTC text with milliseconds: SQLite's date functions resolve milliseconds.
SQLITE_INSTANT = "'%Y-%m-%dT%H:%M:%fZ'"


@dataclass
class Dialect:
    """What differs between SQL engines; a store picks one. PostgreSQL hooks are marked."""

    name: str  # "sqlite" | "postgres"
    param: str  # "?" | "%s"

    def json_value(self, path: tuple[str, ...]) -> str:
        """SQL for the JSON value at data.<path> (typed: numbers, text, booleans)."""
        if self.name == "sqlite":
            return "json_extract(data, '$" + "".join(f'."{p}"' for p in path[1:]) + "')"
        # JSON null is SQL NULL here, as json_extract gives on SQLite: nulls then sort, page
        # and compare like missing fields.
        return "NULLIF(data #> '{" + ",".join(path[1:]) + "}', 'null'::jsonb)"

    def json_text(self, path: tuple[str, ...]) -> str:
        if self.name == "sqlite":
            return self.json_value(path)
        return "(data #>> '{" + ",".join(path[1:]) + "}')"

    def json_type_in(self, path: tuple[str, ...], kind: str) -> str:
        """True when the JSON value at `path` is of `kind` (string, number, boolean, array)."""
        if self.name == "sqlite":
            where = "$" + "".join(f'."{p}"' for p in path[1:])
            names = {
                "string": "'text'",
                "number": "'integer', 'real'",
                "boolean": "'true', 'false'",
            }
            return f"json_type(data, '{where}') IN ({names.get(kind, repr(kind))})"
        pg = {"string": "'string'", "number": "'number'", "boolean": "'boolean'"}
        return f"jsonb_typeof({self.json_value(path)}) IN ({pg.get(kind, repr(kind))})"

    def instant(self, expr: str) -> str:
        """An expression comparing as the instant of a date-time text `expr`.

        PostgreSQL hook: `::timestamptz` is not immutable, so an index on it needs an
        IMMUTABLE wrapper function; the PostgreSQL store decides.
        """
        if self.name == "sqlite":
            return f"strftime({SQLITE_INSTANT}, {expr})"
        return f"rb_instant({expr})"  # IMMUTABLE wrapper (postgres migration 0002)

    def fold(self, expr: str) -> str:
        """Case folding for iexact/icontains (SQLite: `rb_fold`, registered per connection)."""
        if self.name == "sqlite":
            return f"rb_fold({expr})"
        # Columns are COLLATE "C" (byte order), where lower() folds ASCII only; the database's
        # default collation folds Unicode letters too.
        return f'lower(({expr})::text COLLATE "default")'

    def fold_value(self, value: str) -> str:
        return value.casefold() if self.name == "sqlite" else value

    def bind_fold(self, ph: str) -> str:
        return ph if self.name == "sqlite" else f'lower(({ph})::text COLLATE "default")'

    def find(self, expr: str, ph: str) -> str:
        return f"instr({expr}, {ph}) > 0" if self.name == "sqlite" else f"strpos({expr}, {ph}) > 0"

    def nulls(self, descending: bool) -> str:
        # SQLite already sorts NULL smallest; saying nothing keeps its indexes usable.
        if self.name == "sqlite":
            return ""
        return " NULLS LAST" if descending else " NULLS FIRST"

    def sql_value(self, value: Any) -> Any:
        """A Python value as bound for comparing with `json_value` in this dialect."""
        if self.name == "sqlite":
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                return float(value)  # what json_extract gives for integers beyond 64 bits
            if isinstance(value, (dict, list)):
                return orjson.dumps(value).decode()
        return value

    def text_match(self, c: Compiler, text: str, type_id: str) -> str:
        """Prefix full-text search over names and string data (PostgreSQL: store hook)."""
        if self.name == "postgres":
            # `text` is a tsquery from `pg_tsquery`. The type's GIN index is partial (WHERE
            # type_id = '<id>', stores/pg_indexes.py): the planner only uses it when the
            # query repeats that literal, which a bound (prepared, generic-plan) id is not.
            literal = "'" + type_id.replace("'", "''") + "'"
            return (
                f"type_id = {literal} AND rb_search_vector(name, data) @@ "
                f"to_tsquery('simple'::regconfig, rb_fold_text({c.bind(text)}))"
            )
        return f"seq IN (SELECT rowid FROM records_fts WHERE records_fts MATCH {c.bind(text)})"


SQLITE = Dialect("sqlite", "?")
POSTGRES = Dialect("postgres", "%s")


@dataclass
class Compiled:
    sql: str
    params: list[Any] = field(default_factory=list)


def fts_query(text: str) -> str | None:
    """Words of a search box -> an FTS5 query: every word, as a prefix (None: no words)."""
    words = [w for w in text.split() if any(ch.isalnum() for ch in w)]
    if not words:
        return None
    return " AND ".join('"' + w.replace('"', '""') + '"*' for w in words[:32])


def pg_tsquery(text: str) -> str | None:
    """Words of a search box -> a PostgreSQL tsquery: every word a prefix (None: no words).

    Words are cut into runs of letters and digits (as the text parser does), so nothing of
    the tsquery syntax can come from the user.
    """
    tokens = [t for word in text.split()[:32] for t in re.findall(r"\w+", word)]
    if not tokens:
        return None
    return " & ".join(f"'{t}':*" for t in tokens[:64])


def index_name(type_id: str, name: str, expressions: list[str]) -> str:
    """A stable index name: the type, the declared name and a digest of what it covers."""
    digest = hashlib.blake2b("\n".join(expressions).encode(), digest_size=4).hexdigest()
    return f"rbx_{index_prefix(type_id)}{name}_{digest}"


def index_prefix(type_id: str) -> str:
    return re.sub(r"\W", "_", type_id).lower() + "_"


class Compiler:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return self.d.param

    # how a path is read ---------------------------------------------------------------------

    def expression(self, path: tuple[str, ...], kind: str) -> str:
        """The SQL a path compares and sorts by (and what declared indexes are built on)."""
        if path[0] != "data":
            return SYSTEM_COLUMNS[path[0]]
        if kind == "datetime":
            return self.d.instant(self.d.json_text(path))
        return self.d.json_value(path)

    def value(self, path: tuple[str, ...], kind: str, value: Any) -> str:
        """A bound value, read the way `expression` reads the path."""
        if path[0] != "data":
            return self.bind(value)
        if kind == "datetime" and value is not None:
            return self.d.instant(self.bind(value))
        if self.d.name == "postgres":
            from psycopg.types.json import Jsonb

            return self.bind(Jsonb(value)) + "::jsonb"
        return self.bind(self.d.sql_value(value))

    def text_expr(self, path: tuple[str, ...]) -> str:
        if path[0] != "data":
            if self.d.name == "postgres" and path[0] in ("created_at", "updated_at", "version"):
                return f"{path[0]}::text"
            return SYSTEM_COLUMNS[path[0]]
        return self.d.json_text(path)

    # filters --------------------------------------------------------------------------------

    def compile(self, node: Filter) -> str:
        if isinstance(node, And):
            return (
                "(" + " AND ".join(self.compile(i) for i in node.items) + ")"
                if node.items
                else "(1 = 1)"
            )
        if isinstance(node, Or):
            return (
                "(" + " OR ".join(self.compile(i) for i in node.items) + ")"
                if node.items
                else "(1 = 0)"
            )
        if isinstance(node, Not):
            # IS NOT TRUE: a condition that is unknown (missing field) counts as false, so
            # `not` is the exact complement.
            return f"(({self.compile(node.item)}) IS NOT TRUE)"
        return self.condition(node)

    def condition(self, c: Condition) -> str:
        op = c.op
        if op == "isnull":
            col = self.text_expr(c.path) if c.path[0] == "data" else self.expression(c.path, "")
            return f"({col} IS NULL)" if c.value else f"({col} IS NOT NULL)"
        if op in ("eq", "lt", "lte", "gt", "gte"):
            return self.compare(c.path, c.kind, op, c.value)
        if op == "not":
            return f"({self.compare(c.path, c.kind, 'eq', c.value)} IS NOT TRUE)"
        if op == "in":
            return self.one_of(c)
        if c.kind == "array":
            return self.member(c.path, c.value)
        return self.text_op(c)

    def compare(self, path: tuple[str, ...], kind: str, op: str, value: Any) -> str:
        sql_op = {"eq": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        guard = self.guard(path, kind, value, op)
        if guard and isinstance(value, bool) and self.d.name == "sqlite":
            return f"({self.d.json_type_in(path, 'true' if value else 'false')})"
        hint = self.text_hint(path, kind, op, value)  # binds first: it comes first in the text
        cmp = f"{self.expression(path, kind)} {sql_op} {self.value(path, kind, value)}"
        return "(" + " AND ".join(part for part in (hint, guard, cmp) if part) + ")"

    def text_hint(self, path: tuple[str, ...], kind: str, op: str, value: Any) -> str:
        """SQLite, string equality on a data path: a cheap test the record's JSON text must
        pass for the equality to hold, so `json_extract` parses only the records that pass.

        A JSON string whose characters no serializer escapes (letters, digits, a few marks)
        has one spelling, `"value"`, so a record whose field equals it holds the text
        `value"` (`data` is orjson's compact text; other records that hold it elsewhere are
        then decided by the equality itself). The test is a GLOB whose first character is
        the value's, not the quote: SQLite's GLOB skips to each occurrence of that character
        with `strcspn`, where `instr` steps byte by byte and compares at every quote, of which
        JSON has many. On a page of 100 out of 1,000,000 records filtered on an unindexed
        field matching 10%, the text test took ~3.4 M instructions with `instr('"value"')`
        and ~0.2 M as this GLOB (the whole SQL ~8.3 M → 5.1 M; docs/performance.md).
        """
        if (
            self.d.name != "sqlite"
            or op != "eq"
            or path[0] != "data"
            or kind not in ("string", "any")
            or not isinstance(value, str)
            or not _PLAIN_TEXT.fullmatch(value)
        ):
            return ""
        # `*` and `?` are GLOB's wildcards; `[x]` matches x itself (no `[` or `]` in plain text)
        literal = value.replace("*", "[*]").replace("?", "[?]")
        return f"data GLOB {self.bind('*' + literal + chr(34) + '*')}"

    def guard(self, path: tuple[str, ...], kind: str, value: Any, op: str = "") -> str:
        """For untyped fields: compare only with values of the same JSON type.

        PostgreSQL guards typed fields too: jsonb orders across types (a string is less than
        any number), where SQLite's json_extract comparisons never match across types.
        """
        if path[0] != "data" or (kind != "any" and self.d.name != "postgres"):
            return ""
        if op == "eq" and self.d.name == "postgres":
            # jsonb equality never holds across JSON types, so equality needs no guard; and
            # the guard's extra condition made the planner expect ~0.003% of rows to match
            # (two default selectivities multiplied) and scan the whole table instead of
            # walking the sort's index: 1.9 filtered pages/s against 420 without it (1M).
            return ""
        if kind == "datetime":
            return ""
        if isinstance(value, bool):
            return self.d.json_type_in(path, "boolean")
        if isinstance(value, (int, float)):
            return self.d.json_type_in(path, "number")
        return self.d.json_type_in(path, "string")

    def one_of(self, c: Condition) -> str:
        values: list[Any] = c.value
        if not values:
            return "(1 = 0)"
        if c.kind == "any" and c.path[0] == "data":
            return "(" + " OR ".join(self.compare(c.path, c.kind, "eq", v) for v in values) + ")"
        marks = ", ".join(self.value(c.path, c.kind, v) for v in values)
        return f"({self.expression(c.path, c.kind)} IN ({marks}))"

    def text_op(self, c: Condition) -> str:
        text: str = c.value
        col = self.text_expr(c.path)
        guard = self.guard(c.path, c.kind, text)
        op = c.op
        if op == "contains" and c.kind == "any" and not isinstance(c.value, str):
            return self.member(c.path, c.value)
        if op == "iexact":
            clause = f"{self.d.fold(col)} = {self.d.bind_fold(self.bind(self.d.fold_value(text)))}"
        elif op == "icontains":
            folded = self.d.bind_fold(self.bind(self.d.fold_value(text)))
            clause = self.d.find(self.d.fold(col), folded)
        elif text == "":
            clause = f"{col} IS NOT NULL"
        elif op == "contains":
            clause = self.d.find(col, self.bind(text))
        elif op == "startswith":
            clause = f"substr({col}, 1, {len(text)}) = {self.bind(text)}"
        elif self.d.name == "postgres":  # endswith (bind once: one placeholder, one value)
            clause = f"right({col}, {len(text)}) = {self.bind(text)}"
        else:  # endswith
            clause = f"substr({col}, -{len(text)}) = {self.bind(text)}"
        sql = f"({guard} AND {clause})" if guard else f"({clause})"
        if op == "contains" and c.kind == "any" and c.path[0] == "data":
            sql = f"({sql} OR {self.member(c.path, text)})"
        return sql

    def member(self, path: tuple[str, ...], value: Any) -> str:
        """Array membership: the array at `path` holds `value` (same JSON type)."""
        if self.d.name == "sqlite":
            where = "$" + "".join(f'."{p}"' for p in path[1:])
            if isinstance(value, bool):
                test = f"type = '{'true' if value else 'false'}'"
            else:
                types = "'integer', 'real'" if isinstance(value, (int, float)) else "'text'"
                test = f"type IN ({types}) AND value = {self.bind(value)}"
            return (
                f"(json_type(data, '{where}') = 'array' AND EXISTS "
                f"(SELECT 1 FROM json_each(data, '{where}') WHERE {test}))"
            )
        from psycopg.types.json import Jsonb

        return f"({self.d.json_value(path)} @> {self.bind(Jsonb([value]))}::jsonb)"

    # sort and keyset ------------------------------------------------------------------------

    def order_by(self, sort: tuple[SortKey, ...]) -> str:
        parts = []
        for key in sort:
            direction = "DESC" if key.descending else "ASC"
            nulls = "" if key.path[0] in NOT_NULL_COLUMNS else self.d.nulls(key.descending)
            parts.append(f"{self.expression(key.path, key.kind)} {direction}{nulls}")
        return ", ".join(parts)

    def keyset(self, sort: tuple[SortKey, ...], after: tuple[Any, ...]) -> str:
        """Rows strictly after `after` (raw sort values) in the order of `order_by`.

        Nulls are the smallest values: ascending, every non-null follows a null; descending,
        nulls follow every non-null. The last key (`id`) is never null.
        """
        seek = ""
        first, value = sort[0], after[0]
        if value is not None and not first.descending and len(sort) > 1:
            # A redundant lower bound the planner can seek an index with (bound first: the
            # parameters follow the text order).
            col = self.expression(first.path, first.kind)
            seek = f"{col} >= {self.value(first.path, first.kind, value)} AND "
        ors = []
        for i, key in enumerate(sort):
            if after[i] is None and key.descending:
                continue  # nothing sorts after a null, descending (checked before binding)
            ands = [self._same(prev, v) for prev, v in zip(sort[:i], after[:i], strict=True)]
            step = self._beyond(key, after[i])
            ors.append("(" + " AND ".join([*ands, step]) + ")")
        clause = "(" + " OR ".join(ors) + ")" if ors else "(1 = 0)"
        return f"({seek}{clause})"

    def _same(self, key: SortKey, value: Any) -> str:
        col = self.expression(key.path, key.kind)
        if value is None:
            return f"{col} IS NULL"
        return f"{col} = {self.value(key.path, key.kind, value)}"

    def _beyond(self, key: SortKey, value: Any) -> str:
        col = self.expression(key.path, key.kind)
        if value is None:  # ascending: every non-null follows
            return f"{col} IS NOT NULL"
        bound = self.value(key.path, key.kind, value)
        if key.descending:
            return f"({col} < {bound} OR {col} IS NULL)"
        return f"{col} > {bound}"


def declared_indexes(rtype: RecordType, dialect: Dialect) -> list[tuple[str, list[str]]]:
    """(declared name, expressions) per index of a type: each path as `expression` reads it."""
    compiler = Compiler(dialect)
    found = []
    for spec in rtype.definition.indexes:
        expressions = []
        for field_name in spec.fields:
            path = parse_path(field_name)
            try:
                kind = field_kind(rtype, path)
            except InvalidFilter:
                kind = "any"  # undeclared: indexed as stored
            expressions.append(compiler.expression(path, kind))
        found.append((spec.name, expressions))
    return found
