//! Input templates: a workbook made for one profile, so the sheet people fill in is right
//! before anyone types into it.
//!
//! Most onboarding errors are born in the spreadsheet: Excel turns `0123` into `123` and
//! `+44…` into `4.4E+11`, people invent their own headers, and nobody knows which columns
//! matter. [`write_template`] answers all of that in the file itself:
//!
//! - **Users** (the first sheet, so `check` picks it): the profile's columns as the header,
//!   each by its `label` ("First name"), the key column first, required columns bold with a
//!   trailing ` *` (the header matcher accepts labels and ignores `*` and spaces), a note on
//!   every header with the API field, description, rules and example, text format on
//!   id-like columns, dropdowns for one-of and boolean columns and for `action`, and a
//!   frozen header row. The optional `action` column comes **last**, so the column a
//!   person fills first is the one that identifies the user.
//! - **Instructions**: every column explained, create versus update, empty cells and
//!   `<clear>`, and the commands to run with the environment variables the profile reads.
//! - **Example**: one filled row, on its own sheet so it can never be provisioned by mistake.
//! - **Lists** (hidden): dropdown values too long for an inline list (Excel caps those at
//!   255 characters).
//!
//! The CSV flavour ([`write_csv_template`]) can carry none of that: it is the header line
//! alone (an example row would be provisioned if left in), with a BOM so Excel opens it as
//! UTF-8.

use std::path::Path;

use rust_xlsxwriter::{
    Color, DataValidation, Format, FormatAlign, Formula, Note, Workbook, Worksheet, XlsxError,
};

use crate::error::{Error, Result};
use crate::profile::{Auth, Column, ColumnType, Profile};
use crate::report::xlsx::wrapped_height;

/// Rows below the header that get dropdowns. Text formats are set on whole columns, so they
/// hold for any number of rows; validations need a range, and 1000 users covers a sheet
/// somebody fills by hand (a longer sheet keeps working, only without dropdowns).
pub const TEMPLATE_ROWS: u32 = 1000;

/// Header text of the optional action column.
pub const ACTION_HEADER: &str = "action";

/// The values the `action` column accepts (what `Action::parse` reads).
pub const ACTIONS: &[&str] = &["create", "update", "upsert", "skip"];

/// Sheet names, in workbook order. Users must stay first: the reader takes the first sheet
/// whose header row matches the profile.
pub const USERS_SHEET: &str = "Users";
pub const INSTRUCTIONS_SHEET: &str = "Instructions";
pub const EXAMPLE_SHEET: &str = "Example";
pub const LISTS_SHEET: &str = "Lists";

/// Inline list validations longer than this (joined with commas) are refused by Excel.
const INLINE_LIST_MAX: usize = 255;

/// Does the template mark this column as one to fill in (bold, ` *`)?
///
/// The key column always is; `required_on_create` columns (an initial password) are too,
/// because a template is mostly filled for onboarding. The note says when it is needed.
pub fn is_marked_required(profile: &Profile, index: usize) -> bool {
    let c = &profile.columns[index];
    c.required || c.required_on_create || index == profile.key_index()
}

/// Profile column indexes in template order: the key column first, then the profile's order.
pub fn column_order(profile: &Profile) -> Vec<usize> {
    let key = profile.key_index();
    std::iter::once(key)
        .chain((0..profile.columns.len()).filter(|i| *i != key))
        .collect()
}

/// The header texts of the Users sheet, in order, ending with `action`: each column's
/// label (the reader accepts it as a header), ` *` on the ones to fill in.
pub fn headers(profile: &Profile) -> Vec<String> {
    column_order(profile)
        .into_iter()
        .map(|i| {
            let label = &profile.columns[i].label;
            if is_marked_required(profile, i) {
                format!("{label} *")
            } else {
                label.clone()
            }
        })
        .chain(std::iter::once(ACTION_HEADER.to_string()))
        .collect()
}

/// The example row, one cell per [`headers`] entry (the action cell left empty, so the
/// profile's default applies).
pub fn example_row(profile: &Profile) -> Vec<String> {
    column_order(profile)
        .into_iter()
        .map(|i| profile.columns[i].example.clone().unwrap_or_default())
        .chain(std::iter::once(String::new()))
        .collect()
}

/// Environment variables the profile reads: the base URL first, then the credentials.
pub fn env_vars(profile: &Profile) -> Vec<(String, &'static str)> {
    let mut v = vec![(profile.base_url_env.clone(), "base URL")];
    match &profile.auth {
        Auth::None => {}
        Auth::Basic {
            username_env,
            password_env,
        } => {
            v.push((username_env.clone(), "user name"));
            v.push((password_env.clone(), "password"));
        }
        Auth::Bearer { token_env } => v.push((token_env.clone(), "bearer token")),
        Auth::ApiKey { key_env, .. } => v.push((key_env.clone(), "API key")),
        Auth::TokenLogin(t) => {
            v.push((t.username_env.clone(), "login user name"));
            v.push((t.password_env.clone(), "login password"));
        }
    }
    v
}

/// The note on a header cell: the API field it fills, what it is, its rules and an example.
fn header_note(profile: &Profile, index: usize) -> String {
    let c = &profile.columns[index];
    let mut t = format!("API field: {}\n", c.name);
    if !c.description.is_empty() {
        t.push_str(&c.description);
        t.push('\n');
    }
    t.push_str(&format!("Rules: {}", c.rules()));
    if index == profile.key_index() {
        t.push_str("; identifies the user (one row per user)");
    }
    if let Some(e) = &c.example {
        t.push_str(&format!("\nExample: {e}"));
    }
    if !c.aliases.is_empty() {
        t.push_str(&format!(
            "\nAlso accepted as header: {}",
            c.aliases.join(", ")
        ));
    }
    t
}

/// Id-like columns: text in Excel, so leading zeros and `+` survive typing and pasting.
fn is_text_column(profile: &Profile, index: usize) -> bool {
    let c = &profile.columns[index];
    c.text_only || (index == profile.key_index() && c.kind == ColumnType::String)
}

fn xlsx_err(path: &Path) -> impl Fn(XlsxError) -> Error + '_ {
    move |e| Error::input(path, format!("cannot write the workbook: {e}"))
}

/// Writes the input workbook for `profile` to `path` with an empty Users sheet.
pub fn write_template(profile: &Profile, path: &Path) -> Result<()> {
    write_template_rows(profile, path, &[])
}

/// Writes the input workbook with `rows` (cells in [`headers`] order, written as text)
/// already on the Users sheet. Used to build filled-in workbooks that carry every bit of the
/// template's formatting, for tests and demos.
pub fn write_template_rows(profile: &Profile, path: &Path, rows: &[Vec<String>]) -> Result<()> {
    let e = xlsx_err(path);
    let mut wb = Workbook::new();
    let order = column_order(profile);
    let heads = headers(profile);
    let action_col = order.len() as u16;

    let text = Format::new().set_num_format("@");
    let head = Format::new()
        .set_background_color(Color::RGB(0xDDEBF7))
        .set_align(FormatAlign::Top);
    let head_required = head.clone().set_bold();
    let bold = Format::new().set_bold();
    let wrap = Format::new().set_text_wrap().set_align(FormatAlign::Top);

    // Lists too long for an inline validation, one column each on the hidden Lists sheet.
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();

    {
        let users = wb.add_worksheet();
        users.set_name(USERS_SHEET).map_err(&e)?;
        for (si, &ci) in order.iter().enumerate() {
            let si = si as u16;
            let col = &profile.columns[ci];
            let f = if is_marked_required(profile, ci) {
                &head_required
            } else {
                &head
            };
            users
                .write_string_with_format(0, si, &heads[si as usize], f)
                .map_err(&e)?;
            let note = Note::new(header_note(profile, ci))
                .add_author_prefix(false)
                .set_width(320)
                .set_height(160);
            users.insert_note(0, si, &note).map_err(&e)?;
            users.set_column_width(si, column_width(col)).map_err(&e)?;
            if is_text_column(profile, ci) {
                users.set_column_format(si, &text).map_err(&e)?;
            }
            if let Some(values) = dropdown_values(col) {
                let dv = list_validation(&col.label, &values, &mut lists).map_err(&e)?;
                users
                    .add_data_validation(1, si, TEMPLATE_ROWS, si, &dv)
                    .map_err(&e)?;
            }
        }
        users
            .write_string_with_format(0, action_col, ACTION_HEADER, &head)
            .map_err(&e)?;
        let note = Note::new(format!(
            "{ACTION_HEADER} (optional)\nWhat to do with the row: {}. Empty: {} (or --mode).",
            ACTIONS.join(", "),
            profile.default_action().as_str()
        ))
        .add_author_prefix(false)
        .set_width(320)
        .set_height(80);
        users.insert_note(0, action_col, &note).map_err(&e)?;
        users.set_column_width(action_col, 12).map_err(&e)?;
        let actions: Vec<String> = ACTIONS.iter().map(|s| s.to_string()).collect();
        let dv = list_validation(ACTION_HEADER, &actions, &mut lists).map_err(&e)?;
        users
            .add_data_validation(1, action_col, TEMPLATE_ROWS, action_col, &dv)
            .map_err(&e)?;
        users.set_freeze_panes(1, 0).map_err(&e)?;
        print_across(users, true).map_err(&e)?;
        for (r, row) in rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, v) in row.iter().enumerate() {
                if !v.is_empty() {
                    users
                        .write_string_with_format(r, c as u16, v, &text)
                        .map_err(&e)?;
                }
            }
        }
    }

    {
        let ins = wb.add_worksheet();
        ins.set_name(INSTRUCTIONS_SHEET).map_err(&e)?;
        print_across(ins, false).map_err(&e)?;
        write_instructions(ins, profile, &bold, &wrap).map_err(&e)?;
    }

    {
        let ex = wb.add_worksheet();
        ex.set_name(EXAMPLE_SHEET).map_err(&e)?;
        print_across(ex, true).map_err(&e)?;
        for (si, h) in heads.iter().enumerate() {
            ex.write_string_with_format(0, si as u16, h, &bold)
                .map_err(&e)?;
        }
        for (si, v) in example_row(profile).iter().enumerate() {
            if !v.is_empty() {
                ex.write_string_with_format(1, si as u16, v, &text)
                    .map_err(&e)?;
            }
        }
        for (si, &ci) in order.iter().enumerate() {
            ex.set_column_width(si as u16, column_width(&profile.columns[ci]))
                .map_err(&e)?;
        }
    }

    {
        let ls = wb.add_worksheet();
        ls.set_name(LISTS_SHEET).map_err(&e)?;
        for (c, (name, values)) in lists.iter().enumerate() {
            ls.write_string_with_format(0, c as u16, name, &bold)
                .map_err(&e)?;
            for (r, v) in values.iter().enumerate() {
                ls.write_string(r as u32 + 1, c as u16, v).map_err(&e)?;
            }
        }
        ls.set_hidden(true);
    }

    wb.save(path).map_err(&e)?;
    Ok(())
}

/// Printed, the sheet reads across one landscape page width, with its `header` row on every
/// page.
fn print_across(ws: &mut Worksheet, header: bool) -> std::result::Result<(), XlsxError> {
    ws.set_landscape().set_print_fit_to_pages(1, 0);
    if header {
        ws.set_repeat_rows(0, 0)?;
    }
    Ok(())
}

/// A dropdown for `values`: inline when it fits in Excel's 255 characters, else a range on
/// the hidden Lists sheet (recorded in `lists`).
fn list_validation(
    name: &str,
    values: &[String],
    lists: &mut Vec<(String, Vec<String>)>,
) -> std::result::Result<DataValidation, XlsxError> {
    let joined: usize = values.iter().map(|v| v.chars().count() + 1).sum();
    let dv = if joined.saturating_sub(1) <= INLINE_LIST_MAX {
        DataValidation::new().allow_list_strings(values)?
    } else {
        let col = lists.len();
        lists.push((name.to_string(), values.to_vec()));
        let letter = column_letter(col as u16);
        DataValidation::new().allow_list_formula(Formula::new(format!(
            "={LISTS_SHEET}!${letter}$2:${letter}${}",
            values.len() + 1
        )))
    };
    dv.set_error_title("Not in the list")?
        .set_error_message(format!("{name} must be one of the values in the list."))
}

/// `A`, `B`, … `Z`, `AA`, … for a 0-based column index.
pub fn column_letter(mut col: u16) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

/// A width that shows the header and a typical value.
fn column_width(c: &Column) -> f64 {
    let ex = c.example.as_deref().map(str::len).unwrap_or(0);
    (c.label.chars().count().max(ex) + 4).clamp(10, 40) as f64
}

/// The values a column's dropdown offers: its `one_of` list, or true/false for a boolean.
/// None for a column that takes free text.
fn dropdown_values(c: &Column) -> Option<Vec<String>> {
    if !c.one_of.is_empty() {
        Some(c.one_of.clone())
    } else if c.kind == ColumnType::Boolean {
        Some(vec!["true".into(), "false".into()])
    } else {
        None
    }
}

fn write_instructions(
    ws: &mut Worksheet,
    p: &Profile,
    bold: &Format,
    wrap: &Format,
) -> std::result::Result<(), XlsxError> {
    let mut r: u32 = 0;
    // Printed, a line of text runs across the table's columns and wraps there, in a row as
    // tall as its lines: overflowing text would be cut at the page edge, and wrapped text in
    // a row of the default height runs under the next row.
    let total_width: f64 = INSTRUCTION_WIDTHS.iter().sum();
    let last_col = INSTRUCTION_WIDTHS.len() as u16 - 1;
    // One line of text (a heading in `bold`, else prose), moving `r` down.
    let line = |ws: &mut Worksheet,
                r: &mut u32,
                text: &str,
                f: Option<&Format>|
     -> std::result::Result<(), XlsxError> {
        match f {
            Some(f) => {
                ws.write_string_with_format(*r, 0, text, f)?;
            }
            None => {
                ws.merge_range(*r, 0, *r, last_col, text, wrap)?;
                if let Some(h) = wrapped_height([(text, total_width)]) {
                    ws.set_row_height(*r, h)?;
                }
            }
        }
        *r += 1;
        Ok(())
    };
    line(
        ws,
        &mut r,
        &format!("Input template for profile {}", p.name),
        Some(bold),
    )?;
    line(ws, &mut r, &p.description, None)?;
    r += 1;
    line(ws, &mut r, "How to fill it in", Some(bold))?;
    for t in [
        format!(
            "Fill the {USERS_SHEET} sheet, one row per user, starting on row 2. Keep the header row as it is; \
             the {EXAMPLE_SHEET} sheet shows a filled row and is never sent."
        ),
        format!(
            "Columns marked * must be filled. The key column {} identifies the user: each value only once.",
            p.columns[p.key_index()].label
        ),
        "Hover over a header to see its note: what the column means, its rules and an example.".into(),
        "Id-like columns (ids, extensions, phone numbers, postal codes) are formatted as text so Excel keeps \
         leading zeros and a leading +. Paste values only (Paste Special > Values) to keep that formatting."
            .into(),
        format!(
            "The optional {ACTION_HEADER} column (last) says what to do with the row: {}. Empty means {} \
             (or what --mode says).",
            ACTIONS.join(", "),
            p.default_action().as_str()
        ),
    ] {
        line(ws, &mut r, &t, None)?;
    }
    r += 1;
    line(ws, &mut r, "Create versus update", Some(bold))?;
    let update_line = if p.requests.update.is_some() {
        format!(
            "update: the user with this {} is changed. Only the filled cells are sent; an empty cell \
             leaves the existing value unchanged. To blank a field on purpose, type {}.",
            p.columns[p.key_index()].label, p.clear_marker
        )
    } else {
        "update: this profile can only create users.".into()
    };
    for t in [
        "create: a new user is made from the filled cells; columns with a default take it when empty.".into(),
        update_line,
        "upsert: update when the user exists, create otherwise.".into(),
        "skip: the row is read and checked but nothing is sent.".into(),
    ] {
        line(ws, &mut r, &t, None)?;
    }
    r += 1;
    line(ws, &mut r, "How to run", Some(bold))?;
    let vars = env_vars(p);
    let env_text = vars
        .iter()
        .map(|(n, what)| format!("{n} ({what})"))
        .collect::<Vec<_>>()
        .join(", ");
    for t in [
        format!(
            "1. Check the sheet (nothing is sent): enlist check FILE.xlsx --profile {}",
            p.name
        ),
        format!("2. Set the environment variables: {env_text}."),
        format!(
            "   The base URL looks like {}",
            p.base_url_example.as_deref().unwrap_or("https://host/api")
        ),
        format!(
            "3. Provision the users: enlist run FILE.xlsx --profile {}",
            p.name
        ),
    ] {
        line(ws, &mut r, &t, None)?;
    }
    r += 1;
    line(ws, &mut r, "Columns", Some(bold))?;
    for (c, h) in [
        "column",
        "API field",
        "required",
        "rules",
        "example",
        "description",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string_with_format(r, c as u16, *h, bold)?;
    }
    r += 1;
    for ci in column_order(p) {
        let c = &p.columns[ci];
        let required = if c.required || ci == p.key_index() {
            "yes"
        } else if c.required_on_create {
            "to create"
        } else {
            "no"
        };
        table_row(
            ws,
            r,
            [
                c.label.as_str(),
                c.name.as_str(),
                required,
                &c.rules(),
                c.example.as_deref().unwrap_or(""),
                &c.description,
            ],
            wrap,
        )?;
        r += 1;
    }
    let action_rules = format!("one of: {}", ACTIONS.join(", "));
    table_row(
        ws,
        r,
        [
            ACTION_HEADER,
            "",
            "no",
            action_rules.as_str(),
            "create",
            "What to do with the row (default from the profile or --mode).",
        ],
        wrap,
    )?;
    for (c, w) in INSTRUCTION_WIDTHS.into_iter().enumerate() {
        ws.set_column_width(c as u16, w)?;
    }
    Ok(())
}

/// Widths of the Instructions sheet's columns: column, API field, required, rules, example,
/// description.
const INSTRUCTION_WIDTHS: [f64; 6] = [28.0, 24.0, 10.0, 45.0, 28.0, 60.0];

/// One row of the Instructions' column table, wrapped, as tall as its longest cell.
fn table_row(
    ws: &mut Worksheet,
    r: u32,
    cells: [&str; 6],
    wrap: &Format,
) -> std::result::Result<(), XlsxError> {
    for (k, v) in cells.iter().enumerate() {
        ws.write_string_with_format(r, k as u16, *v, wrap)?;
    }
    if let Some(h) = wrapped_height(cells.into_iter().zip(INSTRUCTION_WIDTHS)) {
        ws.set_row_height(r, h)?;
    }
    Ok(())
}

/// Writes the CSV template: a UTF-8 BOM (so Excel opens it as UTF-8) and the header line.
///
/// No example row: a CSV has no other sheet to keep it on, and an example left in (or
/// copied as the first real row) would be provisioned as a user. The workbook template's
/// Example sheet and `enlist profiles show` carry the examples instead.
pub fn write_csv_template(profile: &Profile, path: &Path) -> Result<()> {
    let mut buf: Vec<u8> = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut buf);
        let csv_err = |e: csv::Error| Error::input(path, format!("cannot write the CSV: {e}"));
        w.write_record(headers(profile)).map_err(csv_err)?;
        w.flush()?;
    }
    std::fs::write(path, buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
    }

    #[test]
    fn headers_match_their_columns() {
        for name in crate::profile::builtin_names() {
            let p = Profile::load(name).expect("built-in profile loads");
            let hs = headers(&p);
            assert!(
                hs[0].starts_with(&p.columns[p.key_index()].label),
                "{name}: key first"
            );
            assert_eq!(hs.last().map(String::as_str), Some(ACTION_HEADER));
            for (h, ci) in hs.iter().zip(column_order(&p)) {
                assert_eq!(p.match_header(h), Some(ci), "{name}: {h:?}");
            }
        }
    }

    #[test]
    fn long_lists_go_to_the_lists_sheet() {
        let mut lists = Vec::new();
        let long: Vec<String> = (0..40).map(|i| format!("Region/Zone_{i:03}")).collect();
        list_validation("timeZone", &long, &mut lists).expect("validation");
        assert_eq!(lists.len(), 1);
        let short = vec!["a".to_string(), "b".to_string()];
        list_validation("x", &short, &mut lists).expect("validation");
        assert_eq!(lists.len(), 1);
    }
}
