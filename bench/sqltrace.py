"""Run `python -m archiver ARGS` and write down every SQL statement it ran, parameters inlined.

    python bench/sqltrace.py OUT.json ARCHIVER-ARGS...

Every sqlite connection in the process (the standard library's, and SQLAlchemy's, which opens
them through `sqlite3.dbapi2.connect`) gets a trace callback; the statements go to OUT.json as a
list once the command exits. run.py feeds the reads among them to the `sqlite3` shell, so that
"sqlite3 running the same query" stays true whatever the read path becomes.
"""

from __future__ import annotations

import json
import runpy
import sqlite3
import sqlite3.dbapi2
import sys
from typing import Any


def main(argv: list[str]) -> None:
    out, args = argv[0], argv[1:]
    statements: list[str] = []
    connect = sqlite3.dbapi2.connect

    def traced(*a: Any, **k: Any) -> sqlite3.Connection:
        conn = connect(*a, **k)
        conn.set_trace_callback(statements.append)
        return conn

    sqlite3.connect = sqlite3.dbapi2.connect = traced  # type: ignore[assignment]
    sys.argv = ["archiver", *args]
    try:
        runpy.run_module("archiver", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(statements, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
