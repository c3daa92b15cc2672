"""The results store: one DuckDB file per run directory, queried with SQL.

Every writer replaces one chunk (the rows of one key, e.g. one (agent, setting)) inside a
single transaction, so a killed job leaves either the whole chunk or none of it, and a
rerun skips chunks already present. A ``meta`` table records the schema version; a
store from another version is refused with one line.

    >>> store = ResultsStore("runs/demo")
    >>> store.query("SELECT agent, AVG(steps) FROM episodes GROUP BY agent")
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gmg.training.errors import UserError

SCHEMA_VERSION = 1
STORE_FILE = "results.duckdb"
AGENTS = "agents"  # agent id -> weights fingerprint and source, one row per agent


class ResultsStore:
    """DuckDB at ``run_dir/results.duckdb``; tables are created by their first chunk."""

    def __init__(self, run_dir: str | Path, read_only: bool = False):
        import duckdb

        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_FILE
        if read_only and not self.path.exists():
            raise UserError(f"{self.run_dir} has no results store yet; run `gmg evaluate` first")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as e:
            raise UserError(f"cannot open results store {self.path}: {e}") from None
        self._check_version(read_only)

    def _check_version(self, read_only: bool) -> None:
        tables = self.tables()
        if "meta" not in tables:
            if read_only:
                raise UserError(f"{self.path} is not a gmg results store")
            self.con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            return
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else None
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{self.path} was written with store schema {version}; this gmg uses {SCHEMA_VERSION}: "
                "use a new run directory (or delete the file to recompute)"
            )

    def tables(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}

    def write_chunk(self, table: str, rows: pd.DataFrame, key: dict) -> None:
        """Replace the rows of ``table`` matching ``key`` (column -> value) by ``rows``, atomically;
        an empty ``key`` matches every row: the table is replaced, columns included (a newer gmg
        may write more of them)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.register("_chunk", rows)
            if not key:
                self.con.execute(f"DROP TABLE IF EXISTS {table}")
            if table not in self.tables():
                self.con.execute(f"CREATE TABLE {table} AS SELECT * FROM _chunk LIMIT 0")
            where = " AND ".join(f"{k} = ?" for k in key)
            self.con.execute(f"DELETE FROM {table}" + (f" WHERE {where}" if key else ""), list(key.values()))
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _chunk")
            self.con.unregister("_chunk")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def has_chunk(self, table: str, key: dict) -> bool:
        if table not in self.tables():
            return False
        where = " AND ".join(f"{k} = ?" for k in key)
        return self.con.execute(f"SELECT 1 FROM {table} WHERE {where} LIMIT 1", list(key.values())).fetchone() is not None

    def chunks(self, table: str, columns: list[str]) -> set[tuple]:
        """The distinct key tuples present in ``table``."""
        if table not in self.tables():
            return set()
        return set(self.con.execute(f"SELECT DISTINCT {', '.join(columns)} FROM {table}").fetchall())

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def table(self, name: str) -> pd.DataFrame:
        if name not in self.tables():
            raise UserError(f"{self.path} has no table {name!r}; run the stage that writes it first")
        return self.query(f"SELECT * FROM {name}")

    def check_config(self, table: str, params: dict, what: str) -> None:
        """One run directory holds one kind of ``what`` (e.g. evaluation): the first call
        records ``params`` in ``table``; a later call with other values is refused."""
        params = {k: str(tuple(v) if isinstance(v, list) else v) for k, v in params.items()}
        if table in self.tables():
            old = self.table(table).iloc[0].to_dict()
            diff = {k: (old.get(k), v) for k, v in params.items() if str(old.get(k)) != v}
            if diff:
                shown = ", ".join(f"{k}={a} (asked {b})" for k, (a, b) in diff.items())
                raise UserError(f"{self.run_dir} holds {what} with {shown}; use another --run-dir")
        else:
            self.write_chunk(table, pd.DataFrame([params]), {})

    def check_agents(self, refs: list) -> None:
        """Results are keyed by agent id (its seed): refuse ids that name two agents, here or
        against the agents whose results this store already holds (by weights fingerprint)."""
        seen: dict[int, object] = {}
        for r in refs:
            if r.agent_id in seen:
                raise UserError(f"two agents have id {r.agent_id} ({seen[r.agent_id].path} and {r.path}); "
                               "results are keyed by id: study them in separate runs")
            seen[r.agent_id] = r
        known = {}
        if AGENTS in self.tables():
            known = {int(a): (f, src) for a, f, src in self.table(AGENTS)[["agent", "fingerprint", "source"]].itertuples(index=False)}
        for r in refs:
            if r.agent_id not in known:
                self.write_chunk(AGENTS, pd.DataFrame([{"agent": int(r.agent_id), "fingerprint": r.fingerprint,
                                                        "source": str(r.path)}]), {"agent": int(r.agent_id)})
            elif known[r.agent_id][0] != r.fingerprint:
                raise UserError(f"{self.run_dir} holds results of another agent {r.agent_id} (from {known[r.agent_id][1]}); "
                               f"{r.path} has other weights: use another --run-dir")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
