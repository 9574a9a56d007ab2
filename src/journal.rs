//! The journal: what was applied to which target, durable across crashes.
//!
//! # Why SQLite
//! Every finished row must survive `kill -9` and power loss, a torn last write must never stop
//! the next start, and the next run must answer "was this exact content applied to this target
//! already?" for a million keys without holding them in memory. SQLite (bundled, WAL mode,
//! `synchronous=FULL`) gives all three: a transaction is durable once committed, a torn write
//! is rolled back by SQLite's own recovery on open, and the primary key answers point lookups
//! in microseconds. Rows are committed in small batches (every [`BATCH`] outcomes or
//! [`BATCH_INTERVAL`]), so durability costs one fsync per batch, not per row.
//!
//! # What is stored
//! - `applied(target, key)`: per user, the fingerprint of the content last applied successfully
//!   (delta sync), the remote id and the outcome of the run that applied it; `targets` gives
//!   each target (profile and base URL) its number.
//! - the same rows say where each user stands in its life: `created`, `updated` or
//!   `re-enabled` (active, and *managed*: enlist provisioned it), `disabled` (by enlist, since
//!   `at`), `deleted`. `--leavers` acts on managed users who left the sheet
//!   ([`Journal::members`]); a disable, enable or delete changes the status and time, never
//!   the fingerprint, so the content last applied is still known when a user comes back.
//! - `runs`: one line per run with its input hash; a run without `finished_at` died or was
//!   interrupted, so the next run *resumes*: rows it had not recorded may have reached the
//!   target, and are looked up before any create is sent again.
//!
//! A lock file beside the database keeps two runs off the same state; the OS releases the
//! lock when a process dies, so a stale lock from a dead process is simply taken over.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::outcome::{now_rfc3339, Outcome, OutcomeSink, RunSummary, Status};
use crate::plan::{KnownUser, PlannedRow, Settled};
use crate::profile::Action;

/// Outcomes per transaction.
pub const BATCH: usize = 2000;
/// Longest time an outcome waits for its batch to be committed.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Beside the database: one JSON line `[run, fingerprint, key]` per create an upsert was
/// about to send. Not synced: it must survive the process, not the machine (a lost line
/// costs the resumed run one update it did not need). Emptied when a run finishes.
pub const INFLIGHT_FILE: &str = "creates-in-flight.jsonl";

/// The layout of the state database (`PRAGMA user_version`). 0 is the first layout, which
/// named the target in every `applied` row and kept fingerprints as hex text; it is
/// migrated on open ([`migrate`]).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS targets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS applied (
    target      INTEGER NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    remote_id   TEXT,
    status      TEXT NOT NULL,
    run_id      INTEGER NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    target      TEXT NOT NULL,
    input_sha   TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    pid         INTEGER NOT NULL
);
";

/// Follow-up steps done, per user: one row per step request (step, item and content, as
/// [`crate::plan::StepJob::id`]). Kept apart from `applied` so that a state without steps
/// reads as before, and an older enlist simply ignores it.
const STEPS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS steps_done (
    target      INTEGER NOT NULL,
    key         TEXT NOT NULL,
    step        TEXT NOT NULL,
    run_id      INTEGER NOT NULL,
    PRIMARY KEY (target, key, step)
) WITHOUT ROWID;
";

/// Brings a state database to [`SCHEMA_VERSION`], in one transaction: a state written by
/// an earlier enlist keeps its whole history. Each `applied` row is about half its old
/// size (an integer for the target, 32 bytes for the fingerprint), which makes the row a
/// run records cheaper and a million-user state smaller.
fn migrate(conn: &mut Connection, db: &Path) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err(db))?;
    if version > SCHEMA_VERSION {
        return Err(Error::input(
            db,
            format!(
                "the state was written by a newer enlist (layout {version}; this one knows up \
                 to {SCHEMA_VERSION}): run that version, or use another --state"
            ),
        ));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction().map_err(sql_err(db))?;
    let old_applied: bool = tx
        .query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('applied') WHERE name = 'target' AND type = 'TEXT'",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err(db))?;
    if old_applied {
        tx.execute_batch("ALTER TABLE applied RENAME TO applied_v0;")
            .map_err(sql_err(db))?;
    }
    tx.execute_batch(SCHEMA).map_err(sql_err(db))?;
    if old_applied {
        tx.execute_batch(
            "INSERT OR IGNORE INTO targets (name) SELECT DISTINCT target FROM applied_v0;
             INSERT INTO applied (target, key, fingerprint, remote_id, status, run_id, at)
               SELECT t.id, a.key, unhex(a.fingerprint), a.remote_id, a.status, a.run_id, a.at
               FROM applied_v0 a JOIN targets t ON t.name = a.target
               WHERE unhex(a.fingerprint) IS NOT NULL;
             DROP TABLE applied_v0;",
        )
        .map_err(sql_err(db))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql_err(db))?;
    tx.commit().map_err(sql_err(db))
}

/// The fingerprint as stored: the 32 bytes its hex stands for.
fn fingerprint_bytes(fp: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(fp, &mut out).ok()?;
    Some(out)
}

/// Identifies a target: the same sheet may feed two systems, each with its own history.
pub fn target_id(profile: &str, base_url: &str) -> String {
    format!("{profile} {}", base_url.trim_end_matches('/'))
}

/// The normalised key under which a user is journaled (case and outer spaces ignored,
/// as the duplicate check does).
pub fn journal_key(key: &str) -> String {
    crate::plan::normal_key(key).into_owned()
}

/// The file in the state directory that holds the key of the secret cells' keyed hash.
pub const SECRET_KEY_FILE: &str = "secret-hash.key";

/// The key of the keyed hash (HMAC-SHA256) that the row fingerprint takes of the secret
/// cells, so that a changed password resends its row while the journal holds neither the
/// password nor a plain hash of it (a guessable password's plain hash is the password).
///
/// Made on first use: 32 random bytes written to a temporary file (mode 0600) beside it,
/// synced, then linked into place, so a crash never leaves half a key and two runs
/// starting at once end up with the same one. A key file that group or others may read,
/// or that cannot be read, or that is not 32 bytes, is refused with what to do.
pub fn secret_key(dir: &Path) -> Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::input(dir, format!("cannot create the state directory: {e}")))?;
    let path = dir.join(SECRET_KEY_FILE);
    let start_over = "delete it to start over (rows with a secret are then sent once more)";
    for _ in 0..2 {
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::input(
                        &path,
                        format!(
                            "the key of the secrets' hash may be read by others (mode \
                             {mode:o}): run chmod 600 {}",
                            path.display()
                        ),
                    ));
                }
                let bytes = std::fs::read(&path).map_err(|e| {
                    Error::input(
                        &path,
                        format!("cannot read the key of the secrets' hash: {e}"),
                    )
                })?;
                return <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    Error::input(
                        &path,
                        format!(
                            "holds {} bytes, not the 32 of a key: {start_over}",
                            bytes.len()
                        ),
                    )
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let fail = |e: std::io::Error| {
                    Error::input(
                        dir,
                        format!("cannot write the key of the secrets' hash: {e}"),
                    )
                };
                // tempfile creates its files with mode 0600.
                let mut tmp = tempfile::Builder::new()
                    .prefix(".secret-hash.key.")
                    .tempfile_in(dir)
                    .map_err(fail)?;
                tmp.write_all(&key).map_err(fail)?;
                tmp.as_file().sync_all().map_err(fail)?;
                match tmp.persist_noclobber(&path) {
                    Ok(_) => return Ok(key),
                    // Another run made it first: use that one.
                    Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(fail(e.error)),
                }
            }
            Err(e) => {
                return Err(Error::input(
                    &path,
                    format!("cannot read the key of the secrets' hash: {e}"),
                ))
            }
        }
    }
    Err(Error::input(
        &path,
        format!("the key of the secrets' hash keeps changing: {start_over}"),
    ))
}

/// What the journal knows about one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub fingerprint: String,
    pub remote_id: Option<String>,
    pub status: Status,
    pub run_id: i64,
    pub at: String,
    /// The ids of the follow-up steps done for this user ([`crate::plan::StepJob::id`]).
    pub steps: Vec<String>,
}

/// `runs.input`: the input file of each run, for the warning a resume prints. Added to a
/// state made by an earlier enlist (whose runs have none); an older enlist ignores it.
fn add_input_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('runs') WHERE name = 'input')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE runs ADD COLUMN input TEXT")?;
    }
    Ok(())
}

/// A run on this target that did not finish, which the next run resumes.
#[derive(Debug, Clone)]
pub struct EarlierRun {
    /// Its input file as it was named (None in a state written by an earlier enlist).
    pub input: Option<String>,
    pub input_sha: String,
    pub started_at: String,
}

impl EarlierRun {
    /// The warning for a run of `input` (SHA-256 `input_sha`) that resumes this one. What a
    /// resume does is the same whatever the sheet: creates are looked up first (the dead
    /// run may have made the user before it could record it), and rows the dead run
    /// finished with the same content are reported done, not sent again. Only the dead
    /// run's own rows that are not in this sheet are left alone, so for another sheet the
    /// warning says so rather than "resuming" as if it were the same.
    pub fn warning(&self, input: &str, input_sha: &str) -> String {
        let what = "rows it finished are not sent again; creates are looked up first";
        let started = &self.started_at;
        match self.input.as_deref() {
            None => format!(
                "the last run on this target (started {started}) did not finish: resuming ({what})"
            ),
            Some(earlier) if self.input_sha == input_sha => format!(
                "the last run of {earlier} (started {started}) did not finish: resuming ({what})"
            ),
            Some(earlier) if earlier == input => format!(
                "the last run of {input} (started {started}) did not finish, and the file has \
                 changed since: resuming (rows it finished with the same content are not sent \
                 again; creates are looked up first)"
            ),
            Some(earlier) => format!(
                "an earlier run of {earlier} (started {started}) on this target did not finish; \
                 {input} is another sheet: its creates are looked up first, in case that run \
                 made the same users, and its rows that run finished with the same content are \
                 not sent again. Rows of {earlier} that are not in {input} are left as they \
                 are: run {earlier} again to finish them"
            ),
        }
    }
}

/// The state of one run: the write side (an [`OutcomeSink`]) and the lock.
pub struct Journal {
    conn: Connection,
    /// The target's row in `targets`.
    target_id: i64,
    run_id: i64,
    /// The run this one resumes (the last run on this target that never finished).
    resumes: Option<i64>,
    /// On a resume: the last run that finished properly (0: none); later runs were cut short.
    resumes_after: Option<i64>,
    pending: usize,
    last_commit: Instant,
    /// On a resume: the creates the interrupted run(s) were sending, by journal key (the
    /// content's fingerprint), read from [`INFLIGHT_FILE`].
    in_flight: Arc<HashMap<String, String>>,
    /// On a resume: the step requests the interrupted run(s) did, by journal key.
    steps_in_flight: Arc<HashMap<String, Vec<String>>>,
    /// On a resume: what the journal knows of the unfinished run, for the warning.
    earlier: Option<EarlierRun>,
    /// Held for the life of the run; dropping it releases the lock.
    _lock: File,
    path: PathBuf,
}

/// A read-only view used by the planner thread to decide what is unchanged.
pub struct JournalReader {
    conn: Connection,
    target_id: i64,
    /// This target has steps done: [`JournalReader::get`] reads them too.
    has_steps: bool,
}

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::input(path, format!("the state database cannot be used: {e}"))
}

/// An outcome that cannot be written (a full disk): says so, naming the journal.
fn write_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::input(path, format!("cannot write the journal: {e}"))
}

fn open_conn(db: &Path) -> Result<Connection> {
    let conn = Connection::open(db).map_err(sql_err(db))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sql_err(db))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .map_err(sql_err(db))?;
    Ok(conn)
}

impl Journal {
    /// Opens (or creates) the state in `dir`, takes the lock, and starts a run record.
    /// Another live run on the same state gives [`Error::Locked`].
    pub fn open(dir: &Path, target: &str, input_sha: &str) -> Result<Journal> {
        Journal::open_input(dir, target, input_sha, "")
    }

    /// [`Journal::open`] for a run of the input file `input` (as the user named it), which
    /// the warning of a later resume names.
    pub fn open_input(dir: &Path, target: &str, input_sha: &str, input: &str) -> Result<Journal> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::input(dir, format!("cannot create the state directory: {e}")))?;
        let lock_path = dir.join("enlist.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::input(&lock_path, format!("cannot open the lock file: {e}")))?;
        match FileExt::try_lock_exclusive(&lock) {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                return Err(Error::Locked(format!(
                    "another enlist run is using the state in {} ({}); wait for it to finish or use another --state",
                    dir.display(),
                    holder.trim()
                )));
            }
        }
        // Record who holds the lock, for the message a second run prints.
        let _ = std::fs::write(
            &lock_path,
            format!("pid {}, since {}", std::process::id(), now_rfc3339()),
        );

        let db = dir.join("enlist.sqlite");
        let mut conn = open_conn(&db)?;
        migrate(&mut conn, &db)?;
        conn.execute_batch(STEPS_SCHEMA).map_err(sql_err(&db))?;
        add_input_column(&conn).map_err(sql_err(&db))?;
        conn.execute(
            "INSERT OR IGNORE INTO targets (name) VALUES (?1)",
            params![target],
        )
        .map_err(sql_err(&db))?;
        let target_id: i64 = conn
            .query_row(
                "SELECT id FROM targets WHERE name = ?1",
                params![target],
                |r| r.get(0),
            )
            .map_err(sql_err(&db))?;
        let unfinished: Option<(i64, EarlierRun)> = conn
            .query_row(
                "SELECT id, input, input_sha, started_at FROM runs
                   WHERE target = ?1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
                params![target],
                |r| {
                    let input: Option<String> = r.get(1)?;
                    let earlier = EarlierRun {
                        input: input.filter(|i| !i.is_empty()),
                        input_sha: r.get(2)?,
                        started_at: r.get(3)?,
                    };
                    Ok((r.get(0)?, earlier))
                },
            )
            .optional()
            .map_err(sql_err(&db))?;
        let (resumes, earlier) = match unfinished {
            Some((id, earlier)) => (Some(id), Some(earlier)),
            None => (None, None),
        };
        // Everything applied after the last run that finished properly was applied by the
        // interrupted run(s) this one resumes (a run killed while resuming is superseded by
        // the next, so the chain can be longer than one run).
        let resumes_after: Option<i64> = match resumes {
            None => None,
            Some(_) => Some(
                conn.query_row(
                    "SELECT COALESCE(MAX(id), 0) FROM runs WHERE target = ?1
                       AND finished_at IS NOT NULL AND finished_at <> 'superseded'",
                    params![target],
                    |r| r.get(0),
                )
                .map_err(sql_err(&db))?,
            ),
        };
        conn.execute(
            "INSERT INTO runs (target, input_sha, started_at, pid, input) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![target, input_sha, now_rfc3339(), std::process::id(), input],
        )
        .map_err(sql_err(&db))?;
        let run_id = conn.last_insert_rowid();
        // Older unfinished runs are now accounted for by this one.
        conn.execute(
            "UPDATE runs SET finished_at = 'superseded' WHERE target = ?1 AND finished_at IS NULL AND id <> ?2",
            params![target, run_id],
        )
        .map_err(sql_err(&db))?;
        conn.execute_batch("BEGIN").map_err(sql_err(&db))?;
        let in_flight = match resumes_after {
            Some(after) => read_in_flight(&dir.join(INFLIGHT_FILE), after, run_id),
            None => HashMap::new(),
        };
        let steps_in_flight = match resumes_after {
            Some(after) => read_steps_in_flight(&dir.join(INFLIGHT_FILE), after, run_id),
            None => HashMap::new(),
        };
        Ok(Journal {
            conn,
            target_id,
            run_id,
            resumes,
            resumes_after,
            pending: 0,
            last_commit: Instant::now(),
            in_flight: Arc::new(in_flight),
            steps_in_flight: Arc::new(steps_in_flight),
            earlier,
            _lock: lock,
            path: db,
        })
    }

    /// True when the previous run on this target died or was interrupted.
    pub fn is_resume(&self) -> bool {
        self.resumes.is_some()
    }

    /// On a resume: the run that did not finish.
    pub fn resumed_run(&self) -> Option<&EarlierRun> {
        self.earlier.as_ref()
    }

    /// How rows are decided before they are sent. `skip_applied`: rows whose exact content
    /// was applied already end without a request (false for `--full` and `--fresh`).
    pub fn delta(&self, skip_applied: bool) -> Delta {
        Delta {
            skip_applied,
            resumes_after: self.resumes_after,
            run_id: self.run_id,
            in_flight: self.in_flight.clone(),
            steps_in_flight: self.steps_in_flight.clone(),
        }
    }

    /// Where this run's workers note the creates they are about to send.
    pub fn create_log(&self) -> Result<Arc<dyn crate::execute::CreateLog>> {
        let path = self.path.with_file_name(INFLIGHT_FILE);
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::input(&path, format!("cannot open: {e}")))?;
        Ok(Arc::new(InFlightLog {
            file: Mutex::new(file),
            run_id: self.run_id,
        }))
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// A second connection for the planner thread.
    pub fn reader(&self) -> Result<JournalReader> {
        let conn = open_conn(&self.path)?;
        let has_steps = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM steps_done WHERE target = ?1)",
                params![self.target_id],
                |r| r.get(0),
            )
            .map_err(sql_err(&self.path))?;
        Ok(JournalReader {
            conn,
            target_id: self.target_id,
            has_steps,
        })
    }

    fn commit(&mut self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT; BEGIN")
            .map_err(write_err(&self.path))?;
        self.pending = 0;
        self.last_commit = Instant::now();
        Ok(())
    }
}

impl OutcomeSink for Journal {
    fn record(&mut self, o: &Outcome) -> Result<()> {
        self.record_all(std::slice::from_ref(o))
    }

    /// Records the rows that reached the target. Failed rows are not recorded: the next
    /// run sends them again. Unchanged rows are already recorded.
    fn record_all(&mut self, outcomes: &[Outcome]) -> Result<()> {
        {
            // Found in the statement cache once per batch: finding it hashes the whole SQL
            // text, which cost more than a row's insert.
            let mut st = self
                .conn
                .prepare_cached(
                    "INSERT INTO applied (target, key, fingerprint, remote_id, status, run_id, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (target, key) DO UPDATE SET fingerprint = excluded.fingerprint,
                       remote_id = COALESCE(excluded.remote_id, applied.remote_id),
                       status = excluded.status, run_id = excluded.run_id, at = excluded.at",
                )
                .map_err(sql_err(&self.path))?;
            for o in outcomes {
                if matches!(
                    o.status,
                    Status::Disabled | Status::Deleted | Status::ReEnabled
                ) {
                    self.pending += self.record_lifecycle(o)?;
                    continue;
                }
                // A row whose step failed after its create or update: the user is there,
                // recorded as what that request did, with the steps that were done.
                let base = o.steps.as_ref().and_then(|s| s.base);
                let applied = base.is_some()
                    || matches!(o.status, Status::Created | Status::Updated | Status::Exists);
                if let (true, Some(fp)) = (applied, &o.fingerprint) {
                    // A fingerprint is always SHA-256 hex (see the planner); anything else
                    // would be a bug, and is not recorded: the row is sent again next time.
                    let Some(fp) = fingerprint_bytes(fp) else {
                        tracing::warn!(
                            row = o.row,
                            "not journaled: the fingerprint is not SHA-256 hex"
                        );
                        continue;
                    };
                    st.execute(params![
                        self.target_id,
                        journal_key(&o.key),
                        &fp[..],
                        o.remote_id,
                        base.unwrap_or(o.status).as_str(),
                        self.run_id,
                        o.finished_at
                    ])
                    .map_err(write_err(&self.path))?;
                    self.pending += 1;
                    if let Some(steps) = o.steps.as_ref().filter(|s| !s.ids.is_empty()) {
                        let mut done = self
                            .conn
                            .prepare_cached(
                                "INSERT OR IGNORE INTO steps_done (target, key, step, run_id)
                                 VALUES (?1, ?2, ?3, ?4)",
                            )
                            .map_err(sql_err(&self.path))?;
                        let key = journal_key(&o.key);
                        for id in &steps.ids {
                            done.execute(params![self.target_id, key, id, self.run_id])
                                .map_err(write_err(&self.path))?;
                        }
                    }
                }
            }
        }
        if self.pending >= BATCH
            || (self.pending > 0 && self.last_commit.elapsed() >= BATCH_INTERVAL)
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits outcomes that have waited: with the collector ticking at least every
    /// [`crate::collect::TICK`] (100 ms), committing once the last commit is 150 ms old
    /// keeps every outcome's wait within [`BATCH_INTERVAL`].
    fn tick(&mut self) -> Result<()> {
        if self.pending > 0 && self.last_commit.elapsed() >= BATCH_INTERVAL * 3 / 5 {
            self.commit()?;
        }
        Ok(())
    }

    fn abandon(&mut self) {
        if let Err(e) = self.forget_unstarted() {
            tracing::warn!("cannot record that the run did not start: {e}");
        }
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<()> {
        // An interrupted run stays "unfinished" so that the next run resumes it.
        if !summary.interrupted {
            // The chain of runs is complete: no create is in flight any more.
            if let Ok(f) = File::options()
                .write(true)
                .open(self.path.with_file_name(INFLIGHT_FILE))
            {
                let _ = f.set_len(0);
            }
            self.conn
                .execute(
                    "UPDATE runs SET finished_at = ?1 WHERE id = ?2",
                    params![now_rfc3339(), self.run_id],
                )
                .map_err(sql_err(&self.path))?;
        }
        self.commit()
    }
}

/// The members of `target` in the state in `dir`, read without taking the lock and
/// without starting a run (`check --leavers`): none when there is no state yet.
pub fn read_members(dir: &Path, target: &str) -> Result<Vec<Member>> {
    let db = dir.join("enlist.sqlite");
    if !db.exists() {
        return Ok(Vec::new());
    }
    let conn = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql_err(&db))?;
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM targets WHERE name = ?1",
            params![target],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err(&db))?;
    match id {
        Some(id) => members_of(&conn, &db, id, false),
        None => Ok(Vec::new()),
    }
}

fn members_of(
    conn: &Connection,
    db: &Path,
    target: i64,
    only_disabled: bool,
) -> Result<Vec<Member>> {
    let statuses = if only_disabled {
        "('disabled')"
    } else {
        "('created', 'updated', 're-enabled', 'disabled')"
    };
    let mut st = conn
        .prepare(&format!(
            "SELECT key, remote_id, status, at FROM applied WHERE target = ?1 AND status IN {statuses}"
        ))
        .map_err(sql_err(db))?;
    let rows = st
        .query_map(params![target], |r| {
            let status: String = r.get(2)?;
            let at: String = r.get(3)?;
            Ok(Member {
                key: r.get(0)?,
                remote_id: r.get::<_, Option<String>>(1)?.filter(|id| !id.is_empty()),
                disabled_since: (status == "disabled").then_some(at),
            })
        })
        .map_err(sql_err(db))?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(sql_err(db))
}

/// A user this state provisioned on the run's target, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The journal key ([`journal_key`]: case and outer spaces folded).
    pub key: String,
    pub remote_id: Option<String>,
    /// When enlist disabled it (RFC 3339), if it did: `None` is an active user.
    pub disabled_since: Option<String>,
}

impl Journal {
    /// Every user created or updated on this target by a run of this state and not deleted
    /// since, with whether (and since when) enlist disabled it. A user a create found
    /// already there (`exists`) is not enlist's to offboard.
    /// `only_disabled`: just those enlist disabled (a run without `--leavers` needs only
    /// them, to enable the ones who come back).
    pub fn members(&self, only_disabled: bool) -> Result<Vec<Member>> {
        members_of(&self.conn, &self.path, self.target_id, only_disabled)
    }

    /// A disable, enable or delete: the user's status and its time change; its fingerprint
    /// stays. A user this state did not know is recorded only when enlist disabled it (a
    /// user the target listed, `--leavers-scope target`): from then on enlist knows it is
    /// disabled, so the next night neither disables it again nor counts it against the
    /// cap, and `--delete-after` counts from that night. Its empty fingerprint matches no
    /// row, so a row that brings it back is sent in full.
    fn record_lifecycle(&self, o: &Outcome) -> Result<usize> {
        let sql = if o.status == Status::Disabled {
            "INSERT INTO applied (target, key, fingerprint, remote_id, status, run_id, at)
               VALUES (?5, ?6, X'', ?4, ?1, ?2, ?3)
               ON CONFLICT (target, key) DO UPDATE SET status = excluded.status,
                 run_id = excluded.run_id, at = excluded.at,
                 remote_id = COALESCE(excluded.remote_id, applied.remote_id)"
        } else {
            "UPDATE applied SET status = ?1, run_id = ?2, at = ?3,
               remote_id = COALESCE(?4, remote_id) WHERE target = ?5 AND key = ?6"
        };
        let mut st = self.conn.prepare_cached(sql).map_err(sql_err(&self.path))?;
        st.execute(params![
            o.status.as_str(),
            self.run_id,
            o.finished_at,
            o.remote_id,
            self.target_id,
            journal_key(&o.key)
        ])
        .map_err(write_err(&self.path))
    }

    /// The run never started: it sent nothing, so it is recorded as finished and the next
    /// run is not taken for a resume. A resume that could not start stays unfinished: the
    /// run it resumes may still have applied rows it did not record.
    fn forget_unstarted(&mut self) -> Result<()> {
        if self.resumes.is_none() {
            self.conn
                .execute(
                    "UPDATE runs SET finished_at = ?1 WHERE id = ?2",
                    params![format!("not started {}", now_rfc3339()), self.run_id],
                )
                .map_err(sql_err(&self.path))?;
        }
        self.commit()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("COMMIT");
    }
}

impl JournalReader {
    /// What was applied for `key` on this target, if anything.
    pub fn get(&self, key: &str) -> Result<Option<Applied>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT fingerprint, remote_id, status, run_id, at FROM applied WHERE target = ?1 AND key = ?2",
            )
            .map_err(|e| Error::Other(e.into()))?;
        let mut found = stmt
            .query_row(params![self.target_id, journal_key(key)], |r| {
                let status: String = r.get(2)?;
                let fingerprint: Vec<u8> = r.get(0)?;
                Ok(Applied {
                    fingerprint: crate::plan::hex_text(&fingerprint),
                    remote_id: r.get(1)?,
                    status: Status::parse(&status).unwrap_or(Status::Updated),
                    run_id: r.get(3)?,
                    at: r.get(4)?,
                    steps: Vec::new(),
                })
            })
            .optional()
            .map_err(|e| Error::Other(e.into()))?;
        if let (true, Some(a)) = (self.has_steps, found.as_mut()) {
            a.steps = self.steps_done(key)?;
        }
        Ok(found)
    }

    /// The ids of the steps done for `key` on this target.
    fn steps_done(&self, key: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT step FROM steps_done WHERE target = ?1 AND key = ?2")
            .map_err(|e| Error::Other(e.into()))?;
        let rows = stmt
            .query_map(params![self.target_id, journal_key(key)], |r| r.get(0))
            .map_err(|e| Error::Other(e.into()))?;
        rows.collect::<std::result::Result<Vec<String>, _>>()
            .map_err(|e| Error::Other(e.into()))
    }
}

/// Notes the creates of one run in [`INFLIGHT_FILE`].
#[derive(Debug)]
struct InFlightLog {
    file: Mutex<File>,
    run_id: i64,
}

impl crate::execute::CreateLog for InFlightLog {
    fn creating(&self, key: &str, fingerprint: &str) {
        let line = serde_json::json!([self.run_id, fingerprint, journal_key(key)]).to_string();
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(f, "{line}") {
            tracing::debug!("cannot note a create in flight: {e}");
        }
    }

    fn step_done(&self, key: &str, step: &str) {
        let line = serde_json::json!([self.run_id, "step", journal_key(key), step]).to_string();
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(f, "{line}") {
            tracing::debug!("cannot note a step done: {e}");
        }
    }
}

/// The step requests that runs after `after` (and before `this_run`) noted as done, by
/// journal key (lines `[run, "step", key, id]` of [`INFLIGHT_FILE`]).
fn read_steps_in_flight(path: &Path, after: i64, this_run: i64) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    let Ok(f) = File::open(path) else {
        return map;
    };
    for line in std::io::BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        let Ok((run, kind, key, id)) = serde_json::from_str::<(i64, String, String, String)>(&line)
        else {
            continue;
        };
        if kind == "step" && run > after && run < this_run {
            map.entry(key).or_default().push(id);
        }
    }
    map
}

/// The creates that runs after `after` (and before `this_run`) noted; later lines win.
/// Lines that do not parse (a torn last line) are skipped.
fn read_in_flight(path: &Path, after: i64, this_run: i64) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let Ok(f) = File::open(path) else {
        return map;
    };
    for line in std::io::BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        let Ok((run, fp, key)) = serde_json::from_str::<(i64, String, String)>(&line) else {
            continue;
        };
        if run > after && run < this_run {
            map.insert(key, fp);
        }
    }
    map
}

/// Decides, from what the journal knows about a row's key, whether the row needs sending
/// (delta sync) and whether its create must be preceded by a lookup (resume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// Rows whose exact content was applied already end without a request.
    pub skip_applied: bool,
    /// On a resume: the last run on this target that finished properly (0: none). Rows
    /// applied by later runs were applied by the interrupted run(s) being resumed.
    pub resumes_after: Option<i64>,
    /// This run.
    pub run_id: i64,
    /// On a resume: the creates the interrupted run(s) were sending (journal key →
    /// fingerprint).
    pub in_flight: Arc<HashMap<String, String>>,
    /// On a resume: the step requests the interrupted run(s) did (journal key → ids).
    pub steps_in_flight: Arc<HashMap<String, Vec<String>>>,
}

impl Delta {
    /// Settles `row` (unchanged, or done by the interrupted run), or marks its job for
    /// reconciliation and with the user the journal knows. Invalid and skipped rows are
    /// left alone.
    pub fn decide(&self, row: &mut PlannedRow, applied: Option<&Applied>) {
        if row.is_invalid() {
            return;
        }
        // A user enlist deleted is gone from the target: its row is a new user.
        let applied = applied.filter(|a| a.status != Status::Deleted);
        let Some(job) = row.job.as_mut() else {
            return;
        };
        if let Some(a) = applied.filter(|a| self.skip_applied && !a.steps.is_empty()) {
            // Steps done before are not sent again (the same request, by its id).
            job.steps.retain(|s| !a.steps.contains(&s.id));
        }
        if let Some(done) = self.steps_in_flight.get(&journal_key(&row.key)) {
            // Done by the interrupted run, which died before recording its row.
            job.steps.retain(|s| !done.contains(&s.id));
        }
        if let Some(a) = applied.filter(|a| self.skip_applied && a.fingerprint == job.fingerprint) {
            // The user's content is there, but steps of its create or update are not done
            // (one failed, or was added to the profile, or the list has a new item): only
            // those are sent, never a second create.
            if matches!(a.status, Status::Created | Status::Updated)
                && job.steps.iter().any(|s| s.runs_after(a.status))
            {
                job.steps.retain(|s| s.runs_after(a.status));
                job.steps_only = Some(a.status);
                job.known = Some(KnownUser {
                    remote_id: a.remote_id.clone().filter(|id| !id.is_empty()),
                });
                return;
            }
            let by_interrupted = self
                .resumes_after
                .is_some_and(|after| a.run_id > after && a.run_id < self.run_id);
            // A resumed run reports what really happened to every row: rows the dead run
            // finished keep their status; only rows applied by an earlier, finished run are
            // "unchanged".
            row.settled = Some(if by_interrupted {
                Settled {
                    status: a.status,
                    message: format!("done in the interrupted run at {}", a.at),
                    remote_id: a.remote_id.clone(),
                }
            } else {
                Settled {
                    status: Status::Unchanged,
                    message: format!("unchanged since {}", a.at),
                    remote_id: a.remote_id.clone(),
                }
            });
            return;
        }
        // The interrupted run may have created this user and died before recording it: a
        // create is preceded by a lookup. A key the journal knows was created before this
        // chain of runs needs none (a create then meets a conflict, as it always would).
        // An upsert looks up first too (rather than creating first); one without a lookup
        // cannot reconcile and relies on the conflict → update path.
        let creates = matches!(job.action, Action::Create | Action::Upsert);
        let known_before =
            applied.is_some_and(|a| self.resumes_after.is_some_and(|after| a.run_id <= after));
        if self.resumes_after.is_some() && creates && !known_before {
            job.reconcile = true;
        }
        // An upsert the interrupted run was creating with this same content: if the lookup
        // finds the user, that create was applied, and no update is needed. (Recorded
        // outcomes of the chain were settled above; other content is updated as usual.)
        let recorded_since =
            applied.is_some_and(|a| self.resumes_after.is_some_and(|after| a.run_id > after));
        if job.action == Action::Upsert
            && !recorded_since
            && self.in_flight.get(&journal_key(&row.key)) == Some(&job.fingerprint)
        {
            job.created_in_flight = true;
        }
        // Applied to this very target before (the journal is kept per target): an update
        // goes straight to the user, and a lookup is needed only if the target no longer
        // has it.
        job.known = applied.map(|a| KnownUser {
            remote_id: a.remote_id.clone().filter(|id| !id.is_empty()),
        });
    }
}

/// `--shard I/N`: which share of the keys this process takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Parses `I/N` with 0 ≤ I < N (Kubernetes' JOB_COMPLETION_INDEX counts from 0).
    pub fn parse(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s:?}: write it as I/N, for example 0/4"))?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: {i:?} is not a number"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {s:?}: I must be below N (shards are 0/N to {}/N)",
                count.max(1) - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard owns `key`. Stable across runs, machines and versions: SHA-256.
    pub fn owns(&self, key: &str) -> bool {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(journal_key(key).as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        u64::from_be_bytes(b) % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Action;

    /// Fingerprints as the planner makes them (SHA-256 hex).
    const F1: &str = "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1";
    const F2: &str = "f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2";

    fn outcome(key: &str, status: Status, fp: &str) -> Outcome {
        Outcome {
            seq: 0,
            row: 2,
            key: key.into(),
            status,
            action: Action::Create,
            http_status: Some(201),
            attempts: 1,
            requests: 1,
            duration_ms: 3,
            message: String::new(),
            remote_id: Some("r1".into()),
            finished_at: now_rfc3339(),
            cells: vec![],
            fingerprint: Some(fp.into()),
            steps: None,
            problem_columns: Vec::new(),
        }
    }

    #[test]
    fn records_survive_and_a_second_run_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "t", "sha").unwrap();
        assert!(!j.is_resume());
        j.record(&outcome("Ann@X", Status::Created, F1)).unwrap();
        j.record(&outcome("bob", Status::Failed, F2)).unwrap();
        match Journal::open(dir.path(), "t", "sha") {
            Err(Error::Locked(m)) => assert!(m.contains("another enlist run"), "{m}"),
            other => panic!("expected a lock error, got {:?}", other.map(|_| ())),
        }
        j.commit().unwrap();
        let r = j.reader().unwrap();
        assert_eq!(r.get("ann@x").unwrap().unwrap().fingerprint, F1);
        assert!(
            r.get("bob").unwrap().is_none(),
            "failed rows are sent again next time"
        );
        drop(r);
        // Not finished: the next run resumes.
        drop(j);
        let j2 = Journal::open(dir.path(), "t", "sha").unwrap();
        assert!(j2.is_resume());
        let mut j2 = j2;
        j2.finish(&RunSummary::default()).unwrap();
        drop(j2);
        let j3 = Journal::open(dir.path(), "t", "sha").unwrap();
        assert!(!j3.is_resume());
        // Targets are separate.
        drop(j3);
        let j4 = Journal::open(dir.path(), "other", "sha").unwrap();
        assert!(j4.reader().unwrap().get("ann@x").unwrap().is_none());
    }

    fn planned(action: Action, lookup: bool) -> PlannedRow {
        let req = crate::plan::Request {
            method: reqwest::Method::GET,
            path: "/u".into(),
            query: vec![],
            headers: vec![],
            body: None,
        };
        PlannedRow {
            seq: 0,
            row: 2,
            key: "ann@x".into(),
            action,
            cells: vec![],
            findings: vec![],
            job: Some(crate::plan::Job {
                action,
                lookup: lookup.then(|| req.clone()),
                create: Some(req.clone()),
                update: Some(req),
                missing_for_create: vec![],
                fingerprint: "f1".into(),
                reconcile: false,
                secrets: vec![],
                created_in_flight: false,
                known: None,
                steps: vec![],
                steps_only: None,
                missing_for_update: Vec::new(),
                lifecycle: None,
            }),
            settled: None,
        }
    }

    fn applied(fp: &str, run_id: i64) -> Applied {
        Applied {
            fingerprint: fp.into(),
            remote_id: Some("r9".into()),
            status: Status::Created,
            run_id,
            at: "2026-01-01T00:00:00.000Z".into(),
            steps: vec![],
        }
    }

    /// A row with one step request (`id`), after create and update.
    fn with_step(mut row: PlannedRow, id: &str) -> PlannedRow {
        let request = crate::plan::Request {
            method: reqwest::Method::PATCH,
            path: "/Groups/sales".into(),
            query: vec![],
            headers: vec![],
            body: None,
        };
        if let Some(job) = row.job.as_mut() {
            job.steps.push(crate::plan::StepJob {
                step: 0,
                item: Some("sales".into()),
                after_create: true,
                after_update: true,
                request,
                id: id.into(),
            });
        }
        row
    }

    #[test]
    fn steps_left_to_do_are_sent_alone_and_done_ones_never_again() {
        let nightly = Delta {
            skip_applied: true,
            resumes_after: None,
            run_id: 5,
            in_flight: Default::default(),
            steps_in_flight: Default::default(),
        };
        // Content applied, its step not done: only the step is sent, to the known user.
        let mut r = with_step(planned(Action::Upsert, true), "s1");
        nightly.decide(&mut r, Some(&applied("f1", 3)));
        assert!(r.settled.is_none());
        let job = r.job.expect("job");
        assert_eq!(job.steps_only, Some(Status::Created));
        assert_eq!(job.steps.len(), 1);
        assert_eq!(job.known.and_then(|k| k.remote_id).as_deref(), Some("r9"));
        // The step done too: unchanged.
        let done = Applied {
            steps: vec!["s1".into()],
            ..applied("f1", 3)
        };
        let mut r = with_step(planned(Action::Upsert, true), "s1");
        nightly.decide(&mut r, Some(&done));
        assert_eq!(r.settled.expect("settled").status, Status::Unchanged);
        // Changed content: the update goes out, the done step does not.
        let mut r = with_step(planned(Action::Upsert, true), "s1");
        nightly.decide(
            &mut r,
            Some(&Applied {
                fingerprint: "old".into(),
                ..done.clone()
            }),
        );
        let job = r.job.expect("job");
        assert!(job.steps.is_empty() && job.steps_only.is_none());
        // A resume: the step the killed run noted as done is not sent again, although the
        // run died before recording its row.
        let resume = Delta {
            resumes_after: Some(3),
            steps_in_flight: Arc::new(HashMap::from([(
                "ann@x".to_string(),
                vec!["s1".to_string()],
            )])),
            ..nightly.clone()
        };
        let mut r = with_step(planned(Action::Upsert, true), "s1");
        resume.decide(&mut r, Some(&applied("f1", 4)));
        assert!(r.job.is_none() || r.job.as_ref().is_some_and(|j| j.steps.is_empty()));
    }

    #[test]
    fn steps_done_survive_in_the_journal_and_the_in_flight_notes() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut j = Journal::open(dir.path(), "t http://x", "sha").expect("open");
        let log = j.create_log().expect("log");
        log.step_done("Ann@X", "s-noted");
        let mut o = outcome("ann@x", Status::Failed, F1);
        o.steps = Some(Box::new(crate::outcome::StepLog {
            base: Some(Status::Created),
            done: vec!["join: sales".into()],
            ids: vec!["s1".into()],
            failed: Some("step 'join' failed for 'x': 404".into()),
        }));
        j.record(&o).expect("record");
        j.commit().expect("commit");
        let a = j
            .reader()
            .expect("reader")
            .get("ann@x")
            .expect("get")
            .expect("applied");
        assert_eq!(a.status, Status::Created, "the create happened");
        assert_eq!(a.fingerprint, F1);
        assert_eq!(a.steps, ["s1"]);
        let noted = read_steps_in_flight(&dir.path().join(INFLIGHT_FILE), 0, i64::MAX);
        assert_eq!(noted["ann@x"], ["s-noted"]);
    }

    #[test]
    fn delta_settles_unchanged_and_interrupted_rows() {
        let nightly = Delta {
            skip_applied: true,
            resumes_after: None,
            run_id: 5,
            in_flight: Default::default(),
            steps_in_flight: Default::default(),
        };
        let mut r = planned(Action::Upsert, true);
        nightly.decide(&mut r, Some(&applied("f1", 3)));
        let s = r.settled.expect("settled");
        assert_eq!(s.status, Status::Unchanged);
        assert_eq!(s.message, "unchanged since 2026-01-01T00:00:00.000Z");
        assert_eq!(s.remote_id.as_deref(), Some("r9"));

        // Changed content is sent; no reconciliation outside a resume.
        let mut r = planned(Action::Create, true);
        nightly.decide(&mut r, Some(&applied("old", 3)));
        assert!(r.settled.is_none());
        assert!(!r.job.unwrap().reconcile);

        // A user applied before is known, with the remote id it was given.
        let mut r = planned(Action::Upsert, true);
        nightly.decide(&mut r, Some(&applied("old", 3)));
        let known = r.job.unwrap().known.expect("known");
        assert_eq!(known.remote_id.as_deref(), Some("r9"));
        let mut r = planned(Action::Upsert, true);
        nightly.decide(&mut r, None);
        assert!(r.job.unwrap().known.is_none());

        // --full: sent even if unchanged.
        let full = Delta {
            skip_applied: false,
            ..nightly.clone()
        };
        let mut r = planned(Action::Upsert, true);
        full.decide(&mut r, Some(&applied("f1", 3)));
        assert!(r.settled.is_none());

        // A resume of runs 4 (killed) after run 3 (finished).
        let resume = Delta {
            skip_applied: true,
            resumes_after: Some(3),
            run_id: 5,
            in_flight: Arc::new(HashMap::from([("ann@x".to_string(), "f1".to_string())])),
            steps_in_flight: Default::default(),
        };
        let mut r = planned(Action::Create, true);
        resume.decide(&mut r, Some(&applied("f1", 4)));
        let s = r.settled.expect("settled");
        assert_eq!(s.status, Status::Created);
        assert!(
            s.message.starts_with("done in the interrupted run at"),
            "{}",
            s.message
        );
        let mut r = planned(Action::Create, true);
        resume.decide(&mut r, Some(&applied("f1", 3)));
        assert_eq!(r.settled.unwrap().status, Status::Unchanged);

        // Unknown to the journal: a create or an upsert is looked up first (an upsert does
        // not create first on a resume); an update is not marked.
        for (action, lookup, want) in [
            (Action::Create, true, true),
            (Action::Upsert, false, true),
            (Action::Upsert, true, true),
            (Action::Update, true, false),
        ] {
            let mut r = planned(action, lookup);
            resume.decide(&mut r, None);
            assert_eq!(r.job.unwrap().reconcile, want, "{action:?} lookup={lookup}");
        }
        // The interrupted run was creating this upsert with this content: a lookup that
        // finds it confirms the create. Other content, or a recorded outcome, is not marked.
        let mut r = planned(Action::Upsert, true);
        resume.decide(&mut r, None);
        assert!(r.job.unwrap().created_in_flight);
        let mut r = planned(Action::Upsert, true);
        resume.decide(&mut r, Some(&applied("old", 4)));
        assert!(!r.job.unwrap().created_in_flight);
        let mut r = planned(Action::Upsert, true);
        nightly.decide(&mut r, None);
        assert!(!r.job.unwrap().created_in_flight);

        // Created by a finished run (content changed since): no lookup needed.
        let mut r = planned(Action::Create, true);
        resume.decide(&mut r, Some(&applied("old", 2)));
        assert!(!r.job.unwrap().reconcile);

        // Invalid rows are left alone.
        let mut r = planned(Action::Create, true);
        r.findings
            .push(crate::plan::Finding::error(None, "bad".to_string()));
        resume.decide(&mut r, Some(&applied("f1", 4)));
        assert!(r.settled.is_none());
    }

    #[test]
    fn a_chain_of_killed_runs_is_resumed_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "t", "sha").unwrap();
        j.finish(&RunSummary::default()).unwrap();
        let finished = j.run_id();
        drop(j);
        // Two runs die in a row (dropped without finish, as after kill -9).
        let j = Journal::open(dir.path(), "t", "sha").unwrap();
        drop(j);
        let j = Journal::open(dir.path(), "t", "sha").unwrap();
        drop(j);
        let j = Journal::open(dir.path(), "t", "sha").unwrap();
        assert!(j.is_resume());
        let d = j.delta(true);
        assert_eq!(d.resumes_after, Some(finished));
        assert_eq!(d.run_id, finished + 3);
    }

    #[test]
    fn a_run_that_could_not_start_is_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        // A login that failed: nothing sent.
        let mut j = Journal::open(dir.path(), "t", "sha").unwrap();
        j.abandon();
        drop(j);
        let j = Journal::open(dir.path(), "t", "sha").unwrap();
        assert!(
            !j.is_resume(),
            "no lookups before creates after a run that sent nothing"
        );
        drop(j); // dies: the next run is a resume
        let mut j = Journal::open(dir.path(), "t", "sha").unwrap();
        assert!(j.is_resume());
        // A resume that cannot start keeps the chain: the died run may have applied rows.
        j.abandon();
        drop(j);
        assert!(Journal::open(dir.path(), "t", "sha").unwrap().is_resume());
    }

    #[test]
    fn an_uncommitted_batch_is_lost_cleanly() {
        // A process killed mid-batch: its open transaction is rolled back on the next open.
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "t", "sha").unwrap();
        j.record(&outcome("a@x", Status::Created, F1)).unwrap();
        j.commit().unwrap();
        j.record(&outcome("b@x", Status::Created, F2)).unwrap();
        // Leak the connection mid-transaction, as a killed process would leave it.
        std::mem::forget(j);
        let db = open_conn(&dir.path().join("enlist.sqlite")).unwrap();
        let n: i64 = db
            .query_row("SELECT COUNT(*) FROM applied", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "only the committed batch is visible");
    }

    #[test]
    fn a_state_of_the_first_layout_keeps_its_history() {
        // The layout before targets had ids: the target's text in every row, hex text.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("enlist.sqlite");
        let old = Connection::open(&db).unwrap();
        old.execute_batch(&format!(
            "CREATE TABLE applied (target TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
               remote_id TEXT, status TEXT NOT NULL, run_id INTEGER NOT NULL, at TEXT NOT NULL,
               PRIMARY KEY (target, key)) WITHOUT ROWID;
             CREATE TABLE runs (id INTEGER PRIMARY KEY, target TEXT NOT NULL, input_sha TEXT NOT NULL,
               started_at TEXT NOT NULL, finished_at TEXT, pid INTEGER NOT NULL);
             INSERT INTO runs VALUES (1, 't', 'sha', '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 1);
             INSERT INTO applied VALUES ('t', 'ann@x', '{F1}', 'r7', 'created', 1, '2026-01-01T00:00:30Z');
             INSERT INTO applied VALUES ('other', 'ann@x', '{F2}', NULL, 'updated', 1, '2026-01-01T00:00:40Z');"
        ))
        .unwrap();
        drop(old);

        let j = Journal::open(dir.path(), "t", "sha").unwrap();
        assert!(!j.is_resume(), "the finished run is still finished");
        let a = j.reader().unwrap().get("ann@x").unwrap().expect("kept");
        assert_eq!(
            (a.fingerprint.as_str(), a.remote_id.as_deref()),
            (F1, Some("r7"))
        );
        assert_eq!((a.status, a.run_id), (Status::Created, 1));
        drop(j);
        let j = Journal::open(dir.path(), "other", "sha").unwrap();
        let a = j.reader().unwrap().get("ann@x").unwrap().expect("kept");
        assert_eq!((a.fingerprint.as_str(), a.status), (F2, Status::Updated));
        drop(j);

        // A layout from a newer enlist is refused, not misread.
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let e = Journal::open(dir.path(), "t", "sha")
            .err()
            .expect("refused");
        assert!(e.to_string().contains("newer enlist"), "{e}");
    }

    #[test]
    fn keys_and_fingerprints_read_as_before() {
        for key in ["ann@x", " Ann@X ", "ÄNN@Straße.de", "", "ǅ"] {
            assert_eq!(journal_key(key), key.trim().to_lowercase(), "{key:?}");
        }
        for bytes in [&b""[..], b"\x00\x0f\xf0\xff", &[0xab; 32]] {
            assert_eq!(crate::plan::hex_text(bytes), hex::encode(bytes));
        }
    }

    #[test]
    fn shards_split_keys_disjointly() {
        let shards: Vec<Shard> = (0..4)
            .map(|i| Shard::parse(&format!("{i}/4")).unwrap())
            .collect();
        for k in 0..1000 {
            let key = format!("user{k}@x");
            assert_eq!(shards.iter().filter(|s| s.owns(&key)).count(), 1);
        }
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("x").is_err());
    }
}
