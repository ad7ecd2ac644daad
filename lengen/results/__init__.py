"""Result rows: the schema every writer and reader shares, and the terminal view of one run."""

from lengen.results.schema import (
    CONFIG_FILE,
    META_COLUMNS,
    META_FILE,
    METRICS,
    RESULTS_FILE,
    STANDARD_COLUMNS,
    coerce,
    group_keys,
    read_results,
    with_metadata,
    write_results,
)
from lengen.results.view import print_table, summary

__all__ = [
    "CONFIG_FILE", "META_COLUMNS", "META_FILE", "METRICS", "RESULTS_FILE", "STANDARD_COLUMNS", "coerce",
    "group_keys", "print_table", "read_results", "summary", "with_metadata", "write_results",
]
