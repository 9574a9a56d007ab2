//! The console: everything a run writes on stderr goes through here (log lines, the progress
//! bar, progress lines, the summary for people, problems, a fatal error), so that three rules
//! hold for all of it:
//!
//! - a line never tears the bar: it is written while the bar is suspended;
//! - colour only on a terminal, and never with `NO_COLOR` set (https://no-color.org);
//! - with `--log-format json` every stderr line is one JSON object. Lines for people are then
//!   logged as events of the target [`TARGET`] (always enabled, whatever `RUST_LOG` says), so
//!   they have exactly the shape of the log lines a collector already parses.
//!
//! The bar is indicatif's own, not a tracing span: a span exists only when the log filter
//! lets it through, and the default filter (`warn`) did not, so no bar was ever drawn.

use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar};

/// The tracing target of the lines for people, in JSON mode.
pub const TARGET: &str = "enlist::console";

struct Console {
    json: bool,
    /// Draws on stderr when it is a terminal (indicatif hides it otherwise).
    bars: MultiProgress,
}

static CONSOLE: OnceLock<Console> = OnceLock::new();

/// Whether log lines may be coloured: stderr is a terminal and `NO_COLOR` is unset or empty.
pub fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Sets up logging (filtered by `RUST_LOG`, default `warn`) and the console for this
/// process. The first call wins (in-process use may already have a subscriber).
pub fn init(json: bool) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let console = CONSOLE.get_or_init(|| Console {
        json,
        bars: MultiProgress::new(),
    });
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    if let Ok(always) = format!("{TARGET}=info").parse() {
        filter = filter.add_directive(always);
    }
    use tracing_indicatif::writer::{IndicatifWriter, Stderr};
    let writer = IndicatifWriter::<Stderr>::new(console.bars.clone());
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter);
    // An error means a subscriber is already set: keep that one.
    let _ = if console.json {
        registry.with(layer.json()).try_init()
    } else {
        registry.with(layer.with_ansi(colour())).try_init()
    };
}

/// One line for people on stderr: as it is in text, the message of a JSON log line in JSON.
pub fn line(text: &str) {
    match CONSOLE.get() {
        Some(c) if c.json => tracing::info!(target: TARGET, "{text}"),
        Some(c) => c.bars.suspend(|| eprintln!("{text}")),
        None => eprintln!("{text}"),
    }
}

/// Several lines for people; in JSON, blank lines (spacing for the eye) are left out.
pub fn lines(text: &str) {
    for l in text.lines() {
        if !(l.is_empty() && json()) {
            line(l);
        }
    }
}

/// An error that ends the command: `enlist: <message>`, or an ERROR line in JSON.
pub fn error(message: &str) {
    match CONSOLE.get() {
        Some(c) if c.json => tracing::error!(target: TARGET, "{message}"),
        Some(c) => c.bars.suspend(|| eprintln!("enlist: {message}")),
        None => eprintln!("enlist: {message}"),
    }
}

fn json() -> bool {
    CONSOLE.get().is_some_and(|c| c.json)
}

/// Draws bars on stderr even when it is not a terminal (`--progress always`).
pub fn draw_always() {
    if let Some(c) = CONSOLE.get() {
        // `::console` is the crate (indicatif's terminal), not this module.
        let stderr = Box::new(::console::Term::stderr());
        c.bars
            .set_draw_target(indicatif::ProgressDrawTarget::term_like_with_hz(stderr, 20));
    }
}

/// A progress bar of `len` steps (unknown: a spinner), drawn with the console's other lines.
pub fn bar(len: Option<u64>) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    match CONSOLE.get() {
        Some(c) => c.bars.add(pb),
        None => pb,
    }
}

/// Rows of a run whose problems (an invalid row's errors, a sent row's warnings) are
/// printed; the rest are counted, and the outcome report or `enlist check` has them all.
pub const SHOWN_ROWS: u64 = 20;

/// The problems of the first rows that have any are shown, one `row 14, column extension:
/// ...` line each; later rows are only counted (a sheet of millions of bad rows must not
/// print gigabytes). `check` shows them as it reads; `run` those of its invalid rows, and
/// the warnings of the rows it sends.
pub struct Problems {
    max: u64,
    shown: u64,
    /// Rows with problems that were not shown.
    pub more: u64,
}

impl Problems {
    pub fn new(max: u64) -> Problems {
        Problems {
            max,
            shown: 0,
            more: 0,
        }
    }

    /// Whether to show the problems of a row with these findings (false: it is counted).
    pub fn show(&mut self, findings: &[crate::plan::Finding]) -> bool {
        if findings.is_empty() {
            return true;
        }
        if self.shown >= self.max {
            self.more += 1;
            return false;
        }
        self.shown += 1;
        true
    }

    /// One finding as a line for people.
    pub fn line(row: u64, f: &crate::plan::Finding) -> String {
        let prefix = if f.severity == crate::plan::Severity::Warning {
            "warning: "
        } else {
            ""
        };
        format!("{prefix}{}", f.describe(row))
    }

    /// `and N more rows with problems; <hint>`, when some were not shown.
    pub fn tail(&self, hint: &str) -> Option<String> {
        (self.more > 0).then(|| format!("and {} more rows with problems; {hint}", self.more))
    }
}
