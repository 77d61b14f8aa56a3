//! The AgentRun table's SQLite file: its schema (created and versioned
//! here), the pragmas every connection uses, and the checkpoint row.

use std::path::Path;

use neonhub_events::Position;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};
use crate::metrics;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS agent_runs (
    run_id TEXT NOT NULL UNIQUE,
    parent_run_id TEXT,
    correlation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    operation TEXT NOT NULL,
    intent TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error_kind TEXT,
    error_message TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    duration_micros INTEGER,
    first_position INTEGER PRIMARY KEY,
    last_position INTEGER NOT NULL,
    paused_micros INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
";

/// Version 1 to 2: how long each run was not executing (a process down
/// before a resume, an operator's decision awaited), kept so a run's
/// duration leaves it out when its terminal event comes in a later batch.
/// Events written before `RunStarted.paused_micros` existed carry none, so
/// 0 is what the fold gives every row of a v1 table.
const MIGRATE_V1_TO_V2: &str =
    "ALTER TABLE agent_runs ADD COLUMN paused_micros INTEGER NOT NULL DEFAULT 0;";

/// Secondary indexes, for the reporting queries: newest first overall (also
/// covering the per-target report and the kind filter), by target, status,
/// intent, correlation and parent. Each ends with the row's key, its
/// `first_position` (unique: no two runs share a first event), which breaks
/// ties between runs started in the same microsecond.
const INDEXES_V1: &str = "
CREATE INDEX IF NOT EXISTS agent_runs_by_time
    ON agent_runs (started_at, kind, target, status, duration_micros);
CREATE INDEX IF NOT EXISTS agent_runs_by_target ON agent_runs (target, started_at);
CREATE INDEX IF NOT EXISTS agent_runs_by_status ON agent_runs (status, started_at);
CREATE INDEX IF NOT EXISTS agent_runs_by_intent ON agent_runs (intent, started_at)
    WHERE intent IS NOT NULL;
CREATE INDEX IF NOT EXISTS agent_runs_by_correlation
    ON agent_runs (correlation_id, started_at);
CREATE INDEX IF NOT EXISTS agent_runs_by_parent ON agent_runs (parent_run_id, started_at)
    WHERE parent_run_id IS NOT NULL;
";

/// Version 2 to 3 (and part of every new file): the indexes of the
/// reporting filters added later, so that a page of `GET /v1/runs` walks an
/// index whatever it filters on. Both are partial (only rows with a value):
/// by error kind (failed runs, and running runs a failed attempt left its
/// error on), newest first; and by duration (finished runs), longest first
/// for `sort=duration`. Each ends, as every index, with the row's key.
const INDEXES_V3: &str = "
CREATE INDEX IF NOT EXISTS agent_runs_by_error_kind ON agent_runs (error_kind, started_at)
    WHERE error_kind IS NOT NULL;
CREATE INDEX IF NOT EXISTS agent_runs_by_duration ON agent_runs (duration_micros)
    WHERE duration_micros IS NOT NULL;
";

/// Version 3 to 4 (and part of every new file), the columns
/// [`MIGRATE_V3_TO_V4`] fills: what each language-model
/// call used, from its step's output ([`neonhub_events::Usage`]): the model,
/// input and output tokens, and the cost in US dollars; NULL for any other
/// run. The rows of an existing file get them from their recorded output,
/// by the same rule [`neonhub_events::Usage::from_output`] applies (a
/// succeeded connector run whose output has a text `model`, non-negative
/// integer token counts and a non-negative `cost_usd`), so the table still
/// equals the log without a rebuild.
const USAGE_COLUMNS: [(&str, &str); 4] = [
    ("model", "TEXT"),
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("cost_usd", "REAL"),
];

/// Fills the usage columns of the rows and indexes them: see
/// [`USAGE_COLUMNS`].
const MIGRATE_V3_TO_V4: &str = "
UPDATE agent_runs SET
    model = json_extract(output, '$.model'),
    input_tokens = json_extract(output, '$.input_tokens'),
    output_tokens = json_extract(output, '$.output_tokens'),
    cost_usd = CAST(json_extract(output, '$.cost_usd') AS REAL)
WHERE kind = 'connector' AND status = 'succeeded' AND json_valid(output)
    AND json_type(output, '$.model') = 'text'
    AND json_type(output, '$.input_tokens') = 'integer'
    AND json_extract(output, '$.input_tokens') >= 0
    AND json_type(output, '$.output_tokens') = 'integer'
    AND json_extract(output, '$.output_tokens') >= 0
    AND json_type(output, '$.cost_usd') IN ('integer', 'real')
    AND json_extract(output, '$.cost_usd') >= 0;
CREATE INDEX IF NOT EXISTS agent_runs_with_usage ON agent_runs (parent_run_id, started_at)
    WHERE model IS NOT NULL;
";

/// Adds the [`USAGE_COLUMNS`] the table lacks, then
/// [`MIGRATE_V3_TO_V4`].
fn migrate_to_v4(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let mut stmt = tx.prepare("SELECT name FROM pragma_table_info('agent_runs')")?;
    let existing: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    for (column, sql_type) in USAGE_COLUMNS {
        if !existing.iter().any(|e| e == column) {
            tx.execute_batch(&format!(
                "ALTER TABLE agent_runs ADD COLUMN {column} {sql_type};"
            ))?;
        }
    }
    tx.execute_batch(MIGRATE_V3_TO_V4)?;
    Ok(())
}

/// The `neonhub_llm_*` series of the rows [`MIGRATE_V3_TO_V4`] filled in
/// (an older file counted none), as [`crate::metrics`] counts them.
fn llm_metrics_of_v3_rows() -> String {
    let tokens = metrics::LLM_TOKENS_TOTAL;
    let cost = metrics::LLM_COST_USD_TOTAL;
    format!(
        "
INSERT OR IGNORE INTO run_metric_counters (family, labels, value)
SELECT '{tokens}', json_array(json_array('connector', target), json_array('model', model),
        json_array('direction', 'input')), SUM(input_tokens)
    FROM agent_runs WHERE model IS NOT NULL GROUP BY target, model
UNION ALL
SELECT '{tokens}', json_array(json_array('connector', target), json_array('model', model),
        json_array('direction', 'output')), SUM(output_tokens)
    FROM agent_runs WHERE model IS NOT NULL GROUP BY target, model
UNION ALL
SELECT '{cost}', json_array(json_array('connector', target), json_array('model', model)),
        SUM(CAST(round(cost_usd * 1e9) AS INTEGER))
    FROM agent_runs WHERE model IS NOT NULL GROUP BY target, model;
"
    )
}

/// The projection's name: its checkpoint key.
pub(crate) const NAME: &str = "agent_runs";

/// Opens (creating if needed) a projection database with the pragmas every
/// connection uses: WAL, so queries read while the runner writes, and
/// `synchronous=NORMAL` (a power loss may lose the last commits, rows and
/// checkpoint together, which the runner then re-applies).
pub(crate) fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if !read_only {
        // For new files only (an existing file keeps its page size): 16 KiB
        // pages measured about 15 % less CPU per rebuilt event than 4 KiB.
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Opens an existing projection database for a check that must change no
/// byte of it: read-write (so that, as the last connection, it removes the
/// `-wal` and `-shm` files it needed, where a read-only connection would
/// leave them behind) but `query_only`, so no statement can write.
pub(crate) fn open_for_check(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(conn) => {
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "query_only", true)?;
            conn.pragma_update(None, "cache_size", -65536)?;
            conn
        }
        // A file this user may only read.
        Err(_) => open_connection(path, true)?,
    };
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if (1..SCHEMA_VERSION).contains(&found) {
        // Its columns are not this build's: every query would fail on them.
        return Err(Error::SchemaOutdated {
            path: path.to_owned(),
            found,
            current: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// Creates the schema in a new file, or checks the version of an existing one.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        0 => {
            let tx = conn.transaction()?;
            tx.execute_batch(SCHEMA_V1)?;
            tx.execute_batch(INDEXES_V1)?;
            tx.execute_batch(INDEXES_V3)?;
            migrate_to_v4(&tx)?;
            tx.execute_batch(metrics::SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
            Ok(())
        }
        1..=3 => {
            let tx = conn.transaction()?;
            if version == 1 {
                tx.execute_batch(MIGRATE_V1_TO_V2)?;
            }
            tx.execute_batch(INDEXES_V3)?;
            migrate_to_v4(&tx)?;
            tx.execute_batch(&llm_metrics_of_v3_rows())?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        found => Err(Error::SchemaVersion {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        }),
    }
}

/// The position the table has applied the log up to (exclusive).
pub(crate) fn read_checkpoint(conn: &Connection) -> Result<Position> {
    let position: Option<i64> = conn
        .query_row(
            "SELECT position FROM projection_checkpoints WHERE projection = ?1",
            [NAME],
            |r| r.get(0),
        )
        .optional()?;
    Ok(Position(position.unwrap_or(0) as u64))
}

/// Sets the checkpoint, inside the transaction that writes the rows.
pub(super) fn write_checkpoint(conn: &Connection, checkpoint: Position) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO projection_checkpoints (projection, position) VALUES (?1, ?2)
         ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
    )?
    .execute(rusqlite::params![NAME, checkpoint.0 as i64])?;
    Ok(())
}
