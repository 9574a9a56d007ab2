//! One error type for the whole crate, and the exit codes it maps to.
//!
//! Row-level problems (an invalid email on row 14) are *not* errors: they are findings
//! carried in the plan and the outcomes. An [`Error`] means the command as a whole could
//! not do its job: a usage mistake, a file that cannot be read, a profile that does not
//! hold together, a target that refuses the credentials.

use std::path::PathBuf;

/// Exit codes, documented in the README. Stable: schedulers branch on them.
pub mod exit {
    /// Every row ended well (created, updated, exists, unchanged, skipped), or `check` found no problem.
    pub const OK: u8 = 0;
    /// At least one row failed or was invalid; the outcome report says which.
    pub const ROWS_FAILED: u8 = 1;
    /// The command line is wrong (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// The input file or the profile was refused before any row was processed.
    pub const REFUSED: u8 = 3;
    /// The run could not start or had to stop: bad credentials, target unreachable, login failed.
    pub const CANNOT_START: u8 = 4;
    /// Another run holds the lock on the same state directory.
    pub const LOCKED: u8 = 5;
    /// The run was interrupted (Ctrl-C / SIGTERM); unsent rows are `not-attempted`.
    pub const INTERRUPTED: u8 = 6;
    /// An outcome could not be recorded (the journal or a report could not be written):
    /// the run stopped sending at once; the summary says what was done.
    pub const UNRECORDED: u8 = 7;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line does not make sense.
    #[error("{0}")]
    Usage(String),
    /// The input file cannot be used at all.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    /// The profile is invalid.
    #[error("profile {name}: {message}")]
    Profile { name: String, message: String },
    /// The run cannot start or cannot go on (authentication, connectivity).
    #[error("{0}")]
    CannotStart(String),
    /// A login failed (the run cannot start, or cannot go on): why, by its answer's class.
    #[error("{0}")]
    Login(Box<crate::execute::auth::LoginError>),
    /// Another process holds the state lock.
    #[error("{0}")]
    Locked(String),
    /// The run was interrupted.
    #[error("{0}")]
    Interrupted(String),
    /// The journal or a report could not be written: the run stopped (or, when writing
    /// the report at the end failed, finished) with outcomes that are not all recorded.
    /// Carries the run's summary, which is still printed.
    #[error("{message}")]
    Unrecorded {
        message: String,
        summary: Box<crate::outcome::RunSummary>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn profile(name: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Profile {
            name: name.into(),
            message: message.into(),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Input { .. } | Error::Profile { .. } => exit::REFUSED,
            Error::CannotStart(_) | Error::Login(_) => exit::CANNOT_START,
            Error::Locked(_) => exit::LOCKED,
            Error::Interrupted(_) => exit::INTERRUPTED,
            Error::Unrecorded { .. } => exit::UNRECORDED,
            Error::Io(_) | Error::Other(_) => exit::REFUSED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
