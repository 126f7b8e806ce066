//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// A file under `../shared/data` beside the checkout. Panics with a clear message when it is
/// missing: tests never skip silently, and CI provides the folder.
pub fn shared_data(relative: &str) -> PathBuf {
    let root = std::env::var_os("MEDLINK_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let path = root.join(relative);
    assert!(
        path.exists(),
        "test data {} is missing: ../shared/data must sit beside the checkout (or set MEDLINK_SHARED_DATA)",
        path.display()
    );
    path
}

/// A file under the project's `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}
