//! Cell → typed JSON value for one column, with every rule of the column checked.

use std::borrow::Cow;

use serde_json::Value;

use crate::cell::Cell;
use crate::plan::Finding;
use crate::profile::{Column, ColumnType};

/// Converts one cell for `col`. `Ok(None)` = empty, `Ok(Some(Null))` = the clear marker.
/// Warnings (a number in a text column) are pushed to `warnings`; the first error is returned
/// with every rule the value breaks.
///
/// A cell given owned (`Cow::Owned`) gives its text to the value instead of a copy.
pub fn convert(
    col: &Column,
    cell: Cow<'_, Cell>,
    clear_marker: &str,
    header: &str,
    warnings: &mut Vec<Finding>,
) -> Result<Option<Value>, Finding> {
    let err = |m: String| Finding::error(Some(header), m);
    // A text cell given owned hands its String over: it becomes the value as it is. (What
    // is left of the cell is an empty text: not numeric, so no rule below looks at it.)
    let (given, cell) = match cell {
        Cow::Owned(Cell::Text(t)) => (
            Some(t.into_string()),
            Cow::Owned(Cell::Text(Default::default())),
        ),
        c => (None, c),
    };
    // Text cells are borrowed otherwise: a String is made once, for the value, not per rule.
    let text: Cow<'_, str> = match &*cell {
        _ if given.as_deref() == Some(clear_marker) => return Ok(Some(Value::Null)),
        _ if given.is_some() => Cow::Owned(given.unwrap_or_default()),
        Cell::Empty => return Ok(None),
        Cell::Error(e) if e == crate::cell::UNCALCULATED => {
            return Err(err(
                "the cell holds a formula that was never calculated (a program wrote the file \
                 and no spreadsheet application saved it): open the file in Excel or \
                 LibreOffice and save it, or paste the values"
                    .to_string(),
            ))
        }
        Cell::Error(e) => {
            return Err(err(format!(
                "the cell holds the spreadsheet error {e}: fix the formula or paste the values"
            )))
        }
        Cell::Text(t) if t == clear_marker => return Ok(Some(Value::Null)),
        Cell::Text(t) => Cow::Borrowed(t.as_str()),
        c if c.is_inexact_integer() => {
            return Err(err(format!(
                "{c} is too large for Excel to keep every digit; format the column as text and type it again"
            )))
        }
        c => Cow::Owned(c.to_text()),
    };
    // An outcome workbook fed back shows secrets as the mask: never send the mask itself.
    if col.secret && text.trim() == crate::plan::MASK {
        return Err(err(format!(
            "the {header} column {}; supply the {header} again (type it in the cell, or give \
             --secrets-from FILE: a sheet with the key column and the secret columns)",
            crate::source::secrets::MASK_HELD
        )));
    }

    if cell.is_numeric() && col.text_only {
        warnings.push(Finding::warning(
            Some(header),
            format!(
                "{text} was stored as a number in the sheet; format the column as text so leading zeros and + are kept"
            ),
        ));
    }

    // `None` = the text itself as a JSON string, made at the end.
    let value = match col.kind {
        ColumnType::String => None,
        ColumnType::Integer => Some(match &*cell {
            Cell::Int(i) => Value::from(*i),
            _ => match parse_integer(&text) {
                Some(i) => Value::from(i),
                None => return Err(err(format!("{text:?} is not a whole number"))),
            },
        }),
        ColumnType::Number => Some(match &*cell {
            Cell::Int(i) => Value::from(*i),
            Cell::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            _ => match text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => Value::Number(n),
                None => return Err(err(format!("{text:?} is not a number"))),
            },
        }),
        ColumnType::Boolean => Some(match &*cell {
            Cell::Bool(b) => Value::Bool(*b),
            _ => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "on" | "x" | "enabled" | "active" => Value::Bool(true),
                "false" | "no" | "n" | "0" | "off" | "disabled" | "inactive" => Value::Bool(false),
                _ => {
                    return Err(err(format!(
                        "{text:?} is not true or false (use true/false or yes/no)"
                    )))
                }
            },
        }),
        ColumnType::List => Some(Value::Array(
            text.split(col.separator())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        ColumnType::Json => match serde_json::from_str::<Value>(&text) {
            Ok(v) => Some(v),
            Err(e) => return Err(err(format!("is not valid JSON ({e})"))),
        },
    };

    // Rules apply to the text a person typed.
    let mut broken = Vec::new();
    // Characters are counted only when the byte length cannot settle a rule (a text has
    // at least as many bytes as characters).
    let chars = || text.chars().count();
    if let Some(min) = col.min_length {
        let len = chars();
        if len < min {
            broken.push(format!(
                "is {len} characters long; it must be at least {min}"
            ));
        }
    }
    if let Some(max) = col.max_length {
        if text.len() > max && chars() > max {
            broken.push(format!(
                "is {} characters long; it must be at most {max}",
                chars()
            ));
        }
    }
    // Formatted only when a rule is broken (most cells break none).
    let shown = || {
        if col.secret {
            "the value".to_string()
        } else {
            format!("{text:?}")
        }
    };
    if let Some(why) = col
        .email
        .and_then(|rule| super::text::email_problem(&text, rule))
    {
        // Secrets never appear in a message, not even a character of them.
        if col.secret {
            broken.push(format!("{} is not an email address", shown()));
        } else {
            broken.push(format!("{} is not an email address: {why}", shown()));
        }
    }
    if let Some(pattern) = &col.pattern {
        if !pattern.regex.is_match(&text) {
            let hint = col
                .pattern_hint
                .clone()
                .unwrap_or_else(|| format!("match {}", pattern.text));
            broken.push(format!("{} is not {hint}", shown()));
        }
    }
    let mut value = value;
    if !col.one_of.is_empty() {
        match col.one_of.iter().find(|o| o.eq_ignore_ascii_case(&text)) {
            Some(canonical) => value = Some(Value::String(canonical.clone())),
            None => broken.push(format!(
                "{} is not one of: {}",
                shown(),
                col.one_of.join(", ")
            )),
        }
    }
    if broken.is_empty() {
        Ok(Some(
            value.unwrap_or_else(|| Value::String(text.into_owned())),
        ))
    } else {
        // Secrets never appear in a message: only rules are named.
        Err(err(broken.join("; ")))
    }
}

/// Parses a whole number, accepting Excel's `1234.0` and thousands separators never.
fn parse_integer(t: &str) -> Option<i64> {
    if let Ok(i) = t.parse::<i64>() {
        return Some(i);
    }
    let f: f64 = t.parse().ok()?;
    (f.fract() == 0.0 && f.abs() < crate::cell::MAX_EXACT_INT).then_some(f as i64)
}
