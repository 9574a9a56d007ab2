//! A per-test working directory that runs the real `enlist` binary (after xsv's `Workdir`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the target dir, removed and recreated for each test.
pub struct Workdir {
    root: PathBuf,
    dir: PathBuf,
}

impl Workdir {
    pub fn new(name: &str) -> Workdir {
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        let exe = std::env::current_exe().expect("test exe path");
        // target/debug/deps/tests-xxxx -> target/debug
        let root = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("target dir")
            .to_path_buf();
        let dir = root
            .join("workdirs")
            .join(format!("{name}-{}-{id}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("clean workdir");
        }
        std::fs::create_dir_all(&dir).expect("create workdir");
        Workdir { root, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a file (text or bytes) into the working directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&p, contents).expect("write file");
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).expect("read file")
    }

    /// The real binary, run inside this directory with a clean environment for enlist's own variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_enlist"));
        cmd.current_dir(&self.dir).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("ENLIST_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NO_COLOR", "1");
        cmd
    }

    /// The real binary on a pseudo-terminal (util-linux `script`) of 120 columns: stdin,
    /// stdout and stderr are the terminal, and what it shows comes back as `stdout` (stderr
    /// included).
    pub fn command_on_terminal(&self, args: &[&str]) -> Command {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let line: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_enlist"))
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        // The same environment as `command` (enlist's own variables removed, NO_COLOR set).
        let cmd = self.command(&[]);
        let mut script = Command::new("script");
        script
            .current_dir(&self.dir)
            .arg("-qec")
            .arg(format!("stty cols 120 rows 40; exec {}", line.join(" ")))
            .arg("/dev/null");
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => script.env(k, v),
                None => script.env_remove(k),
            };
        }
        script
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run enlist");
        Run { output }
    }
}

/// What one run of the binary printed and returned.
pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// Panics with both streams when the exit code is not `code`.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Requests the sandbox counted whose "METHOD /path STATUS" starts with `prefix`.
pub fn counted(stats: &serde_json::Value, prefix: &str) -> u64 {
    stats["by_path_status"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// Every stored user's userName, asserting none is there twice.
pub fn user_names_once(sb: &enlist::sandbox::RunningSandbox) -> std::collections::HashSet<String> {
    let users = sb.users();
    let names: std::collections::HashSet<String> = users
        .iter()
        .map(|u| u["userName"].as_str().unwrap_or("").to_lowercase())
        .collect();
    assert_eq!(names.len(), users.len(), "a user was created twice");
    names
}

/// Runs the binary off the async runtime (the servers live on it and must keep serving).
pub async fn run_bin(wd: &Workdir, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = wd.command(args);
    cmd.args(["--progress", "never"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run enlist"))
        .await
        .expect("join");
    Run { output }
}

/// The outcome lines of a JSON lines report, by key.
pub fn outcomes(path: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("read report");
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("report line is JSON"))
        .filter(|v| v.get("summary").is_none())
        .map(|v| (v["key"].as_str().unwrap_or("").to_string(), v))
        .collect()
}

/// The status of `key` in [`outcomes`], or "(no outcome)".
pub fn status(outs: &std::collections::BTreeMap<String, serde_json::Value>, key: &str) -> String {
    outs.get(key)
        .and_then(|o| o["status"].as_str())
        .unwrap_or("(no outcome)")
        .to_string()
}
