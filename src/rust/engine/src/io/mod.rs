//! Keras's file formats: the legacy HDF5 file (`save_model_hdf5()`), weights-only HDF5
//! files, and Keras 3's `.keras` zip. Files are untrusted input: every read checks what it
//! finds (types, shapes, sizes against the file's length) before it allocates, and every
//! failure is an `Error::File` naming the path. Writes go to a temporary file in the target's
//! folder, renamed into place only once complete.
//!
//! * `config_json`: layers, optimizers and compile settings <-> Keras 3's JSON configs.
//! * `model_config`: Sequential and Functional models (nested ones too) <-> JSON configs.
//! * `h5`: checked reads and plain writes of HDF5 attributes and datasets.
//! * `guard`: untrusted HDF5 files are read by a child process first (HDF5 can hang or crash).
//! * `h5_legacy`: the legacy `.h5` layout (`model_config`, `model_weights`, ...).
//! * `keras_zip`: the `.keras` zip (`config.json`, `metadata.json`, `model.weights.h5`).
//! * `optimizer_state`: the optimizer's variables in Keras's order and names.
//! * `weights`: where each weight sits in each format (object paths, legacy groups).

pub mod config_json;
pub mod guard;
pub mod h5;
pub mod h5_legacy;
pub mod keras_zip;
pub mod model_config;
pub mod optimizer_state;
pub mod weights;

use std::path::{Path, PathBuf};

use crate::error::Error;

pub use h5_legacy::{load_h5, load_weights_h5, save_h5, save_weights_h5};
pub use keras_zip::{load_keras, load_weights_keras, save_keras};

/// The Keras version whose formats these files follow (written where Keras writes its own).
pub const KERAS_VERSION: &str = "3.15.1";
/// What the files give as their backend.
pub const BACKEND: &str = "rustkeras";

/// A reason a file cannot be read or written, before the path is attached.
#[derive(Debug)]
pub struct Fail(pub String);

pub type FResult<T> = std::result::Result<T, Fail>;

pub fn fail<T>(msg: impl Into<String>) -> FResult<T> {
    Err(Fail(msg.into()))
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Self {
        Fail(s.to_string())
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        match e {
            Error::File { msg, .. } => Fail(msg),
            e => Fail(e.to_string()),
        }
    }
}

impl From<hdf5::Error> for Fail {
    fn from(e: hdf5::Error) -> Self {
        Fail(format!("HDF5: {}", h5::short_h5_message(&e)))
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail(format!("invalid JSON ({e})"))
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail(e.to_string())
    }
}

impl From<zip::result::ZipError> for Fail {
    fn from(e: zip::result::ZipError) -> Self {
        Fail(format!("not a valid .keras (zip) file ({e})"))
    }
}

/// Attaches the path to a failure.
pub fn at_path<T>(path: &Path, r: FResult<T>) -> crate::Result<T> {
    r.map_err(|Fail(msg)| Error::File {
        path: path.display().to_string(),
        msg,
    })
}

/// Checks that `path` exists and is a regular file, and returns its length.
pub fn readable_file(path: &Path) -> FResult<u64> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Fail("no such file".into()),
        _ => Fail(format!("cannot be read ({e})")),
    })?;
    if !meta.is_file() {
        return fail("is not a regular file");
    }
    Ok(meta.len())
}

/// Checks that a file may be written at `path`.
pub fn check_target(path: &Path, overwrite: bool) -> FResult<()> {
    if path.is_dir() {
        return fail("is a directory");
    }
    if !overwrite && path.exists() {
        return fail("already exists and `overwrite` is FALSE");
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return fail(format!("folder '{}' does not exist", dir.display()));
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary path beside `path`, removed on drop unless `keep()` renamed it into place.
pub struct TempTarget {
    tmp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl TempTarget {
    pub fn new(target: &Path) -> TempTarget {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = target
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let tmp = parent_dir(target).join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        TempTarget {
            tmp,
            target: target.to_path_buf(),
            done: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished temporary file onto the target.
    pub fn keep(mut self) -> FResult<()> {
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| Fail(format!("cannot be written ({e})")))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempTarget {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
