//! Source and plan put together: an input file read for one profile.
//!
//! Opening an [`Input`] reads the sheet once to map its headers and to find duplicate keys
//! (a key on two rows makes both invalid, so it must be known before the first row is sent);
//! [`Input::rows`] reads it again and yields planned rows one at a time, so memory does not
//! grow with the sheet.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
use crate::plan::{
    find_duplicates, is_header, Duplicates, Layout, PlanOptions, PlannedRow, Planner,
};
use crate::profile::Profile;
use crate::source::{self, RawRow, SourceOptions};

/// What to read and how to plan it.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub path: PathBuf,
    pub source: SourceOptions,
    pub plan: PlanOptions,
    pub profile: Arc<Profile>,
}

/// An input file whose header row has been mapped onto the profile.
pub struct Input {
    pub spec: InputSpec,
    /// The Excel sheet used (None for CSV).
    pub sheet_name: Option<String>,
    /// Spreadsheet row number of the header row.
    pub header_row: u64,
    pub layout: Layout,
    duplicates: Duplicates,
}

impl Input {
    /// Opens the file, maps the header and finds duplicate keys. Refuses a file that cannot
    /// be read or lacks required columns.
    pub fn open(spec: InputSpec) -> Result<Input> {
        let profile = spec.profile.clone();
        let probe = |cells: &[String]| is_header(&profile, cells);
        let sheet = source::open(&spec.path, &spec.source, &probe)?;
        let layout = Layout::new(&profile, &sheet.headers, &spec.path)?;
        let sheet_name = sheet.sheet_name.clone();
        let header_row = sheet.header_row;
        // The second pass must read the file exactly as the first did.
        let mut spec = spec;
        spec.source.delimiter = spec.source.delimiter.or(sheet.delimiter);
        spec.source.encoding = spec.source.encoding.or(sheet.encoding);
        let duplicates = find_duplicates(sheet.rows, &layout, &profile);
        Ok(Input {
            spec,
            sheet_name,
            header_row,
            layout,
            duplicates,
        })
    }

    pub fn path(&self) -> &Path {
        &self.spec.path
    }

    pub fn profile(&self) -> &Arc<Profile> {
        &self.spec.profile
    }

    /// Sheet-level warnings (columns the profile does not use).
    pub fn warnings(&self) -> Vec<String> {
        self.layout
            .unknown
            .iter()
            .map(|h| {
                format!(
                    "column {h:?} is not used by profile {} and is ignored",
                    self.spec.profile.name
                )
            })
            .collect()
    }

    /// A planner for this input (also used to re-render requests for display).
    pub fn planner(&self) -> Planner {
        Planner::new(
            self.spec.profile.clone(),
            self.layout.clone(),
            self.spec.plan.clone(),
            self.duplicates.clone(),
        )
    }

    /// Reads the sheet again, positioned after the same header row.
    pub fn raw_rows(&self) -> Result<source::Sheet> {
        let mut opts = self.spec.source.clone();
        opts.header_row = Some(self.header_row);
        if opts.sheet.is_none() {
            opts.sheet = self.sheet_name.clone();
        }
        let never = |_: &[String]| false;
        source::open(&self.spec.path, &opts, &never)
    }

    /// Every data row, planned, in file order.
    pub fn rows(&self) -> Result<impl Iterator<Item = PlannedRow> + Send + 'static> {
        self.rows_where(|_| true)
    }

    /// The data rows `keep` accepts (rows the reader could not read are always kept, so
    /// they are reported), planned, in file order.
    pub fn rows_where(
        &self,
        keep: impl Fn(&RawRow) -> bool + Send + 'static,
    ) -> Result<impl Iterator<Item = PlannedRow> + Send + 'static> {
        let sheet = self.raw_rows()?;
        let mut planner = self.planner();
        Ok(sheet
            .rows
            .filter(move |r| r.as_ref().map(&keep).unwrap_or(true))
            .map(move |r| planner.plan(r)))
    }
}
