"""Model instances from rows of hand-written SQL, converted exactly as the ORM converts the rows it reads itself.

The annotator loop writes its hottest reads in SQL, because building the equivalent ORM query cost more CPU than
running it (bench/annotator_loop.py). `columns` lists a model's columns for such a query and `instance` turns a
row back into an ordinary instance: same types on PostgreSQL and SQLite, fields left out load when touched.
"""

from collections.abc import Iterable
from functools import cache

from django.db import connection
from django.db.models import Model


def columns(model: type[Model], alias: str, only: Iterable[str] | None = None) -> str:
    """`alias.column AS alias__column, ...` for the model's concrete fields (or the attnames in `only`)."""
    return ", ".join(f"{alias}.{f.column} AS {alias}__{f.column}" for f in _fields(model, only))


def instance(model: type[Model], row: dict, alias: str, only: Iterable[str] | None = None) -> Model:
    """The instance whose columns `row` holds under `alias__column`, as the ORM would have loaded it."""
    attnames, keys, conversions = _plan(connection.vendor, model, alias, None if only is None else tuple(only))
    values = [row[key] for key in keys]
    for position, col, converters in conversions:
        for convert in converters:
            values[position] = convert(values[position], col, connection)
    return model.from_db(connection.alias, attnames, values)


def fetch(sql: str, params) -> list[dict]:
    """The rows of a query, as dicts by column name."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _fields(model: type[Model], only: Iterable[str] | None) -> list:
    wanted = None if only is None else set(only)
    return [f for f in model._meta.concrete_fields if wanted is None or f.attname in wanted]


@cache
def _plan(vendor: str, model: type[Model], alias: str, only: tuple | None) -> tuple:
    # Worked out once per model and alias: the row keys to read, and what SQLCompiler.get_converters would apply
    # to each column (the backend's converters, then the field's), only where there is something to apply.
    fields = _fields(model, only)
    conversions = []
    for position, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if converters:
            conversions.append((position, col, tuple(converters)))
    # Converters are stateless functions of (value, column, connection): sharing them across threads is safe.
    return tuple(f.attname for f in fields), tuple(f"{alias}__{f.column}" for f in fields), tuple(conversions)
