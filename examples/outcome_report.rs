//! Writes an outcome workbook of N rows fed in scrambled order, to measure time and peak
//! memory of the reporter alone:
//!
//! `/usr/bin/time -v cargo run --example outcome_report -- 1000000 /some/dir`
#[path = "../benches/report_support.rs"]
mod bench;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let t = std::time::Instant::now();
    bench::write(&dir, n);
    println!("{n} rows in {:.1} s", t.elapsed().as_secs_f64());
}
