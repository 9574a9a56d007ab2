//! Report: writes outcomes where people and machines can read them.

pub mod jsonl;
