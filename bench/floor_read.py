"""The fastest a Python read command could be: the interpreter, the same SQL through the standard
library's sqlite3, rows as JSON on stdout.

    python bench/floor_read.py [--bare] LIBRARY.db SCRIPT.sql

By default it also imports click (the CLI library archiver is built on): the floor of any Python
command built on click. With --bare it imports nothing beyond sqlite3 and json: the floor of any
Python program answering from the same SQL. It parses no options, loads no configuration and
formats nothing beyond `json.dumps`, so it is a floor for `ls`, `search` and `show`, not a
competitor: archiver cannot be faster than this.
"""

from __future__ import annotations

import json
import sqlite3
import sys


def main(db: str, script: str) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.create_function("archiver_fold", 1, lambda v: v.casefold() if isinstance(v, str) else v,
                         deterministic=True)
    with open(script, encoding="utf-8") as fh:
        statements = [s for s in fh.read().split(";\n") if s.strip()]
    rows: list[dict[str, object]] = []
    for sql in statements:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        rows = [dict(zip(names, row)) for row in cursor]
    sys.stdout.write(json.dumps(rows, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--bare"]:
        args = args[1:]
    else:
        import click  # noqa: F401  (its import is part of what every archiver command pays)
    main(args[0], args[1])
