//! Keras-style unique names: `dense`, `dense_1`, `dense_2`, ... per prefix, per session.

use std::collections::HashMap;
use std::sync::Mutex;

static COUNTS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

pub fn unique_name(prefix: &str) -> String {
    let mut guard = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let counts = guard.get_or_insert_with(HashMap::new);
    let n = counts.entry(prefix.to_string()).or_insert(0);
    let name = if *n == 0 {
        prefix.to_string()
    } else {
        format!("{prefix}_{n}")
    };
    *n += 1;
    name
}

/// Forgets the counters (keras3's `clear_session()`).
pub fn reset() {
    *COUNTS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_up_per_prefix() {
        let a = unique_name("naming_test_layer");
        let b = unique_name("naming_test_layer");
        assert_eq!(a, "naming_test_layer");
        assert_eq!(b, "naming_test_layer_1");
    }
}
