//! Writing the outcome workbook: N outcomes (env `ENLIST_BENCH_ROWS`, default 100 000) fed in
//! scrambled order, as concurrent workers would, then `finish` (sort on disk, stream to xlsx).
//!
//! `cargo bench --bench report`; `ENLIST_BENCH_ROWS=1000000 cargo bench --bench report`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "report_support.rs"]
mod support;
use support::write;

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("ENLIST_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let mut g = c.benchmark_group("report");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(n));
    g.bench_function(format!("xlsx_{n}_rows_shuffled"), |b| {
        b.iter(|| write(dir.path(), n))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
