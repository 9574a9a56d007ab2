//! Writes a large, valid onboarding sheet for the `odin` profile, for benchmarks.
//!
//! `cargo run --release --example gen_sheet -- users.csv 1000000`
//! `cargo run --release --example gen_sheet -- users.xlsx 100000`

use std::io::{BufWriter, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: gen_sheet FILE.csv|FILE.xlsx ROWS")?;
    let rows: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    if path.ends_with(".xlsx") {
        write_xlsx(path, rows)
    } else {
        write_csv(path, rows)
    }
}

const HEADER: [&str; 12] = [
    "Service Provider",
    "Group",
    "User ID",
    "First Name",
    "Last Name",
    "Extension",
    "Web Password",
    "Email",
    "Department",
    "City",
    "Postal Code",
    "Time Zone",
];

fn row(i: u64) -> [String; 12] {
    [
        "acme-sp".into(),
        format!("acme-g{}", i % 50),
        format!("user{i}@acme.example"),
        format!("First{i}"),
        format!("Last{i}"),
        format!("{}", 100_000 + i),
        format!("Welcome-{i}"),
        format!("user{i}@mail.acme.example"),
        "Sales".into(),
        "London".into(),
        format!("{:05}", i % 99_999),
        "Europe/London".into(),
    ]
}

fn write_csv(path: &str, rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "{}", HEADER.join(","))?;
    for i in 0..rows {
        writeln!(w, "{}", row(i).join(","))?;
    }
    w.flush()?;
    Ok(())
}

fn write_xlsx(path: &str, rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet_with_constant_memory()?;
    for (c, h) in HEADER.iter().enumerate() {
        ws.write_string(0, c as u16, *h)?;
    }
    for i in 0..rows {
        for (c, v) in row(i).iter().enumerate() {
            ws.write_string((i + 1) as u32, c as u16, v)?;
        }
    }
    wb.save(path)?;
    Ok(())
}
