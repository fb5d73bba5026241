"""Model instances from rows of hand-written SQL, converted exactly as the ORM converts the rows it reads itself.

The annotator loop writes its hottest reads in SQL, because building the equivalent ORM query cost more CPU than
running it (bench/annotator_loop.py). `columns` lists a model's columns for such a query and `instance` turns a
row back into an ordinary instance: same types on PostgreSQL and SQLite, fields left out load when touched.
"""

from collections.abc import Iterable
from functools import cache

from django.db import connection
from django.db.models import Model, signals
from django.db.models.base import ModelState


def columns(model: type[Model], alias: str, only: Iterable[str] | None = None) -> str:
    """`alias.column AS alias__column, ...` for the model's concrete fields (or the attnames in `only`)."""
    return ", ".join(f"{alias}.{f.column} AS {alias}__{f.column}" for f in _fields(model, only))


def instance(model: type[Model], row: dict, alias: str, only: Iterable[str] | None = None) -> Model:
    """The instance whose columns `row` holds under `alias__column`, as the ORM would have loaded it."""
    attnames, keys, conversions, plain = _plan(connection.vendor, model, alias, None if only is None else tuple(only))
    values = [row[key] for key in keys]
    for position, col, converters in conversions:
        for convert in converters:
            values[position] = convert(values[position], col, connection)
    if plain:
        # What Model.from_db ends with, without Model.__init__: its pre_init/post_init signals, which nothing
        # listens to for these models (checked once, in _plan), cost a third of it; plain and FK attributes
        # land in __dict__ exactly as __init__ would put them on a fresh instance.
        obj = model.__new__(model)
        obj._state = ModelState()
        obj._state.adding, obj._state.db = False, connection.alias
        obj.__dict__.update(zip(attnames, values, strict=True))
        return obj
    return model.from_db(connection.alias, attnames, values)


def fetch(sql: str, params) -> list[dict]:
    """The rows of a query, as dicts by column name."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        # The same SQL text names the same columns: psycopg builds a Column object per column on every
        # `description`, which cost more than the rest of this function on the annotator loop.
        names = _names.get(sql)
        if names is None:
            names = _names[sql] = tuple(c[0] for c in cursor.description)
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_names: dict[str, tuple] = {}  # only the module's own SQL constants come here: a bounded set


def insert(obj: Model) -> Model:
    """INSERTs a new instance as `obj.save(force_insert=True)` would (defaults, auto_now_add, the pk back), in one
    statement whose SQL is built once per model: the ORM's insert compiler cost more CPU than the round trip.

    For models with no save() override, no parents and no pre/post_save receivers, which it does not send.
    """
    model = type(obj)
    sql, fields, returns_pk = _insert_plan(connection.vendor, model)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if returns_pk:
            setattr(obj, model._meta.pk.attname, cursor.fetchone()[0])
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


@cache
def _insert_plan(vendor: str, model: type[Model]) -> tuple:
    meta = model._meta
    returns_pk = meta.pk.db_returning  # an AutoField's value comes from the database
    fields = [f for f in meta.concrete_fields if not (returns_pk and f is meta.pk)]
    if meta.parents or any(f.has_db_default() for f in fields):
        raise TypeError(f"rows.insert does not handle {model.__name__}: use the ORM")
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608 (names from the model)
        f"VALUES ({', '.join(['%s'] * len(fields))})" + (f" RETURNING {quote(meta.pk.column)}" if returns_pk else "")
    )
    return sql, tuple(fields), returns_pk


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
    plain = not (signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model))
    return tuple(f.attname for f in fields), tuple(f"{alias}__{f.column}" for f in fields), tuple(conversions), plain
