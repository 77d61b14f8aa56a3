//! Opening the event store, in one place: the embedded log or EventStoreDB,
//! for writing (with the data directory's lock) or for reading only.
//!
//! The embedded log locks its own directory. EventStoreDB is shared by
//! design, so beside it the process that writes the AgentRun table holds
//! the data directory's lock file ([`DataDirLock`]) instead.

use std::sync::Arc;

use neonhub_events::{EmbeddedLog, EsdbStore, LogOptions, SharedStore};

use crate::config::{DataDir, EventStoreUrl, StoreConfig};
use crate::error::{Error, Result};

/// What a store is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// As the one writer of this data directory (`serve`, `run`, `demo`, and
    /// the commands that catch the AgentRun table up): the embedded log's
    /// lock, or the data directory's lock beside EventStoreDB. Fails while
    /// another process holds it.
    Write,
    /// For reading only: the embedded log read-only (a snapshot as of now,
    /// beside a running `neonhub serve` or not; it changes no byte, takes no
    /// lock and creates nothing, and fails naming the path when there is no
    /// log); EventStoreDB without any lock.
    Read,
}

/// An opened event store, kept typed so that it can be closed and so that
/// the embedded log's own checks (its hash chain) stay reachable.
#[derive(Debug)]
pub(crate) enum Store {
    /// The embedded log in `<data-dir>/log/`.
    Embedded(Arc<EmbeddedLog>),
    /// EventStoreDB, with the data directory's lock when opened for writing:
    /// the AgentRun table in it has one writer.
    EventStoreDb {
        /// The connection.
        store: Arc<EsdbStore>,
        /// Held while the store is open for writing.
        _lock: Option<DataDirLock>,
    },
}

impl Store {
    /// Opens the store `config` names for `access`.
    ///
    /// # Errors
    /// For [`Access::Write`] while another process writes this data
    /// directory: [`neonhub_events::Error::Locked`] (embedded) or
    /// [`Error::DataDirLocked`] (EventStoreDB). [`Error::Usage`] for a
    /// malformed connection string; the store's.
    pub(crate) fn open(config: &StoreConfig, data: &DataDir, access: Access) -> Result<Self> {
        match (config, access) {
            (StoreConfig::Embedded, Access::Write) => Ok(Store::Embedded(open_embedded(data)?)),
            (StoreConfig::Embedded, Access::Read) => {
                Ok(Store::Embedded(open_embedded_for_reading(data)?))
            }
            (StoreConfig::EventStoreDb { url }, Access::Write) => {
                let lock = DataDirLock::acquire(data)?;
                Ok(Store::EventStoreDb {
                    store: connect_eventstoredb(url)?,
                    _lock: Some(lock),
                })
            }
            (StoreConfig::EventStoreDb { url }, Access::Read) => Ok(Store::EventStoreDb {
                store: connect_eventstoredb(url)?,
                _lock: None,
            }),
        }
    }

    /// Opens the store for writing, or `None` while another process (a
    /// running `neonhub serve`) writes this data directory.
    ///
    /// # Errors
    /// As [`Store::open`], but for the lock being held.
    pub(crate) fn open_unless_in_use(config: &StoreConfig, data: &DataDir) -> Result<Option<Self>> {
        match Store::open(config, data, Access::Write) {
            Ok(store) => Ok(Some(store)),
            Err(
                Error::Store(neonhub_events::Error::Locked { .. }) | Error::DataDirLocked { .. },
            ) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The store, shared with whatever reads or appends to it.
    pub(crate) fn shared(&self) -> SharedStore {
        match self {
            Store::Embedded(log) => Arc::clone(log) as SharedStore,
            Store::EventStoreDb { store, .. } => Arc::clone(store) as SharedStore,
        }
    }

    /// Closes the store: the embedded log flushes and releases its lock;
    /// EventStoreDB's connection closes when its last handle goes (nothing
    /// is buffered on this side).
    pub(crate) fn close(&self) {
        match self {
            Store::Embedded(log) => log.close(),
            Store::EventStoreDb { .. } => {}
        }
    }
}

/// The data directory's lock beside a store that is not embedded: held by
/// the process that writes the AgentRun table (`serve`, `run`, `demo`, and
/// the commands that catch the table up), released when dropped.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock, creating the data directory if needed.
    ///
    /// # Errors
    /// [`Error::DataDirLocked`] while another process holds it; I/O errors.
    fn acquire(data: &DataDir) -> Result<Self> {
        std::fs::create_dir_all(data.path())
            .map_err(|e| Error::io(format!("create {}", data.path().display()), e))?;
        let path = data.lock_path();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::DataDirLocked {
                dir: data.display_path(),
                lock: path,
            }),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io(format!("lock {}", path.display()), e))
            }
        }
    }
}

/// Connects to EventStoreDB (lazily: the first request opens the
/// connection). Messages never show the URL's credentials.
///
/// # Errors
/// [`Error::Usage`] for a malformed connection string.
fn connect_eventstoredb(url: &EventStoreUrl) -> Result<Arc<EsdbStore>> {
    EsdbStore::connect(url.expose()).map(Arc::new).map_err(|e| {
        Error::Usage(format!(
            "--eventstore-url {url}: {} (expected e.g. esdb://localhost:2113?tls=false)",
            url.scrub(&e.to_string())
        ))
    })
}

/// Opens the embedded log alone, with its lock (for the commands that only
/// read or verify it).
///
/// # Errors
/// The store's: [`neonhub_events::Error::Locked`] while `neonhub serve` runs
/// on the same data directory.
pub fn open_embedded(data: &DataDir) -> Result<Arc<EmbeddedLog>> {
    Ok(Arc::new(EmbeddedLog::open(
        data.log_dir(),
        LogOptions::default(),
    )?))
}

/// Opens the embedded log for reading only: it changes no byte (a torn tail
/// is left unread, not cut) and fails with
/// [`neonhub_events::Error::NotALog`] naming the path when the data
/// directory holds no log.
fn open_embedded_for_reading(data: &DataDir) -> Result<Arc<EmbeddedLog>> {
    Ok(Arc::new(EmbeddedLog::open_read_only(
        data.log_dir(),
        LogOptions::default(),
    )?))
}

/// Whether another process (a running `neonhub serve`) writes this data
/// directory's embedded log. Takes and releases the log's locks without
/// creating or changing any file.
pub(crate) fn embedded_in_use(data: &DataDir) -> Result<bool> {
    let dir = data.log_dir();
    let candidates = [dir.clone(), dir.join(EmbeddedLog::LOCK_FILE)];
    for path in candidates.iter().filter(|p| p.exists()) {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(true),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("lock {}", path.display()), e));
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_and_readers_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let config = StoreConfig::Embedded;
        let writer = Store::open(&config, &data, Access::Write).unwrap();
        assert!(matches!(
            Store::open(&config, &data, Access::Write),
            Err(Error::Store(neonhub_events::Error::Locked { .. }))
        ));
        assert!(Store::open_unless_in_use(&config, &data).unwrap().is_none());
        let reader = Store::open(&config, &data, Access::Read).unwrap();
        assert!(matches!(reader, Store::Embedded(_)));
        writer.close();
        drop(writer);
        assert!(Store::open_unless_in_use(&config, &data).unwrap().is_some());
    }

    #[test]
    fn the_data_directory_lock_has_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("new"));
        let lock = DataDirLock::acquire(&data).unwrap();
        assert!(matches!(
            DataDirLock::acquire(&data),
            Err(Error::DataDirLocked { .. })
        ));
        drop(lock);
        DataDirLock::acquire(&data).unwrap();
    }
}
