//! Allocations that may fail. A weight of a model too large for the machine must become
//! an error naming the layer and the sizes, not an abort of the whole R session (the
//! global allocator aborts the process when it cannot serve a request).

use crate::error::{Error, Result};

/// Memory the system says is available now (`MemAvailable`), where it says.
pub fn available_bytes() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Requests below this are not worth a look at /proc.
const WORTH_CHECKING: usize = 64 << 20;

/// The error for `what` needing `bytes` when the system has `free` bytes free, if it is
/// more (requests under `WORTH_CHECKING` pass).
pub fn room_error(
    bytes: usize,
    free: Option<usize>,
    what: impl FnOnce() -> String,
) -> Option<Error> {
    let free = free?;
    (bytes >= WORTH_CHECKING && bytes > free).then(|| Error::OutOfMemory {
        what: what(),
        bytes,
        available: Some(free),
    })
}

/// Refuses `what` when its `bytes` are more than the system has free. Asked before
/// allocating: on Linux a request far over what is free can succeed (overcommit) and
/// then get the process killed as the pages are touched.
pub fn check_room(bytes: usize, what: impl FnOnce() -> String) -> Result<()> {
    if bytes < WORTH_CHECKING {
        return Ok(());
    }
    match room_error(bytes, available_bytes(), what) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A vector of `n` f32 values (unset: capacity only), or an error naming `what` when the
/// memory cannot be had (`check_room`, then the allocator's own answer).
pub fn try_f32_vec(n: usize, what: impl Fn() -> String) -> Result<Vec<f32>> {
    let fail = || Error::OutOfMemory {
        what: what(),
        bytes: n.saturating_mul(4),
        available: available_bytes(),
    };
    let bytes = n.checked_mul(4).ok_or_else(fail)?;
    check_room(bytes, &what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| fail())?;
    Ok(v)
}

/// Adds the layer's name to an out-of-memory error raised while building it.
pub fn in_layer(e: Error, layer: &str) -> Error {
    match e {
        Error::OutOfMemory {
            what,
            bytes,
            available,
        } => Error::OutOfMemory {
            what: format!("layer '{layer}': {what}"),
            bytes,
            available,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_beyond_the_machine_is_an_error_naming_it() {
        let e = try_f32_vec(usize::MAX / 8, || "the kernel (huge)".into()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("the kernel (huge) needs "), "{msg}");
        assert!(msg.contains("GB"), "{msg}");
        assert_eq!(
            in_layer(e, "dense").to_string().split(':').next(),
            Some("layer 'dense'")
        );
        let v = try_f32_vec(1000, || unreachable!()).unwrap();
        assert!(v.capacity() >= 1000 && v.is_empty());
    }
}
