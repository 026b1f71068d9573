"""The paper's tables, one declarative module each, registered by id."""

from importlib import import_module

from sharens.benchmark import Table

IMPLEMENTED = ("table7_uci", "table5_semg", "table6_imdb", "table4_gtzan", "table3_cifar10", "figure2_mnist",
               "resnet_cifar10")


class UnknownTable(ValueError):
    pass


def get_table(table_id: str) -> Table:
    if table_id not in IMPLEMENTED:
        raise UnknownTable(f"unknown table {table_id!r}; implemented: {', '.join(IMPLEMENTED)}")
    return import_module(f"benchmarks.{table_id}").TABLE
