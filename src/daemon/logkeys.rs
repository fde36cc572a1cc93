//! Object keys as logs and error messages show them. Keys often hold names, places or plates
//! (`cam7/2026-11-28/zoe-at-home.jpg`), and logs usually leave the ingest account, so by default
//! a key is shown as the start of its SHA-256 (the audit record holds the whole hash, so an
//! operator who knows a key can find its lines). `worker.log_raw_keys = true` shows keys as they are.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::manifest::sha256_hex;

static RAW: AtomicBool = AtomicBool::new(false);

/// Shows keys as they are (`true`) or hashed (`false`, the default) from now on, process-wide.
pub fn show_raw_keys(raw: bool) {
    RAW.store(raw, Ordering::Relaxed);
}

/// A key, displayed as configured.
pub struct LoggedKey<'a>(pub &'a str);

impl fmt::Display for LoggedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if RAW.load(Ordering::Relaxed) {
            f.write_str(self.0)
        } else {
            write!(f, "key-sha256:{}", &sha256_hex(self.0.as_bytes())[..16])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashed_unless_raw_keys_are_asked_for() {
        let key = "cam 7/Zoë & co.jpg";
        let hashed = format!("key-sha256:{}", &sha256_hex(key.as_bytes())[..16]);
        assert_eq!(LoggedKey(key).to_string(), hashed);
        show_raw_keys(true);
        assert_eq!(LoggedKey(key).to_string(), key);
        show_raw_keys(false);
        assert_eq!(LoggedKey(key).to_string(), hashed);
    }
}
