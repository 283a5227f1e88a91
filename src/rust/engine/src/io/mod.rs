//! Keras's file formats: the legacy HDF5 file (`save_model_hdf5()`), weights-only HDF5
//! files, and Keras 3's `.keras` zip. Files are untrusted input: every read checks what it
//! finds (types, shapes, sizes against the file's length) before it allocates, and every
//! failure is an `Error::File` naming the path. Writes go to a temporary file in the target's
//! folder (an unnamed one
//! on Linux), moved into place only once complete; see `TempTarget`.
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

/// Checks that `path` exists and is a non-empty regular file, and returns its length.
pub fn readable_file(path: &Path) -> FResult<u64> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Fail("no such file".into()),
        _ => Fail(format!("cannot be read ({e})")),
    })?;
    if !meta.is_file() {
        return fail("is not a regular file");
    }
    if meta.len() == 0 {
        return fail("is empty (0 bytes), not a Keras file");
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

/// Why a file cannot be created in `path`'s folder, in words (the path is attached later,
/// never the temporary file's name).
fn write_fail(path: &Path, e: &std::io::Error) -> Fail {
    let dir = parent_dir(path);
    let reason = if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() {
        // What creating a file in /proc says.
        format!("folder '{}' does not allow new files", dir.display())
    } else if e.kind() == std::io::ErrorKind::NotFound {
        format!("folder '{}' does not exist", dir.display())
    } else {
        os_reason(e)
    };
    Fail(format!("cannot be written: {reason}"))
}

/// The OS's reason without Rust's ` (os error N)`: "permission denied".
fn os_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => "unknown error".into(),
    }
}

/// The prefix of every temporary file of `target`: `.{name}.tmp-`, followed by
/// `{pid}-{n}` (the writing process and a counter).
fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    format!(".{name}.tmp-")
}

/// A fresh temporary name beside `target`, owned by this process.
fn temp_name(target: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_dir(target).join(format!("{}{}-{n}", temp_prefix(target), std::process::id()))
}

/// Whether process `pid` may still be writing. Without a way to tell, it may.
#[cfg(unix)]
fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // 0 and negative pids would signal process groups: no writer has them.
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; it sends nothing.
    let r = unsafe { libc::kill(p, 0) };
    // EPERM: it exists but belongs to someone else.
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn pid_alive(_pid: u32) -> bool {
    true
}

/// Removes temporary files of `target` left by a save that was killed (`kill -9`, a crash,
/// power loss): those whose writer process no longer exists. A live writer's file (this
/// process's too) is left alone. Pids are those of this machine: a folder shared with
/// another machine or pid namespace could hold a live writer's file whose pid looks dead
/// here; on Linux that file exists only between `linkat` and `rename` (see `TempTarget`).
pub fn remove_stale_temps(target: &Path) {
    let prefix = temp_prefix(target);
    let Ok(entries) = std::fs::read_dir(parent_dir(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        if !digits(pid) || !digits(n) {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid_alive(pid) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let _ = std::fs::remove_file(entry.path());
    }
}

/// A file being written for `target`, moved onto it only once complete by `keep()`, so a
/// failed or killed save never damages an existing file.
///
/// `create()` makes, on Linux, an unnamed file (`O_TMPFILE`) in the target's folder, for
/// writers that take a `File` (the .keras zip): a killed save leaves nothing behind.
/// `keep()` links it under a temporary name and renames that over the target (`linkat`
/// cannot replace a file). HDF5 cannot write one: it opens files by name, and the name
/// `/proc/self/fd/N` fails in its `realpath()`. So HDF5 writes, and `create()` where
/// `O_TMPFILE` is refused (other systems, file systems without it, no /proc), use a named
/// file `.{name}.tmp-{pid}-{n}` beside the target (`named()`), removed on drop; one left
/// by a killed process is removed by the next `create()` or `named()` for the same target.
pub struct TempTarget {
    target: PathBuf,
    /// The named file, or `/proc/self/fd/N` for an unnamed one.
    path: PathBuf,
    file: std::fs::File,
    /// The named file to remove on drop; `None` for an unnamed one.
    named: Option<PathBuf>,
    done: bool,
}

impl TempTarget {
    /// Creates the temporary file, unnamed where the system allows (write it through
    /// `file()`): this is where a target that cannot be written (a read-only or missing
    /// folder, /proc) fails, with the OS's reason.
    pub fn create(target: &Path) -> FResult<TempTarget> {
        remove_stale_temps(target);
        #[cfg(target_os = "linux")]
        if let Some(t) = Self::unnamed(target) {
            return Ok(t);
        }
        Self::named_only(target)
    }

    #[cfg(target_os = "linux")]
    fn unnamed(target: &Path) -> Option<TempTarget> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o666)
            .custom_flags(libc::O_TMPFILE)
            .open(parent_dir(target))
            // EOPNOTSUPP, EISDIR (kernels before 3.11), EINVAL, but also EACCES or EROFS:
            // the named file then gives the reason, or works where this did not.
            .ok()?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        // `keep()` links the file through /proc.
        std::fs::metadata(&path).ok()?;
        Some(TempTarget {
            target: target.to_path_buf(),
            path,
            file,
            named: None,
            done: false,
        })
    }

    /// A named temporary file beside `target`, for writers that open it by name (HDF5).
    pub fn named(target: &Path) -> FResult<TempTarget> {
        remove_stale_temps(target);
        Self::named_only(target)
    }

    fn named_only(target: &Path) -> FResult<TempTarget> {
        let tmp = temp_name(target);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| write_fail(target, &e))?;
        Ok(TempTarget {
            target: target.to_path_buf(),
            path: tmp.clone(),
            file,
            named: Some(tmp),
            done: false,
        })
    }

    /// The path to write by name (as HDF5 does): only for a `named()` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the file, at its start (for writers that take a `File`).
    pub fn file(&self) -> FResult<std::fs::File> {
        Ok(self.file.try_clone()?)
    }

    /// Whether this is an unnamed (`O_TMPFILE`) file.
    #[cfg(test)]
    fn is_unnamed(&self) -> bool {
        self.named.is_none()
    }

    /// A failure of a writer, without the temporary file's name (HDF5 quotes it).
    pub fn scrub(&self, Fail(msg): Fail) -> Fail {
        let mut msg = msg.replace(
            &self.path.display().to_string(),
            &self.target.display().to_string(),
        );
        // (`/proc/self/fd/N`'s name is a number: only a named file's name is replaced.)
        if let Some(name) = self.named.as_ref().and_then(|n| n.file_name()) {
            let target = self.target.file_name().unwrap_or_default();
            msg = msg.replace(&*name.to_string_lossy(), &target.to_string_lossy());
        }
        Fail(msg)
    }

    /// Moves the finished file onto the target, once it is on disk.
    pub fn keep(mut self) -> FResult<()> {
        let fail = |e: std::io::Error| write_fail(&self.target, &e);
        self.file.sync_all().map_err(fail)?;
        let named = match &self.named {
            Some(named) => named.clone(),
            None => self.link()?,
        };
        if let Err(e) = std::fs::rename(&named, &self.target) {
            let _ = std::fs::remove_file(&named);
            return Err(fail(e));
        }
        self.done = true;
        Ok(())
    }

    /// Gives the unnamed file a temporary name beside the target.
    #[cfg(target_os = "linux")]
    fn link(&self) -> FResult<PathBuf> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let to = temp_name(&self.target);
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes()).map_err(|_| Fail("has a NUL byte".into()))
        };
        let (from_c, to_c) = (c(&self.path)?, c(&to)?);
        // SAFETY: two NUL-terminated paths that live across the call.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r != 0 {
            return Err(write_fail(&self.target, &std::io::Error::last_os_error()));
        }
        Ok(to)
    }

    #[cfg(not(target_os = "linux"))]
    fn link(&self) -> FResult<PathBuf> {
        unreachable!("unnamed temporary files exist only on Linux")
    }
}

impl Drop for TempTarget {
    fn drop(&mut self) {
        if let (Some(named), false) = (&self.named, self.done) {
            let _ = std::fs::remove_file(named);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::registry::from_config;
    use crate::layers::ConfigValue;
    use std::io::Write;

    fn small_model() -> crate::model::Model {
        let mut m = crate::model::Model::sequential(Some("m".into()), Some(vec![3])).unwrap();
        let fields = [("units".to_string(), ConfigValue::Int(2))];
        m.add(from_config("Dense", &fields).unwrap()).unwrap();
        m
    }

    /// A fresh empty folder of this test's own.
    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rk-io-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A pid no process has: Linux's pids stop at 2^22.
    #[cfg(unix)]
    const DEAD_PID: u32 = (1 << 22) + 4321;

    #[cfg(unix)]
    #[test]
    fn pids_alive_and_dead() {
        assert!(pid_alive(std::process::id()));
        assert!(pid_alive(1));
        assert!(!pid_alive(DEAD_PID));
        assert!(!pid_alive(0));
    }

    #[cfg(unix)]
    #[test]
    fn a_killed_saves_temporary_files_go_at_the_next_save() {
        let dir = folder("stale");
        type Save = fn(&Path) -> crate::Result<()>;
        let keras: Save = |p| save_keras(&small_model(), p, true);
        let h5: Save = |p| save_h5(&small_model(), p, true, true);
        for (file, save) in [("m.keras", keras), ("m.h5", h5)] {
            let target = dir.join(file);
            let mut stale = vec![dir.join(format!(".{file}.tmp-{DEAD_PID}-0"))];
            if file == "m.keras" {
                // The weights file the .keras writer builds first.
                stale.push(dir.join(format!(".m.weights.h5.tmp-{DEAD_PID}-3")));
            }
            // A live writer's files, and files that only look alike.
            let kept = [
                dir.join(format!(".{file}.tmp-1-0")),
                dir.join(format!(".{file}.tmp-{}-999999", std::process::id())),
                dir.join(format!(".{file}.tmp-{DEAD_PID}-x")),
                dir.join(format!(".{file}.tmp-{DEAD_PID}")),
                dir.join(format!(".other.{file}.tmp-{DEAD_PID}-0")),
            ];
            for p in stale.iter().chain(&kept) {
                std::fs::write(p, b"half a model").unwrap();
            }
            save(&target).unwrap();
            for p in &stale {
                assert!(!p.exists(), "{} is left", p.display());
            }
            for p in &kept {
                assert!(p.exists(), "{} was removed", p.display());
                std::fs::remove_file(p).unwrap();
            }
        }
        assert_eq!(names(&dir), ["m.h5", "m.keras"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saves_replace_the_target_and_leave_nothing_else() {
        let dir = folder("replace");
        let target = dir.join("x.bin");
        std::fs::write(&target, b"old").unwrap();
        for named in [false, true] {
            let tmp = if named {
                TempTarget::named(&target).unwrap()
            } else {
                TempTarget::create(&target).unwrap()
            };
            assert_eq!(tmp.is_unnamed(), !named && cfg!(target_os = "linux"));
            tmp.file().unwrap().write_all(b"new").unwrap();
            tmp.keep().unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), b"new");
            assert_eq!(names(&dir), ["x.bin"]);
            // Dropped without keep(): the target stays as it was, and nothing is left.
            let tmp = if named {
                TempTarget::named(&target).unwrap()
            } else {
                TempTarget::create(&target).unwrap()
            };
            tmp.file().unwrap().write_all(b"partial").unwrap();
            drop(tmp);
            assert_eq!(std::fs::read(&target).unwrap(), b"new");
            assert_eq!(names(&dir), ["x.bin"]);
            std::fs::write(&target, b"old").unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scrub_hides_the_temporary_name() {
        let dir = folder("scrub");
        let target = dir.join("m5.h5");
        let named = TempTarget::named(&target).unwrap();
        let msg = format!("unable to open file: name = '{}'", named.path().display());
        let Fail(m) = named.scrub(Fail(msg));
        assert_eq!(
            m,
            format!("unable to open file: name = '{}'", target.display())
        );
        let unnamed = TempTarget::create(&target).unwrap();
        let msg = format!("at {} of '{}': 5 bytes", "x", unnamed.path().display());
        let Fail(m) = unnamed.scrub(Fail(msg));
        assert_eq!(m, format!("at x of '{}': 5 bytes", target.display()));
        drop((named, unnamed));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The message R shows: one line with the user's path and the reason, nothing of HDF5
    /// or of the temporary file.
    fn check_write_error(e: crate::Error, path: &Path, reason: &str) {
        let msg = e.to_string();
        assert!(matches!(e, crate::Error::File { .. }), "{msg}");
        assert!(msg.contains(&format!("'{}'", path.display())), "{msg}");
        assert!(msg.contains(reason), "{msg}");
        for bad in ["tmp", "HDF5", "/proc/self", "\n"] {
            assert!(!msg.contains(bad), "{msg}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unwritable_targets_name_the_path_and_the_reason() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let m = small_model();
        let (k, h) = (Path::new("/proc/nope.keras"), Path::new("/proc/nope.h5"));
        let reason = "cannot be written: folder '/proc' does not allow new files";
        check_write_error(save_keras(&m, k, true).unwrap_err(), k, reason);
        check_write_error(save_h5(&m, h, true, true).unwrap_err(), h, reason);
        check_write_error(save_weights_h5(&m, h, true).unwrap_err(), h, reason);
        // So do both kinds of temporary file (O_TMPFILE is refused there).
        for e in [
            at_path(k, TempTarget::named(k).map(|_| ())).unwrap_err(),
            at_path(k, TempTarget::create(k).map(|_| ())).unwrap_err(),
        ] {
            check_write_error(e, k, reason);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_folder_is_named_with_the_reason() {
        use std::os::unix::fs::PermissionsExt;
        let dir = folder("readonly");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let target = dir.join("m.h5");
        // root writes anyway: then there is nothing to check.
        if TempTarget::named(&target).is_ok() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        let e = save_h5(&small_model(), &target, true, true).unwrap_err();
        check_write_error(e, &target, "cannot be written: permission denied");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_folder_is_named() {
        let m = small_model();
        let p = std::env::temp_dir()
            .join("rk-no-such-folder-here")
            .join("m.keras");
        let e = save_keras(&m, &p, true).unwrap_err().to_string();
        assert!(
            e.contains("does not exist") && e.contains("rk-no-such-folder-here"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_file_is_called_empty() {
        let dir = folder("empty");
        let p = dir.join("empty.h5");
        std::fs::write(&p, b"").unwrap();
        let mut m = small_model();
        for e in [
            load_keras(&p, true).map(|_| ()).unwrap_err(),
            load_h5(&p, true).map(|_| ()).unwrap_err(),
            load_weights_h5(&mut m, &p, false).unwrap_err(),
        ] {
            let msg = e.to_string();
            assert!(msg.contains(&format!("'{}'", p.display())), "{msg}");
            assert!(msg.contains("is empty (0 bytes)"), "{msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
