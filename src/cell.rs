//! The typed value of one spreadsheet cell, normalised once by the reader.
//!
//! Every later stage (validation, rendering, reporting) works on [`Cell`]s and never
//! re-interprets raw strings or calamine types, so an Excel artefact such as `1234.0`
//! or a lost leading `+` is dealt with in exactly one place.

use std::fmt;

use compact_str::CompactString;

/// Largest integer an IEEE double holds exactly (2^53). Excel stores every number
/// as a double, so an integral number beyond this has already lost digits.
pub const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// One cell as the reader normalised it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Cell {
    /// Nothing in the cell (or only whitespace).
    Empty,
    /// Text, trimmed. Leading `+` and `0` are kept as typed. Text of up to 24 bytes (most
    /// cells) is held inline: the reader makes no allocation for it, so a row handed to
    /// another thread to be planned leaves no memory behind to be freed across threads
    /// (with `String`s the planning threads wait on the reader's allocator arena lock to
    /// free its cells; the figures are in the README).
    Text(CompactString),
    /// A numeric cell holding an integral value that fits exactly (`1234`, never `1234.0`).
    Int(i64),
    /// A numeric cell with a fraction, or an integral value too large to be exact
    /// (see [`Cell::is_inexact_integer`]). Serialized as its bits: exact for every value,
    /// NaN and infinities too (a workbook can hold `<v>NaN</v>` or `<v>1e999</v>`), which
    /// a JSON number cannot carry.
    Float(#[serde(with = "f64_bits")] f64),
    /// A boolean cell.
    Bool(bool),
    /// A real date or date-time cell, as ISO 8601 (`2024-03-01` or `2024-03-01T09:30:00`).
    Date(String),
    /// A formula error cell such as `#N/A` or `#REF!`, or [`UNCALCULATED`].
    Error(String),
}

/// What a cell holds whose formula nothing ever calculated (a workbook written by a
/// program, never opened and saved by a spreadsheet application): there is no value.
pub const UNCALCULATED: &str = "#UNCALCULATED";

/// An `f64` as the `u64` of its bits (see [`Cell::Float`]).
mod f64_bits {
    pub fn serialize<S: serde::Serializer>(f: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(f.to_bits())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(f64::from_bits)
    }
}

impl Cell {
    /// Builds a text cell, trimming it; an all-blank string becomes [`Cell::Empty`].
    pub fn text(s: &str) -> Cell {
        let t = s.trim();
        if t.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(CompactString::from(t))
        }
    }

    /// Builds a cell from a numeric spreadsheet value: integral values become [`Cell::Int`].
    pub fn number(f: f64) -> Cell {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < MAX_EXACT_INT {
            Cell::Int(f as i64)
        } else {
            Cell::Float(f)
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Cell::Empty)
    }

    /// True for a numeric cell (the sheet stored a number, not text).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Float(_))
    }

    /// An integral number too large for a double to hold every digit (a 16-digit phone
    /// number typed into a number-formatted cell): the digits shown are not the digits typed.
    pub fn is_inexact_integer(&self) -> bool {
        matches!(self, Cell::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() >= MAX_EXACT_INT)
    }
}

impl Cell {
    /// The text a person would see, as an owned string: [`Display`](fmt::Display) without
    /// the formatting machinery for text (read for every cell of every row).
    pub fn to_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.to_string(),
            Cell::Date(s) | Cell::Error(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Cell {
    /// The text a person would see in the cell (numbers without a spurious `.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Empty => Ok(()),
            Cell::Text(s) => f.write_str(s),
            Cell::Date(s) | Cell::Error(s) => f.write_str(s),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Float(x) => {
                if x.fract() == 0.0 && x.abs() < 1e21 {
                    write!(f, "{x:.0}")
                } else {
                    write!(f, "{x}")
                }
            }
            Cell::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers_lose_their_fraction() {
        assert_eq!(Cell::number(1234.0), Cell::Int(1234));
        assert_eq!(Cell::number(1234.0).to_string(), "1234");
        assert_eq!(Cell::number(12.5), Cell::Float(12.5));
        assert!(Cell::number(1e17).is_inexact_integer());
        assert_eq!(Cell::text("  +4420  "), Cell::Text("+4420".into()));
        assert_eq!(Cell::text("   "), Cell::Empty);
    }
}
