//! Outcomes for the report benchmark and the memory example: shared so both measure the same.

use enlist::outcome::{Outcome, OutcomeSink, RunSummary, Status};
use enlist::profile::Action;
use enlist::report::xlsx::XlsxSink;

pub fn outcome(i: u64) -> Outcome {
    let status = Status::ALL[(i % 8) as usize];
    Outcome {
        seq: i,
        row: i + 2,
        key: format!("user{i}@example.com"),
        status,
        action: Action::Upsert,
        http_status: Some(201),
        attempts: 1,
        requests: 1,
        duration_ms: 42,
        message: if status == Status::Failed {
            format!("server said: quota exceeded ({})", i % 50)
        } else {
            String::new()
        },
        remote_id: Some(format!("{}", 10_000_000_000u64 + i)),
        finished_at: "2026-11-23T12:00:00.000Z".into(),
        cells: vec![
            format!("user{i}@example.com"),
            "********".into(),
            "Jane".into(),
            "Doe".into(),
            format!("+4479{i:08}"),
            format!("0{i:06}"),
        ],
        fingerprint: None,
        steps: None,
        problem_columns: Vec::new(),
    }
}

/// Writes `n` outcomes in a scrambled order (a stride coprime with n) into a workbook.
pub fn write(dir: &std::path::Path, n: u64) {
    let headers = [
        "Email",
        "Password",
        "First name",
        "Last name",
        "Phone",
        "Employee ID",
    ];
    let path = dir.join("bench.outcome.xlsx");
    let _ = std::fs::remove_file(&path);
    let mut sink = XlsxSink::create(
        &path,
        headers.iter().map(|s| s.to_string()).collect(),
        vec![false, true, false, false, false, false],
    )
    .expect("sink");
    let stride = (2..n).rev().find(|s| gcd(*s, n) == 1).unwrap_or(1);
    for k in 0..n {
        sink.record(&outcome((k * stride) % n)).expect("record");
    }
    sink.finish(&RunSummary::default()).expect("finish");
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
