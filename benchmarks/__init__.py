"""The paper's tables, one declarative module each: every module here that declares a `TABLE` is found."""

import pkgutil
from importlib import import_module

from sharens.suite.table import Table


class UnknownTable(ValueError):
    pass


def _discover() -> dict[str, Table]:
    """{table id: table} of every module of this package with a `TABLE`, in the tables' run order."""
    modules = [import_module(f"{__name__}.{module.name}") for module in pkgutil.iter_modules(__path__)]
    found = [getattr(module, "TABLE", None) for module in modules]
    tables = sorted((t for t in found if isinstance(t, Table)), key=lambda t: (t.run_order, t.id))
    return {table.id: table for table in tables}


_TABLES = _discover()
TABLES: tuple[str, ...] = tuple(_TABLES)


def get_table(table_id: str) -> Table:
    if table_id not in _TABLES:
        raise UnknownTable(f"unknown table {table_id!r}; implemented: {', '.join(TABLES)}")
    return _TABLES[table_id]
