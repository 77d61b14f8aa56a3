//! Run ownership across nodes sharing an EventStoreDB: this node's id (kept
//! in the data directory), the thread renewing its lease, and the task that
//! resumes the runs of nodes whose lease expired.

use std::collections::BTreeSet;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Addr;
use neonhub_actors::{
    DEFAULT_LEASE, LeaseWatch, Orchestrator, ResumeInterrupted, UnfinishedIndex, close_interrupted,
    renew_lease,
};
use neonhub_events::{Codec, NodeId, SharedStore};
use tokio::sync::oneshot;

use crate::config::DataDir;
use crate::error::{Error, Result};
use crate::service::OnInterrupted;

/// The name of the file in the data directory that keeps this node's
/// generated id, so that it is the same after a restart.
pub const NODE_ID_FILE: &str = "node-id";

/// How a node shares an EventStoreDB with others (ignored on the embedded
/// store, where one process owns every run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// This node's id; `None`: the one kept in the data directory's
    /// [`NODE_ID_FILE`], generated there the first time.
    pub node: Option<NodeId>,
    /// How long this node's lease lasts without a renewal. It renews every
    /// third of it; other nodes resume its runs once they have seen no
    /// renewal for a whole lease.
    pub lease: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            node: None,
            lease: DEFAULT_LEASE,
        }
    }
}

/// This node's id: `configured`, else the one kept in `data`, else a new
/// one (`node-` and 12 random hex digits), written there for next time.
///
/// # Errors
/// [`Error::Io`] reading or writing the file; [`Error::Usage`] for a file
/// that does not hold a valid id.
pub(crate) fn node_id(data: &DataDir, configured: Option<NodeId>) -> Result<NodeId> {
    if let Some(node) = configured {
        return Ok(node);
    }
    let path = data.path().join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => NodeId::new(text.trim()).map_err(|e| {
            Error::Usage(format!(
                "{}: {e}; fix or delete the file, or pass --node-id",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let node = NodeId::new(format!("node-{}", &id[..12]))?;
            std::fs::create_dir_all(data.path())
                .map_err(|e| Error::io(format!("create {}", data.path().display()), e))?;
            std::fs::write(&path, format!("{node}\n"))
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
            Ok(node)
        }
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

/// This node's membership: its lease renewals, on a thread of their own so
/// that a busy actor system never delays them, and the task that takes over
/// the runs of expired nodes.
pub(crate) struct Cluster {
    node: NodeId,
    lease: Duration,
    stop_renewing: Option<oneshot::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

/// What the watcher needs to take runs over.
pub(crate) struct Takeover {
    pub(crate) store: SharedStore,
    pub(crate) codec: Codec,
    pub(crate) orchestrator: Addr<Orchestrator>,
    pub(crate) index: UnfinishedIndex,
    pub(crate) on_interrupted: OnInterrupted,
    pub(crate) max_resumes: u32,
}

impl Cluster {
    /// Renews `node`'s lease once (other nodes see it alive from now on),
    /// then every third of `lease` on a thread of its own.
    ///
    /// # Errors
    /// The store's (the first renewal), or a thread that cannot start.
    pub(crate) async fn join(store: &SharedStore, node: NodeId, lease: Duration) -> Result<Self> {
        if lease < Duration::from_millis(300) {
            return Err(Error::Usage(format!(
                "a lease of {lease:?} is too short: give at least 300 ms (--lease-secs)"
            )));
        }
        renew_lease(&**store, &node, lease).await?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let every = lease / 3;
        let (store, renewing) = (SharedStore::clone(store), node.clone());
        let renewer = std::thread::Builder::new()
            .name("neonhub-lease".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("cannot start the lease renewal's runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async {
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            () = tokio::time::sleep(every) => {}
                        }
                        if let Err(e) = renew_lease(&*store, &renewing, lease).await {
                            tracing::error!(node = %renewing, "could not renew the lease: {e}");
                        }
                    }
                });
            })
            .map_err(|e| Error::io("start the lease renewal thread", e))?;
        tracing::info!(%node, ?lease, "joined the nodes sharing the store");
        Ok(Self {
            node,
            lease,
            stop_renewing: Some(stop),
            renewer: Some(renewer),
            watcher: None,
        })
    }

    /// This node's id.
    pub(crate) fn node(&self) -> &NodeId {
        &self.node
    }

    /// Starts looking, every quarter of a lease, for unfinished runs whose
    /// owner's lease has expired, and resumes them (or closes them, with
    /// [`OnInterrupted::Fail`]). Each claim is the exact-revision append of
    /// the resume: of two nodes claiming one run, one wins and the other
    /// leaves it. Call it inside the actix system.
    pub(crate) fn watch(&mut self, takeover: Takeover) {
        let me = self.node.clone();
        let lease = self.lease;
        self.watcher = Some(actix::spawn(async move {
            let mut takeover = takeover;
            let mut leases = LeaseWatch::new(lease);
            loop {
                tokio::time::sleep(lease / 4).await;
                if let Err(e) = take_over_expired(&mut takeover, &mut leases, &me).await {
                    tracing::warn!("looking for the runs of expired nodes failed: {e}");
                }
            }
        }));
    }

    /// Stops taking runs over (shutdown: no new work), renewals go on.
    pub(crate) fn stop_watching(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }

    /// Stops taking runs over and renewing the lease.
    pub(crate) fn stop(&mut self) {
        self.stop_watching();
        if let Some(stop) = self.stop_renewing.take() {
            let _ = stop.send(());
        }
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One look: reads the log on from the last look, watches the leases of the
/// nodes owning unfinished runs, and takes over the runs of the expired ones.
async fn take_over_expired(
    takeover: &mut Takeover,
    leases: &mut LeaseWatch,
    me: &NodeId,
) -> Result<()> {
    let Takeover {
        store,
        codec,
        orchestrator,
        index,
        on_interrupted,
        max_resumes,
    } = takeover;
    index.catch_up(&**store, codec).await?;
    let mut expired = BTreeSet::new();
    for owner in index.owners() {
        if owner == *me {
            continue;
        }
        leases.observe(&**store, &owner, Instant::now).await?;
        if leases.is_expired(&owner, Instant::now()) {
            expired.insert(owner);
        }
    }
    if expired.is_empty() {
        return Ok(());
    }
    let runs = index.select(|run| run.owner().is_some_and(|o| expired.contains(o)));
    if runs.is_empty() {
        return Ok(());
    }
    let found = runs.len();
    match on_interrupted {
        OnInterrupted::Resume => {
            let report = orchestrator
                .send(ResumeInterrupted {
                    runs,
                    max_resumes: *max_resumes,
                })
                .await
                .map_err(|_| Error::Service("the orchestrator has stopped".to_owned()))??;
            tracing::warn!(
                nodes = ?expired,
                found,
                resumed = report.resumed.len(),
                closed = report.interrupted.len(),
                "took over the runs of nodes whose lease expired"
            );
        }
        OnInterrupted::Fail => {
            let closed = close_interrupted(&**store, codec, runs).await?;
            tracing::warn!(
                nodes = ?expired,
                found,
                closed = closed.len(),
                "closed the runs of nodes whose lease expired"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_node_id_is_kept_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        let first = node_id(&data, None).unwrap();
        assert!(first.as_str().starts_with("node-"), "{first}");
        assert_eq!(
            node_id(&data, None).unwrap(),
            first,
            "stable across restarts"
        );
        let given = NodeId::new("eu-1").unwrap();
        assert_eq!(node_id(&data, Some(given.clone())).unwrap(), given);
        assert_eq!(
            node_id(&data, None).unwrap(),
            first,
            "--node-id writes nothing"
        );

        std::fs::write(dir.path().join("data").join(NODE_ID_FILE), "not/valid\n").unwrap();
        match node_id(&data, None) {
            Err(Error::Usage(message)) => assert!(message.contains("--node-id"), "{message}"),
            other => panic!("a bad node-id file: {other:?}"),
        }
    }
}
