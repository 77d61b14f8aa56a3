//! `[store]`: where the data lives (the data directory, the embedded log's
//! directory, the AgentRun table's SQLite file) and which backend holds the
//! log. `--data-dir`, `--store` and `--eventstore-url` (or their
//! variables) override it.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::secret::{Setting, read_source};
use super::{ConfigError, Locator};
use crate::config::{DataDir, EventStoreUrl, StoreConfig, StoreKind};

/// The data directory when neither `--data-dir` nor the file names one.
pub const DEFAULT_DATA_DIR: &str = "./data";

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    backend: Option<toml::Spanned<String>>,
    data_dir: Option<toml::Spanned<String>>,
    log_dir: Option<toml::Spanned<String>>,
    projection: Option<toml::Spanned<String>>,
    eventstore_url: Option<toml::Spanned<toml::Value>>,
}

/// `[store]`. Relative paths are taken from the working directory, as the
/// flags' are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreSection {
    /// `backend`: `embedded` or `eventstoredb` (`--store` overrides it).
    pub backend: Option<StoreKind>,
    /// `data_dir` (`--data-dir` overrides it; default `./data`).
    pub data_dir: Option<PathBuf>,
    /// `log_dir`: the embedded log's directory (default `<data_dir>/log`).
    pub log_dir: Option<PathBuf>,
    /// `projection`: the AgentRun table's SQLite file (default
    /// `<data_dir>/agent_runs.sqlite`).
    pub projection: Option<PathBuf>,
    /// `eventstore_url` (`--eventstore-url` overrides it): written in the
    /// file only without credentials, else read from a source.
    eventstore_url: Option<Setting>,
}

impl StoreSection {
    /// The data directory in force: `flag` (`--data-dir` or
    /// `NEONHUB_DATA_DIR`) if given, else the file's, else `./data`; with
    /// the file's log directory and projection file.
    pub fn data_dir_under(&self, flag: Option<PathBuf>) -> DataDir {
        let dir = flag
            .or_else(|| self.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mut data = DataDir::new(dir);
        if let Some(log) = &self.log_dir {
            data = data.with_log_dir(log);
        }
        if let Some(projection) = &self.projection {
            data = data.with_projection_path(projection);
        }
        data
    }

    /// The store in force: `kind` and `url` (the flags or their variables)
    /// if given, else the file's.
    ///
    /// # Errors
    /// A message for people: `eventstoredb` without a URL anywhere.
    pub fn store_under(
        &self,
        kind: Option<StoreKind>,
        url: Option<&EventStoreUrl>,
    ) -> Result<StoreConfig, String> {
        let kind = kind.or(self.backend).unwrap_or_default();
        let url = url
            .map(EventStoreUrl::expose)
            .or_else(|| self.eventstore_url.as_ref().map(Setting::value));
        StoreConfig::from_args(kind, url)
    }

    pub(super) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[store]")?;
        match self.backend {
            Some(kind) => writeln!(f, "backend = \"{kind}\"")?,
            None => writeln!(f, "# backend: --store, default \"embedded\"")?,
        }
        let path =
            |key: &str, path: &Option<PathBuf>, default: &str, f: &mut fmt::Formatter<'_>| {
                match path {
                    Some(path) => writeln!(f, "{key} = {:?}", path.display().to_string()),
                    None => writeln!(f, "# {key}: {default}"),
                }
            };
        path(
            "data_dir",
            &self.data_dir,
            "--data-dir, default \"./data\"",
            f,
        )?;
        path("log_dir", &self.log_dir, "<data_dir>/log", f)?;
        path(
            "projection",
            &self.projection,
            "<data_dir>/agent_runs.sqlite",
            f,
        )?;
        match &self.eventstore_url {
            Some(Setting::Plain(url)) => {
                // Checked to hold no credentials, but shown as the store
                // would show it all the same.
                let shown =
                    EventStoreUrl::new(url.clone()).map_or_else(|_| url.clone(), |u| u.to_string());
                writeln!(f, "eventstore_url = {shown:?}")
            }
            Some(read) => writeln!(f, "eventstore_url = {read}"),
            None => writeln!(f, "# eventstore_url: --eventstore-url"),
        }
    }
}

/// Checks `[store]`.
///
/// # Errors
/// A message naming the file, line and key for a backend that is not
/// `embedded` or `eventstoredb`, an empty path, a connection string with
/// credentials written in the file, or a source that cannot be read.
pub(super) fn parse_store(
    raw: RawStore,
    locator: &Locator<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreSection, ConfigError> {
    let backend = raw
        .backend
        .map(|b| match b.get_ref().trim() {
            "embedded" => Ok(StoreKind::Embedded),
            "eventstoredb" => Ok(StoreKind::EventStoreDb),
            other => Err(locator.at(
                b.span(),
                format!("store.backend: {other:?} is not a backend: write \"embedded\" or \"eventstoredb\""),
            )),
        })
        .transpose()?;
    let path = |key: &str, given: Option<toml::Spanned<String>>| {
        given
            .map(|p| {
                if p.get_ref().trim().is_empty() {
                    Err(locator.at(p.span(), format!("store.{key}: give a path")))
                } else {
                    Ok(PathBuf::from(p.get_ref()))
                }
            })
            .transpose()
    };
    let data_dir = path("data_dir", raw.data_dir)?;
    let log_dir = path("log_dir", raw.log_dir)?;
    let projection = path("projection", raw.projection)?;
    let eventstore_url = raw
        .eventstore_url
        .map(|value| {
            let setting = read_source("store.eventstore_url", &value, true, locator, var)?;
            if let Setting::Plain(url) = &setting {
                let checked = EventStoreUrl::new(url.clone())
                    .map_err(|e| locator.at(value.span(), format!("store.eventstore_url: {e}")))?;
                if checked.to_string() != checked.expose() {
                    return Err(locator.at(
                        value.span(),
                        "store.eventstore_url: this connection string holds credentials, and a \
                         secret is never written in the configuration file: write \
                         `eventstore_url = { env = \"VAR\" }` or `eventstore_url = { file = \
                         \"/run/secrets/NAME\" }`"
                            .to_owned(),
                    ));
                }
            }
            Ok(setting)
        })
        .transpose()?;
    Ok(StoreSection {
        backend,
        data_dir,
        log_dir,
        projection,
        eventstore_url,
    })
}
