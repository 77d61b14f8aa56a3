//! The contract on reopening: the log reads back the same and continues.

use std::collections::HashMap;

use super::Backend;
use super::support::{event, read_all_matching, read_stream_all, unique_stream};
use crate::ids::{Revision, StreamId};
use crate::store::ExpectedRevision;

/// After closing and reopening, every event reads back the same and the
/// next append continues the stream's revisions and the global order.
pub async fn reopening_keeps_every_event_and_revision(backend: &impl Backend) {
    let store = backend.open().await;
    let start = store.head().await.unwrap();
    let streams: Vec<StreamId> = (0..5).map(|i| unique_stream(&format!("re{i}"))).collect();
    for round in 0..4u64 {
        for (i, s) in streams.iter().enumerate() {
            store
                .append(s, ExpectedRevision::Any, vec![event(round * 10 + i as u64)])
                .await
                .unwrap();
        }
    }
    let keep = |s: &StreamId| streams.contains(s);
    let before = read_all_matching(&*store, start, keep).await;
    backend.close(store).await;

    let store = backend.open().await;
    let after = read_all_matching(&*store, start, keep).await;
    assert_eq!(before, after, "reopen changed the log");
    let r = store
        .append(
            &streams[0],
            ExpectedRevision::Exact(Revision(3)),
            vec![event(100)],
        )
        .await
        .unwrap();
    assert_eq!(r.next_expected, Revision(4));
    assert!(r.first_position > before.last().unwrap().position);
    let per_stream: HashMap<&StreamId, usize> = streams
        .iter()
        .map(|s| (s, 4 + usize::from(*s == streams[0])))
        .collect();
    for (s, n) in per_stream {
        assert_eq!(read_stream_all(&*store, s).await.len(), n);
    }
    backend.close(store).await;
}
