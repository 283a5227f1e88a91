//! Checked HDF5 reads and plain writes. A corrupted file can claim any size or type: each
//! read checks the type it finds and that the data fits in the file before allocating.

use std::path::Path;

use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Attribute, Dataset, File, Group, Location};

use super::{fail, FResult, Fail};

/// HDF5's signature; a file may start with a user block of 512, 1024, 2048, ... bytes.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Longest fixed-length string read (layer and weight names).
const MAX_FIXED_STR: usize = 1024;

/// The innermost message of an HDF5 error stack, without the stack.
pub fn short_h5_message(e: &hdf5::Error) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("unknown error").to_string()
}

/// Whether `bytes` (the start of a file) carry HDF5's signature at a user-block offset.
pub fn has_signature(path: &Path) -> FResult<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut offset = 0u64;
    while offset + 8 <= len {
        let mut buf = [0u8; 8];
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut buf)?;
        if &buf == SIGNATURE {
            return Ok(true);
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    Ok(false)
}

/// Opens an HDF5 file for reading, once a child process has read all of it safely
/// (`guard`); `what` names the expected content in the error.
pub fn open(path: &Path, what: &str) -> FResult<File> {
    hdf5::silence_errors(true);
    if !has_signature(path)? {
        return fail(format!("is not an HDF5 file (expected {what})"));
    }
    let len = std::fs::metadata(path)?.len();
    super::guard::check_in_child(path, len)?;
    open_unguarded(path)
}

fn open_unguarded(path: &Path) -> FResult<File> {
    File::open(path).map_err(|e| {
        Fail(format!(
            "cannot be opened as HDF5, the file is truncated or corrupted ({})",
            short_h5_message(&e)
        ))
    })
}

/// Most groups, datasets and attributes `read_everything` visits, and how deep.
const MAX_OBJECTS: usize = 1 << 20;
const MAX_DEPTH: usize = 64;

/// Reads every attribute and dataset of the file, each checked as the loaders check them
/// (sizes against `budget`), following groups down: the child process's work in `guard`.
/// An item that fails to read is passed over, so that everything else is still tried.
pub fn read_everything(path: &Path, budget: u64) -> FResult<()> {
    hdf5::silence_errors(true);
    let file = open_unguarded(path)?;
    let mut seen = 0usize;
    read_group(&file, budget, 0, &mut seen);
    Ok(())
}

fn read_group(g: &Group, budget: u64, depth: usize, seen: &mut usize) {
    read_attrs(g, budget, seen);
    if depth > MAX_DEPTH {
        return;
    }
    for name in g.member_names().unwrap_or_default() {
        *seen += 1;
        if *seen > MAX_OBJECTS {
            return;
        }
        if let Ok(sub) = g.group(&name) {
            read_group(&sub, budget, depth + 1, seen);
        } else if let Ok(ds) = g.dataset(&name) {
            read_attrs(&ds, budget, seen);
            let _ = read_any(&ds, budget);
        }
    }
}

fn read_attrs(loc: &Location, budget: u64, seen: &mut usize) {
    for name in loc.attr_names().unwrap_or_default() {
        *seen += 1;
        if *seen > MAX_OBJECTS {
            return;
        }
        if let Ok(attr) = loc.attr(&name) {
            let _ = read_attr(&attr, budget);
        }
    }
}

fn read_attr(attr: &Attribute, budget: u64) -> FResult<()> {
    match attr.dtype()?.to_descriptor()? {
        TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            if (attr.size() as u64).saturating_mul(8) <= budget {
                attr.read_raw::<f64>()?;
            }
        }
        _ => {
            string_list(attr, MAX_OBJECTS)?;
        }
    }
    Ok(())
}

/// A dataset's values, numbers or strings.
fn read_any(ds: &Dataset, budget: u64) -> FResult<()> {
    match ds.dtype()?.to_descriptor()? {
        TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            read_f32(ds, budget)?;
        }
        _ => {
            if (ds.size() as u64) <= budget {
                ds.read_raw::<VarLenUnicode>()?;
            }
        }
    }
    Ok(())
}

pub fn create(path: &Path) -> FResult<File> {
    hdf5::silence_errors(true);
    Ok(File::create(path)?)
}

fn string_list(attr: &Attribute, max_count: usize) -> FResult<Vec<String>> {
    let n = attr.size();
    if n == 0 {
        return Ok(Vec::new());
    }
    if n > max_count {
        return fail(format!("attribute '{}' claims {n} strings", attr.name()));
    }
    let desc = attr.dtype()?.to_descriptor()?;
    let strings: Vec<String> = match desc {
        TypeDescriptor::VarLenUnicode => attr
            .read_raw::<VarLenUnicode>()?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        TypeDescriptor::VarLenAscii => attr
            .read_raw::<VarLenAscii>()?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        TypeDescriptor::FixedAscii(len) if len <= MAX_FIXED_STR => attr
            .read_raw::<FixedAscii<MAX_FIXED_STR>>()?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        TypeDescriptor::FixedUnicode(len) if len <= MAX_FIXED_STR => attr
            .read_raw::<FixedUnicode<MAX_FIXED_STR>>()?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        other => {
            return fail(format!(
                "attribute '{}' should hold strings, not {other:?}",
                attr.name()
            ))
        }
    };
    Ok(strings)
}

/// A string attribute (scalar, or the single element of an array).
pub fn read_str_attr(loc: &Location, name: &str) -> FResult<String> {
    let attr = loc
        .attr(name)
        .map_err(|_| Fail(format!("attribute '{name}' is missing")))?;
    let mut v = string_list(&attr, 1)?;
    match v.len() {
        1 => Ok(v.remove(0)),
        _ => fail(format!("attribute '{name}' should hold one string")),
    }
}

pub fn has_attr(loc: &Location, name: &str) -> bool {
    loc.attr_names()
        .map(|v| v.iter().any(|n| n == name))
        .unwrap_or(false)
}

/// A list of strings, also when Keras split it into `name0`, `name1`, ... (attributes over
/// 64 KB).
pub fn read_str_list_attr(loc: &Location, name: &str, max_count: usize) -> FResult<Vec<String>> {
    if has_attr(loc, name) {
        return string_list(&loc.attr(name)?, max_count);
    }
    let mut out = Vec::new();
    let mut chunk = 0;
    while has_attr(loc, &format!("{name}{chunk}")) {
        out.extend(string_list(
            &loc.attr(&format!("{name}{chunk}"))?,
            max_count,
        )?);
        if out.len() > max_count {
            return fail(format!("attribute '{name}' claims too many strings"));
        }
        chunk += 1;
    }
    if chunk == 0 {
        return fail(format!("attribute '{name}' is missing"));
    }
    Ok(out)
}

/// A numeric dataset as f32 values with its shape; `budget` is the most bytes it may use
/// (the file's length: stored values cannot be larger than the file).
pub fn read_f32(ds: &Dataset, budget: u64) -> FResult<(Vec<usize>, Vec<f32>)> {
    let shape = ds.shape();
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Fail(format!("dataset '{}' has an impossible shape", ds.name())))?;
    let desc = ds.dtype()?.to_descriptor()?;
    let elem = match desc {
        TypeDescriptor::Float(s) => s as u64,
        TypeDescriptor::Integer(s) | TypeDescriptor::Unsigned(s) => s as u64,
        other => {
            return fail(format!(
                "dataset '{}' should hold numbers, not {other:?}",
                ds.name()
            ))
        }
    };
    if (n as u64).saturating_mul(elem) > budget {
        return fail(format!(
            "dataset '{}' claims {n} values, more than the file holds",
            ds.name()
        ));
    }
    let values = ds.read_raw::<f32>()?;
    if values.len() != n {
        return fail(format!("dataset '{}' is incomplete", ds.name()));
    }
    Ok((shape, values))
}

/// A scalar integer dataset (an optimizer's iteration count).
pub fn read_count(ds: &Dataset) -> FResult<u64> {
    if ds.size() != 1 {
        return fail(format!("dataset '{}' should hold one number", ds.name()));
    }
    let v = match ds.dtype()?.to_descriptor()? {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => ds.read_raw::<i64>()?[0],
        TypeDescriptor::Float(_) => {
            let f = ds.read_raw::<f64>()?[0];
            if !(f.is_finite() && f >= 0.0 && f.fract() == 0.0) {
                return fail(format!("dataset '{}' is not a count", ds.name()));
            }
            f as i64
        }
        other => return fail(format!("dataset '{}' holds {other:?}", ds.name())),
    };
    if v < 0 {
        return fail(format!("dataset '{}' is negative", ds.name()));
    }
    Ok(v as u64)
}

pub fn write_str_attr(loc: &Location, name: &str, value: &str) -> FResult<()> {
    let v: VarLenUnicode = value
        .parse()
        .map_err(|_| Fail(format!("attribute '{name}' cannot hold a NUL character")))?;
    loc.new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&v)?;
    Ok(())
}

pub fn write_str_list_attr(loc: &Location, name: &str, values: &[String]) -> FResult<()> {
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| Fail(format!("attribute '{name}' cannot hold a NUL character")))?;
    let attr = loc
        .new_attr::<VarLenUnicode>()
        .shape([v.len()])
        .create(name)?;
    if !v.is_empty() {
        attr.write_raw(&v)?;
    }
    Ok(())
}

/// Creates the groups of a `/`-separated path below `group` and returns the last one.
pub fn ensure_groups(group: &Group, path: &str) -> FResult<Group> {
    let mut g = group.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        g = if g.link_exists(part) {
            g.group(part)?
        } else {
            g.create_group(part)?
        };
    }
    Ok(g)
}

/// Writes f32 values of `shape` at `path` (groups created as needed).
pub fn write_f32(group: &Group, path: &str, shape: &[usize], values: &[f32]) -> FResult<()> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (ensure_groups(group, d)?, n),
        None => (group.clone(), path),
    };
    let ds = dir
        .new_dataset::<f32>()
        .shape(shape.to_vec())
        .create(name)?;
    ds.write_raw(values)?;
    Ok(())
}

pub fn write_i64_scalar(group: &Group, name: &str, value: i64) -> FResult<()> {
    group
        .new_dataset::<i64>()
        .shape(())
        .create(name)?
        .write_scalar(&value)?;
    Ok(())
}

pub fn write_f32_scalar(group: &Group, name: &str, value: f32) -> FResult<()> {
    group
        .new_dataset::<f32>()
        .shape(())
        .create(name)?
        .write_scalar(&value)?;
    Ok(())
}
