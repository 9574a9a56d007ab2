//! What calamine does not show of a written workbook: cell styles (fills, wrapping), frozen
//! panes, print setup, print titles and data validations, read from the XML parts inside the
//! .xlsx. It reads the files enlist writes (rust_xlsxwriter's spelling of the XML), not any
//! workbook.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use regex::Regex;

pub struct BookXml {
    parts: HashMap<String, String>,
    sheets: Vec<String>,
}

/// The first capture of `re` in `text`.
fn capture<'t>(re: &str, text: &'t str) -> Option<&'t str> {
    Regex::new(re)
        .expect("test regex")
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// The elements `<tag …/>` or `<tag …>…</tag>` inside the first `<list …>…</list>`.
fn elements<'t>(text: &'t str, list: &str, tag: &str) -> Vec<&'t str> {
    let Some(inner) = capture(&format!(r"(?s)<{list}\b[^>]*>(.*?)</{list}>"), text) else {
        return Vec::new();
    };
    Regex::new(&format!(r"(?s)<{tag}\b(?:[^>]*/>|[^>]*>.*?</{tag}>)"))
        .expect("test regex")
        .find_iter(inner)
        .map(|m| m.as_str())
        .collect()
}

impl BookXml {
    pub fn open(path: &Path) -> BookXml {
        let file = std::fs::File::open(path).expect("open workbook");
        let mut zip = zip::ZipArchive::new(file).expect("a zip");
        let mut parts = HashMap::new();
        for i in 0..zip.len() {
            let mut f = zip.by_index(i).expect("zip entry");
            if f.name().ends_with(".xml") {
                let mut text = String::new();
                f.read_to_string(&mut text).expect("utf-8 xml");
                parts.insert(f.name().to_string(), text);
            }
        }
        let sheets = Regex::new(r#"<sheet name="([^"]*)""#)
            .expect("test regex")
            .captures_iter(&parts["xl/workbook.xml"])
            .map(|c| c[1].to_string())
            .collect();
        BookXml { parts, sheets }
    }

    pub fn part(&self, name: &str) -> &str {
        &self.parts[name]
    }

    /// The XML of the sheet called `name` (rust_xlsxwriter numbers them in workbook order).
    pub fn sheet(&self, name: &str) -> &str {
        let n = self
            .sheets
            .iter()
            .position(|s| s == name)
            .unwrap_or_else(|| panic!("no sheet {name:?} in {:?}", self.sheets));
        self.part(&format!("xl/worksheets/sheet{}.xml", n + 1))
    }

    /// The `<xf>` element of the style of `cell` ("C7") on `sheet`; None for a cell without
    /// a style (or not written).
    pub fn cell_style(&self, sheet: &str, cell: &str) -> Option<&str> {
        let s: usize = capture(&format!(r#"<c r="{cell}" s="(\d+)""#), self.sheet(sheet))?
            .parse()
            .ok()?;
        elements(self.part("xl/styles.xml"), "cellXfs", "xf")
            .get(s)
            .copied()
    }

    /// The colour (RRGGBB) of the solid fill of `cell`, if it has one.
    pub fn cell_fill(&self, sheet: &str, cell: &str) -> Option<String> {
        let xf = self.cell_style(sheet, cell)?;
        let id: usize = capture(r#"fillId="(\d+)""#, xf)?.parse().ok()?;
        let fills = elements(self.part("xl/styles.xml"), "fills", "fill");
        let rgb = capture(r#"<fgColor rgb="FF([0-9A-F]{6})""#, fills.get(id)?)?;
        Some(rgb.to_string())
    }

    /// The print titles defined for `sheet` (`Results!$1:$1`).
    pub fn print_titles(&self, sheet: &str) -> Option<String> {
        let n = self.sheets.iter().position(|s| s == sheet)?;
        capture(
            &format!(r#"<definedName name="_xlnm.Print_Titles" localSheetId="{n}">([^<]*)<"#),
            self.part("xl/workbook.xml"),
        )
        .map(str::to_string)
    }

    /// The data validations of `sheet`: (range, first formula), as `("F2:F1001", "\"a,b\"")`.
    pub fn validations(&self, sheet: &str) -> Vec<(String, String)> {
        elements(self.sheet(sheet), "dataValidations", "dataValidation")
            .into_iter()
            .map(|v| {
                (
                    capture(r#"sqref="([^"]*)""#, v).unwrap_or("").to_string(),
                    capture(r"<formula1>([^<]*)</formula1>", v)
                        .unwrap_or("")
                        .replace("&quot;", "\""),
                )
            })
            .collect()
    }
}

impl BookXml {
    /// Whether `sheet` prints landscape, one page wide and as many pages down as it takes.
    pub fn prints_across_one_page(&self, sheet: &str) -> bool {
        let xml = self.sheet(sheet);
        let setup = capture(r"(<pageSetup [^>]*/>)", xml).unwrap_or("");
        xml.contains(r#"<pageSetUpPr fitToPage="1"/>"#)
            && setup.contains(r#"orientation="landscape""#)
            // fitToWidth's default is 1; fitToHeight 0 is "as many as needed".
            && setup.contains(r#"fitToHeight="0""#)
            && !setup.contains("fitToWidth")
    }

    /// Whether the first row of `sheet` is frozen.
    pub fn header_frozen(&self, sheet: &str) -> bool {
        Regex::new(r#"<pane [^>]*ySplit="1"[^>]*state="frozen""#)
            .expect("test regex")
            .is_match(self.sheet(sheet))
    }

    /// The height set on spreadsheet row `row` (1-based), in points.
    pub fn row_height(&self, sheet: &str, row: u32) -> Option<f64> {
        capture(
            &format!(r#"<row r="{row}"[^>]* ht="([0-9.]+)""#),
            self.sheet(sheet),
        )?
        .parse()
        .ok()
    }

    /// Column widths of `sheet` by 0-based column (8.43, Excel's default, where none is set).
    pub fn column_widths(&self, sheet: &str, columns: usize) -> Vec<f64> {
        let mut widths = vec![8.43; columns];
        let cols = Regex::new(r#"<col min="(\d+)" max="(\d+)" width="([0-9.]+)""#).expect("re");
        for c in cols.captures_iter(self.sheet(sheet)) {
            let (min, max): (usize, usize) = (c[1].parse().expect("n"), c[2].parse().expect("n"));
            for w in widths.iter_mut().take(max).skip(min - 1) {
                *w = c[3].parse().expect("width");
            }
        }
        widths
    }

    /// The merged ranges of `sheet` ("A3:F3").
    pub fn merged(&self, sheet: &str) -> Vec<String> {
        Regex::new(r#"<mergeCell ref="([^"]+)"/>"#)
            .expect("re")
            .captures_iter(self.sheet(sheet))
            .map(|c| c[1].to_string())
            .collect()
    }
}
