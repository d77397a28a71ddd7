"""The run store: one SQLite file per run, one row per candidate and per evaluation,
written (and committed) the moment it happens. WAL mode keeps it readable while a run
writes to it and intact after a kill -9."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from kopt.agent.core import Candidate, Evaluation

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created REAL, command TEXT, target TEXT, config TEXT,
    status TEXT, finished REAL);
CREATE TABLE IF NOT EXISTS targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, path TEXT, kind TEXT, source TEXT);
CREATE TABLE IF NOT EXISTS candidates (
    id TEXT PRIMARY KEY, run_id TEXT, parent_ids TEXT, code TEXT, plan_step TEXT, skills TEXT,
    proposer TEXT, prompt TEXT, completion TEXT, created REAL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, candidate_id TEXT, verdict TEXT,
    correct INTEGER, speedup REAL, ci_low REAL, ci_high REAL, ref_ms REAL, new_ms REAL,
    reason TEXT, seed INTEGER, machine TEXT, result TEXT, created REAL);
CREATE INDEX IF NOT EXISTS evaluations_candidate ON evaluations(candidate_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

STORE_FILE = "run.sqlite"


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    @classmethod
    def open_run_dir(cls, run_dir: str | Path) -> Store:
        return cls(Path(run_dir) / STORE_FILE)

    def close(self) -> None:
        self.db.close()

    # -- writes: each one its own transaction -------------------------------------------
    def start_run(self, run_id: str, command: str, target: str, config: dict) -> None:
        self.db.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?)",
                        (run_id, time.time(), command, target, json.dumps(config), "running", None))

    def set_status(self, run_id: str, status: str) -> None:
        self.db.execute("UPDATE runs SET status=?, finished=? WHERE id=?", (status, time.time(), run_id))

    def add_target(self, run_id: str, path: str, kind: str, source: str) -> None:
        self.db.execute("INSERT INTO targets (run_id, path, kind, source) VALUES (?,?,?,?)",
                        (run_id, path, kind, source))

    def add_candidate(self, run_id: str, c: Candidate) -> None:
        self.db.execute("INSERT OR IGNORE INTO candidates VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (c.id, run_id, json.dumps(c.parent_ids), c.code, c.plan_step, json.dumps(c.skills),
                         json.dumps(c.proposer), c.prompt, c.completion, c.created))

    def add_evaluation(self, run_id: str, e: Evaluation) -> int:
        r = e.result
        ci = r.get("speedup_ci") or [None, None]
        cur = self.db.execute(
            "INSERT INTO evaluations (run_id, candidate_id, verdict, correct, speedup, ci_low, ci_high, ref_ms,"
            " new_ms, reason, seed, machine, result, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, e.candidate_id, r.get("verdict"), int(bool(r.get("correct"))), r.get("speedup"), ci[0], ci[1],
             r.get("ref_ms"), r.get("new_ms"), r.get("reason"), e.seed, json.dumps(e.machine), json.dumps(r),
             e.created))
        return int(cur.lastrowid)

    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value)))

    # -- reads -----------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def runs(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM runs ORDER BY created")]

    def candidates(self, run_id: str | None = None) -> list[Candidate]:
        q, args = "SELECT * FROM candidates", ()
        if run_id:
            q, args = q + " WHERE run_id=?", (run_id,)
        return [Candidate(code=r["code"], parent_ids=json.loads(r["parent_ids"]), plan_step=r["plan_step"],
                          skills=json.loads(r["skills"]), proposer=json.loads(r["proposer"]), prompt=r["prompt"],
                          completion=r["completion"], id=r["id"], created=r["created"])
                for r in self.db.execute(q + " ORDER BY created", args)]

    def evaluations(self, run_id: str | None = None, candidate_id: str | None = None) -> list[Evaluation]:
        q, args = "SELECT * FROM evaluations WHERE 1=1", []
        if run_id:
            q += " AND run_id=?"
            args.append(run_id)
        if candidate_id:
            q += " AND candidate_id=?"
            args.append(candidate_id)
        return [Evaluation(candidate_id=r["candidate_id"], result=json.loads(r["result"]), seed=r["seed"],
                           machine=json.loads(r["machine"]), created=r["created"])
                for r in self.db.execute(q + " ORDER BY id", args)]


def find_runs(root: str | Path) -> list[Path]:
    """Run directories under `root` (those holding a run.sqlite), oldest first."""
    root = Path(root)
    if (root / STORE_FILE).exists():
        return [root]
    return sorted((p.parent for p in root.glob(f"*/{STORE_FILE}")), key=lambda p: p.stat().st_mtime)
