//! Programs from outside crates.io that some tests run (promtool,
//! schemathesis, chromedriver): `tests/install-tools` installs them where
//! each test's fallback path looks. A test that needs one and cannot find it fails, saying
//! how to get it; it never skips silently.

use std::path::PathBuf;

/// The program named by the environment variable `var`, else `name` on the
/// `PATH`, else `fallback` (relative to the test's directory, the package's)
/// if it exists, made absolute. Panics, naming `tests/install-tools`, when
/// none is there.
pub fn required(var: &str, name: &str, fallback: Option<&str>) -> PathBuf {
    if let Some(path) = std::env::var_os(var).map(PathBuf::from) {
        assert!(
            path.is_file(),
            "{var} names {}, which does not exist; run `tests/install-tools` (the first half of the README's test command), which installs {name}",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    on_path
        // Made absolute: a child may run in another directory.
        .or_else(|| {
            fallback
                .map(PathBuf::from)
                .filter(|p| p.is_file())
                .and_then(|p| std::fs::canonicalize(p).ok())
        })
        .unwrap_or_else(|| {
            panic!(
                "this test needs {name}, which is neither in {var} nor on the PATH; \
                 run `tests/install-tools` (the first half of the README's test command), which installs it"
            )
        })
}
