"""Many rows of one model written set-based, without Django's per-field SQL compilation.

``bulk_create`` and ``bulk_update`` build every value of every row through the field's
``get_db_prep_save`` and compile it into SQL in Python; on PostgreSQL ``bulk_create``
sends the rows as arrays, whose text quoting of the JSON columns (a regular expression
per element) was most of the recompute's cost. Here each column's adapter is chosen
once, the values are those Django would send (the same JSON text, dates, datetimes
and decimals), and the rows go:

- PostgreSQL: inserted with ``COPY`` into the table; updated with ``COPY`` into a
  temporary table and one ``UPDATE … FROM`` (a few rows: ``executemany``);
- SQLite: ``executemany``.

Both run on Django's connection, so they are part of the caller's transaction. A few
rows that the caller needs the keys of go in one ``INSERT … RETURNING``
(``insert_returning``), and their history in one ``INSERT … SELECT``
(``insert_created_history``, whose head ``history_insert`` the imports share). The reads
the recompute and the lab writer make on every write are plain SQL too (``quoted``,
``db_value``, ``fetch`` with the ORM's ``converters``).
"""

# Table and column names come from the models' metadata, quoted; values are parameters.
# ruff: noqa: S608
from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, models, transaction

# Below this many rows an update is one pipelined ``executemany``, not a temporary table.
_UPDATE_VIA_TABLE = 50

Adapter = Callable[[Any], Any] | None


def _adapter(field: models.Field) -> Adapter:
    """How Django turns a Python value of this field into the value sent to the driver."""
    ops = connection.ops
    if isinstance(field, models.JSONField):
        encoder = field.encoder

        def dumps(value: Any) -> Any:
            return None if value is None else json.dumps(value, cls=encoder)

        return dumps
    if connection.vendor == "postgresql":
        return None  # dates and datetimes go to psycopg as they are (the backend's adapters return them)
    if isinstance(field, models.DateTimeField):
        return ops.adapt_datetimefield_value
    if isinstance(field, models.DateField):
        return ops.adapt_datefield_value
    # Integers, booleans, strings and decimals go to the driver as they are, as with the ORM
    # (``adapt_decimalfield_value`` returns the Decimal; SQLite's adapter makes it a string).
    return None


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field]:
    return [model._meta.get_field(name) for name in names]  # type: ignore[misc]


def _adapt(rows: Sequence[Sequence[Any]], adapters: list[Adapter]) -> list[Sequence[Any]]:
    """The rows with the columns that have an adapter adapted (the others as they are)."""
    adapted = [(i, adapt) for i, adapt in enumerate(adapters) if adapt is not None]
    if not adapted:
        return list(rows)
    out: list[Sequence[Any]] = []
    for row in rows:
        values = list(row)
        for i, adapt in adapted:
            values[i] = adapt(values[i])
        out.append(values)
    return out


def _with_defaults(
    model: type[models.Model], names: Sequence[str]
) -> tuple[list[models.Field], tuple[Any, ...]]:
    """The fields ``names``, then the other concrete fields but the key; and their defaults."""
    given = _fields(model, names)
    named = {f.attname for f in given}
    missing = [f for f in model._meta.concrete_fields if not f.primary_key and f.attname not in named]
    return given + missing, tuple(f.get_default() for f in missing)


def insert_returning(
    model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """Insert a few rows in one ``INSERT … RETURNING``; their primary keys, in the order of ``rows``.

    As ``insert_rows``, but the values are prepared by each field as ``bulk_create`` prepares
    them (``get_db_prep_save``), without compiling the statement through the ORM.
    """
    if not rows:
        return []
    all_fields, defaults = _with_defaults(model, names)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in all_fields)
    marks = "(" + ", ".join(["%s"] * len(all_fields)) + ")"
    params = [
        field.get_db_prep_save(value, connection)
        for row in rows
        for field, value in zip(all_fields, (*row, *defaults), strict=True)
    ]
    pk = model._meta.pk
    assert pk is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "
            f"VALUES {', '.join([marks] * len(rows))} RETURNING {quote(pk.column)}",
            params,
        )
        return [key for (key,) in cursor.fetchall()]


def insert_rows(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in the order of ``names``, attnames such as ``patient_id``).

    The concrete fields not named get their default, as ``bulk_create`` gives them; the
    primary key comes from the database.
    """
    if not rows:
        return
    all_fields, defaults = _with_defaults(model, names)
    adapters = [_adapter(f) for f in all_fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in all_fields)
    table = connection.ops.quote_name(model._meta.db_table)
    values = _adapt([(*row, *defaults) for row in rows], adapters)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(all_fields))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)


def history_insert(model: type[models.Model]) -> tuple[str, str]:
    """The head of an ``INSERT … SELECT`` of ``model``'s django-simple-history rows.

    Returns ``INSERT INTO <history> (<tracked columns>, history_date, history_change_reason,
    history_type, history_user_id)`` and the tracked columns of the stored row (alias ``o``)
    to select, in that order; the caller selects the four history values after them.
    """
    quote = connection.ops.quote_name
    history = model.history.model._meta  # type: ignore[attr-defined]  # simple-history's manager
    columns = [quote(f.column) for f in history.concrete_fields if not f.column.startswith("history_")]
    head = (
        f"INSERT INTO {quote(history.db_table)} ({', '.join(columns)}, history_date, "
        "history_change_reason, history_type, history_user_id)"
    )
    return head, ", ".join(f"o.{c}" for c in columns)


def insert_created_history(
    model: type[models.Model], ids: Sequence[int], *, now: Any, reason: str, user_id: int | None
) -> None:
    """The history rows ("+", ``reason``) of the rows just inserted with keys ``ids``, in key
    order, in one ``INSERT … SELECT``: what ``bulk_create_with_history`` stores."""
    if not ids:
        return
    head, selected = history_insert(model)
    key = model._meta.pk
    assert key is not None
    table, pk = quoted(model, key.name)
    when = db_value(model.history.model, "history_date", now)  # type: ignore[attr-defined]  # simple-history's manager
    with connection.cursor() as cursor:
        cursor.execute(
            f"{head} SELECT {selected}, %s, %s, '+', %s FROM {table} o "
            f"WHERE o.{pk} IN ({', '.join(['%s'] * len(ids))}) ORDER BY o.{pk}",
            [when, reason, user_id, *ids],
        )


def update_rows(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Set the ``names`` columns of existing rows; each row is ``(pk, *values)``."""
    if not rows:
        return
    fields = _fields(model, names)
    pk = model._meta.pk
    assert pk is not None
    adapters: list[Adapter] = [None, *(_adapter(f) for f in fields)]
    values = _adapt(rows, adapters)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk_column = quote(pk.column)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(values) >= _UPDATE_VIA_TABLE:
            columns = ", ".join(quote(f.column) for f in fields)
            # The key and the updated columns, with the table's types and no constraints; it
            # lives until the transaction ends, and a second use in the transaction empties it.
            stage = quote(f"_update_{model._meta.db_table}_{zlib.crc32(columns.encode()):08x}")
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
                f"SELECT {pk_column}, {columns} FROM {table} WITH NO DATA"
            )
            cursor.execute(f"DELETE FROM {stage}")
            with cursor.cursor.copy(f"COPY {stage} ({pk_column}, {columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
            assignments = ", ".join(f"{quote(f.column)} = s.{quote(f.column)}" for f in fields)
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} FROM {stage} AS s WHERE t.{pk_column} = s.{pk_column}"
            )
        else:
            assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s",
                [(*row[1:], row[0]) for row in values],
            )


# --- reading plain rows ---------------------------------------------------------------------


def quoted(model: type[models.Model], *names: str) -> tuple[str, ...]:
    """The quoted table of ``model``, then the quoted columns of the fields ``names``."""
    quote = connection.ops.quote_name
    return (quote(model._meta.db_table), *(quote(f.column) for f in _fields(model, names)))


def db_value(model: type[models.Model], name: str, value: Any) -> Any:
    """``value`` as the ORM sends it to the driver to compare with the field ``name``."""
    return _fields(model, [name])[0].get_db_prep_value(value, connection, prepared=False)


Converter = Callable[[Any], Any]


def converters(model: type[models.Model], names: Sequence[str]) -> list[Converter | None]:
    """How the ORM turns each of these fields' database values into Python (None: as they are).

    The backend's converters (on SQLite: datetimes, decimals, booleans) and the field's
    ``from_db_value``, in the order the ORM applies them.
    """
    out: list[Converter | None] = []
    for field in _fields(model, names):
        col = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if not found:
            out.append(None)
            continue

        def convert(value: Any, found: list[Callable[..., Any]] = found, col: Any = col) -> Any:
            for converter in found:
                value = converter(value, col, connection)
            return value

        out.append(convert)
    return out


def fetch(sql: str, params: Sequence[Any], convert: Sequence[Converter | None]) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` as tuples, each column passed through its converter of ``convert``."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    active = [(i, c) for i, c in enumerate(convert) if c is not None]
    if not active:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        for i, c in active:
            values[i] = c(values[i])
        out.append(tuple(values))
    return out
