//! Read + validate + render throughput: the whole `check` pipeline without the network.
//!
//! `cargo bench --bench check` (sizes from ENLIST_BENCH_CSV_ROWS / ENLIST_BENCH_XLSX_ROWS;
//! defaults 1,000,000 CSV rows and 100,000 xlsx rows, as in the README's targets).

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use enlist::input::{Input, InputSpec};
use enlist::plan::PlanOptions;
use enlist::profile::Profile;
use enlist::source::SourceOptions;

fn rows_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generate(path: &Path, rows: u64) {
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "--release",
            "--quiet",
            "--example",
            "gen_sheet",
            "--",
        ])
        .arg(path)
        .arg(rows.to_string())
        .status()
        .expect("run gen_sheet");
    assert!(status.success(), "gen_sheet failed");
}

/// Plans every row of the file as `enlist check` does (every request rendered, then
/// dropped on the planning thread that rendered it); returns the number of valid jobs.
fn check(path: &Path, profile: &Arc<Profile>) -> u64 {
    let input = Input::open(InputSpec {
        path: path.to_path_buf(),
        source: SourceOptions::default(),
        // As `enlist check` plans without a report: no fingerprints, no display cells.
        plan: PlanOptions {
            without_cells: true,
            ..PlanOptions::default()
        },
        profile: profile.clone(),
    })
    .expect("open");
    input
        .planned_map(|_| true, |mut row| row.job.take().is_some())
        .expect("rows")
        .filter(|valid| *valid)
        .count() as u64
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = Arc::new(Profile::load("odin").expect("profile"));
    let mut g = c.benchmark_group("check");
    g.sample_size(10);

    let csv_rows = rows_from_env("ENLIST_BENCH_CSV_ROWS", 1_000_000);
    let csv = dir.path().join("users.csv");
    generate(&csv, csv_rows);
    g.throughput(Throughput::Elements(csv_rows));
    g.bench_function(format!("csv_{csv_rows}_rows"), |b| {
        b.iter(|| assert_eq!(check(&csv, &profile), csv_rows))
    });

    let xlsx_rows = rows_from_env("ENLIST_BENCH_XLSX_ROWS", 100_000);
    let xlsx = dir.path().join("users.xlsx");
    generate(&xlsx, xlsx_rows);
    g.throughput(Throughput::Elements(xlsx_rows));
    g.bench_function(format!("xlsx_{xlsx_rows}_rows"), |b| {
        b.iter(|| assert_eq!(check(&xlsx, &profile), xlsx_rows))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
