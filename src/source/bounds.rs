//! Bounds on hostile workbooks, checked before calamine opens them.
//!
//! calamine holds some parts of a workbook in memory whole (the shared strings of an xlsx,
//! the content of an ods), so a small zip whose parts inflate to gigabytes would take that
//! much memory. The zip's central directory declares every part's sizes: a workbook whose
//! parts declare more than the cap, or that inflate absurdly, is refused before any part
//! is inflated. Declared sizes can lie, so the parts calamine loads whole are also inflated
//! once here through a bound, and the workbook is refused when they reach the cap.
//! (xlsx worksheets are streamed row by row: they are bounded by a larger cap, which a
//! genuine sheet of Excel's 1,048,576 rows stays within, and by the row cap.)

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// A part that inflates to more than this…
const RATIO_MIN_SIZE: u64 = 64 * MIB;
/// …at more than this many times its compressed size is taken for a bomb (real workbook
/// XML compresses 5 to 50 times; deflate cannot exceed about 1,032).
const MAX_RATIO: u64 = 200;

/// A streamed worksheet may expand to this many times the cap.
pub(super) const SHEET_FACTOR: u64 = 8;

/// The parts calamine reads row by row (xlsx and xlsm worksheets) rather than whole.
fn is_streamed(name: &str) -> bool {
    name.starts_with("xl/worksheets/") && name.ends_with(".xml")
}

/// Refuses the zip at `read` (named `path` in messages) when the parts calamine holds whole
/// expand beyond `cap_mib` MiB in all, a streamed worksheet beyond [`SHEET_FACTOR`] times
/// that, or any part absurdly. A zip the `zip` crate cannot read is left to
/// calamine, which says what is wrong with it.
pub(super) fn check_zip(path: &Path, read: &Path, cap_mib: u64, ratio_checked: bool) -> Result<()> {
    let cap = cap_mib.saturating_mul(MIB);
    let file = File::open(read).map_err(|e| {
        Error::input(
            path,
            format!("cannot open the file ({e}): check the path and that you may read it"),
        )
    })?;
    let Ok(mut zip) = zip::ZipArchive::new(BufReader::new(file)) else {
        return Ok(());
    };
    let refuse = || {
        Error::input(
            path,
            format!(
                "this workbook expands to more than {cap_mib} MiB; if it is genuine, pass \
                 --max-expanded-mib N with a larger N"
            ),
        )
    };
    let mut declared: u64 = 0;
    for i in 0..zip.len() {
        let Ok(part) = zip.by_index_raw(i) else {
            return Ok(());
        };
        let size = part.size();
        if is_streamed(part.name()) {
            // Read row by row, never held whole: bounded for time, not memory.
            let sheet_cap = cap.saturating_mul(SHEET_FACTOR);
            if size > sheet_cap {
                return Err(Error::input(
                    path,
                    format!(
                        "this workbook's sheet {:?} expands to more than {} MiB; if it is \
                         genuine, pass --max-expanded-mib N with a larger N (a sheet may \
                         expand to {SHEET_FACTOR} times N)",
                        part.name(),
                        sheet_cap / MIB
                    ),
                ));
            }
        } else {
            declared = declared.saturating_add(size);
            if declared > cap {
                return Err(refuse());
            }
        }
        let packed = part.compressed_size().max(1);
        if ratio_checked && size > RATIO_MIN_SIZE && size / packed > MAX_RATIO {
            return Err(Error::input(
                path,
                format!(
                    "this workbook's part {:?} expands from {} KiB to {} MiB ({} times): it \
                     looks like a decompression bomb; if it is genuine, pass \
                     --max-expanded-mib N",
                    part.name(),
                    packed / 1024,
                    size / MIB,
                    size / packed
                ),
            ));
        }
    }
    // Declared sizes can lie: inflate what calamine would hold whole, through a bound.
    let mut inflated: u64 = 0;
    for i in 0..zip.len() {
        if zip.name_for_index(i).is_some_and(is_streamed) {
            continue;
        }
        let Ok(part) = zip.by_index(i) else {
            return Ok(());
        };
        let left = cap.saturating_sub(inflated);
        let mut bounded = part.take(left.saturating_add(1));
        let Ok(n) = std::io::copy(&mut bounded, &mut std::io::sink()) else {
            // A damaged part: calamine says what is wrong with it.
            return Ok(());
        };
        inflated = inflated.saturating_add(n);
        if inflated > cap {
            return Err(refuse());
        }
    }
    Ok(())
}
