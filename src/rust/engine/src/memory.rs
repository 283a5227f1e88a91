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

/// A vector of `n` f32 values (unset: capacity only), or an error naming `what` when the
/// memory cannot be had. Asks the system first: on Linux a request far over what is free
/// can succeed (overcommit) and then get the process killed as the pages are touched.
pub fn try_f32_vec(n: usize, what: impl FnOnce() -> String) -> Result<Vec<f32>> {
    let bytes = n.saturating_mul(4);
    let fail = |what: String| Error::OutOfMemory {
        what,
        bytes,
        available: available_bytes(),
    };
    if n.checked_mul(4).is_none() {
        return Err(fail(what()));
    }
    // Small requests are not worth a look at /proc.
    if bytes >= 64 << 20 {
        if let Some(free) = available_bytes() {
            if bytes > free {
                return Err(fail(what()));
            }
        }
    }
    let mut v = Vec::new();
    if v.try_reserve_exact(n).is_err() {
        return Err(fail(what()));
    }
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
