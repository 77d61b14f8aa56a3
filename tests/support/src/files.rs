//! Fingerprints of every file under a directory, to prove a command changed
//! no byte of a data directory.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

/// The length and a hash of the bytes of every file under `dir` (recursively),
/// by path relative to `dir`. For telling whether files changed, not a
/// cryptographic digest.
pub fn fingerprints(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let mut h = DefaultHasher::new();
            h.write(&bytes);
            out.insert(
                path.strip_prefix(dir).unwrap().to_path_buf(),
                (bytes.len() as u64, h.finish()),
            );
        }
    }
    out
}

/// Asserts that no file under `dir` was added, removed or changed since
/// `before` was taken with [`fingerprints`], naming each that was.
pub fn assert_unchanged(dir: &Path, before: &BTreeMap<PathBuf, (u64, u64)>) {
    let after = fingerprints(dir);
    let mut changed = Vec::new();
    for (path, print) in before {
        match after.get(path) {
            None => changed.push(format!("{} was removed", path.display())),
            Some(p) if p != print => changed.push(format!(
                "{} changed ({} bytes before, {} after)",
                path.display(),
                print.0,
                p.0
            )),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        changed.push(format!("{} was added", path.display()));
    }
    assert!(changed.is_empty(), "files changed: {}", changed.join("; "));
}
