//! The reporting queries return exactly what a brute-force pass over every
//! row gives: filtered lists newest first and longest first across cursor
//! pages, one run with its children, a request's tree, the per-target
//! report and the timeline.

use std::collections::BTreeMap;

use neonhub_events::{ErrorKind, RunKind, Timestamp};
use neonhub_projections::{
    AgentRun, Cursor, Error, Progress, RebuildOptions, RunFilter, RunQueries, RunSort, RunStatus,
    TargetReport, Timeline, TimelineBy, rebuild,
};
use neonhub_test_support::projections as support;

fn newest_first(mut runs: Vec<AgentRun>) -> Vec<AgentRun> {
    runs.sort_by_key(|r| std::cmp::Reverse((r.started_at, r.first_position)));
    runs
}

fn longest_first(runs: Vec<AgentRun>) -> Vec<AgentRun> {
    let mut runs: Vec<AgentRun> = runs
        .into_iter()
        .filter(|r| r.duration_micros.is_some())
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse((r.duration_micros, r.first_position)));
    runs
}

fn paginate(q: &RunQueries, filter: &RunFilter, page: usize) -> Vec<AgentRun> {
    paginate_sorted(q, filter, RunSort::Started, page)
}

fn paginate_sorted(
    q: &RunQueries,
    filter: &RunFilter,
    sort: RunSort,
    page: usize,
) -> Vec<AgentRun> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let p = q.list_sorted(filter, sort, cursor, page).unwrap();
        assert!(p.runs.len() <= page);
        out.extend(p.runs);
        match p.next {
            // The cursor survives a trip through its text form.
            Some(c) => cursor = Some(c.to_string().parse().unwrap()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_match_a_brute_force_pass() {
    let mut log = support::TestLog::in_memory();
    let events = support::events(1_500, 11);
    log.append(&events).await;
    let db = log.db("runs.sqlite");
    rebuild(
        &log.store,
        &db,
        RebuildOptions::default().progress(Progress::Hidden),
    )
    .await
    .unwrap();
    let all = support::rows(&db);
    let q = RunQueries::open(&db).unwrap();

    let mid = {
        let mut starts: Vec<u64> = all.iter().map(|r| r.started_at.0).collect();
        starts.sort_unstable();
        (starts[starts.len() / 4], starts[starts.len() * 3 / 4])
    };
    let some_correlation = all[all.len() / 2].correlation_id;
    let filters = vec![
        RunFilter::new(),
        RunFilter::new().target("email"),
        RunFilter::new().target("gmail").status(RunStatus::Failed),
        RunFilter::new().kind(RunKind::Connector),
        RunFilter::new()
            .kind(RunKind::Agent)
            .status(RunStatus::Running),
        RunFilter::new().status(RunStatus::Succeeded),
        RunFilter::new().intent("email.send"),
        RunFilter::new().correlation_id(some_correlation),
        RunFilter::new().started_between(Some(Timestamp(mid.0)), Some(Timestamp(mid.1))),
        RunFilter::new()
            .target("slack")
            .started_between(Some(Timestamp(mid.0)), None),
        RunFilter::new().target("nobody"),
        RunFilter::new().error_kind(ErrorKind::Timeout),
        RunFilter::new()
            .error_kind(ErrorKind::RateLimited)
            .kind(RunKind::Connector),
    ];
    for filter in &filters {
        let matching: Vec<AgentRun> = all.iter().filter(|r| filter.matches(r)).cloned().collect();
        let expected = newest_first(matching.clone());
        let longest = longest_first(matching);
        for page in [1, 37, 1000] {
            if page == 1 && expected.len() > 200 {
                continue;
            }
            assert_eq!(
                paginate(&q, filter, page),
                expected,
                "{filter:?}, page {page}"
            );
            assert_eq!(
                paginate_sorted(&q, filter, RunSort::Duration, page),
                longest,
                "{filter:?}, longest first, page {page}"
            );
        }
    }
    assert!(paginate(&q, &filters[11], 50).len() > 3);
    // Filters that match something really match (the test is not vacuous).
    assert!(paginate(&q, &filters[2], 50).len() > 3);
    assert!(paginate(&q, &filters[7], 50).len() > 1);

    // One run with its children.
    let parent = all
        .iter()
        .find(|r| {
            all.iter()
                .filter(|c| c.parent_run_id == Some(r.run_id))
                .count()
                >= 2
        })
        .unwrap();
    let detail = q.get(parent.run_id).unwrap().unwrap();
    assert_eq!(&detail.run, parent);
    let mut children: Vec<AgentRun> = all
        .iter()
        .filter(|c| c.parent_run_id == Some(parent.run_id))
        .cloned()
        .collect();
    children.sort_by_key(|c| (c.started_at, c.first_position));
    assert_eq!(detail.children, children);
    assert!(
        children
            .iter()
            .all(|c| c.correlation_id == parent.correlation_id)
    );
    assert_eq!(q.get(neonhub_events::RunId::new()).unwrap(), None);

    // The per-target report, whole range and a window.
    for (from, before) in [
        (None, None),
        (Some(Timestamp(mid.0)), Some(Timestamp(mid.1))),
    ] {
        let report = q.report(from, before).unwrap();
        let mut expected: BTreeMap<(&str, String), Vec<&AgentRun>> = BTreeMap::new();
        for r in all.iter().filter(|r| {
            from.is_none_or(|f| r.started_at >= f) && before.is_none_or(|b| r.started_at < b)
        }) {
            expected
                .entry((r.kind.as_str(), r.target.clone()))
                .or_default()
                .push(r);
        }
        assert_eq!(report.len(), expected.len());
        for (t, ((kind, target), runs)) in report.iter().zip(&expected) {
            let count = |s| runs.iter().filter(|r| r.status == s).count() as u64;
            let mut d: Vec<u64> = runs.iter().filter_map(|r| r.duration_micros).collect();
            d.sort_unstable();
            let rank = |p: f64| d[((p * d.len() as f64).ceil() as usize).max(1) - 1];
            let (ok, failed) = (count(RunStatus::Succeeded), count(RunStatus::Failed));
            let want = TargetReport {
                kind: t.kind,
                target: target.clone(),
                runs: runs.len() as u64,
                succeeded: ok,
                failed,
                running: count(RunStatus::Running),
                success_rate: Some(ok as f64 / (ok + failed) as f64),
                p50_micros: Some(rank(0.5)),
                p95_micros: Some(rank(0.95)),
                p99_micros: Some(rank(0.99)),
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: 0.0,
            };
            assert_eq!(t.kind.as_str(), *kind);
            assert_eq!(t, &want);
        }
    }
    assert!(matches!(
        q.list(&RunFilter::new(), None, 0),
        Err(Error::InvalidInput(_))
    ));

    // A request's tree, by its correlation and by any of its runs.
    let mut expected: Vec<AgentRun> = all
        .iter()
        .filter(|r| r.correlation_id == parent.correlation_id)
        .cloned()
        .collect();
    expected.sort_by_key(|r| r.first_position);
    let tree = q.tree(parent.correlation_id).unwrap().unwrap();
    assert_eq!(tree.runs, expected);
    assert!(!tree.truncated);
    assert_eq!(q.tree(*children[0].run_id.as_uuid()).unwrap(), Some(tree));

    // The timeline, by hour and by day, all runs and one target's.
    let first = all.iter().map(|r| r.started_at.0).min().unwrap();
    let last = all.iter().map(|r| r.started_at.0).max().unwrap();
    for by in [TimelineBy::Hour, TimelineBy::Day] {
        for target in [None, Some("gmail")] {
            let mut query = Timeline::new(by, Timestamp(first), Timestamp(last + 1));
            if let Some(t) = target {
                query = query.target(t);
            }
            let buckets = q.timeline(&query).unwrap();
            let width = by.micros();
            assert_eq!(buckets[0].start.0, first - first % width);
            let mut total = 0;
            for b in &buckets {
                let runs: Vec<&AgentRun> = all
                    .iter()
                    .filter(|r| r.started_at.0 >= b.start.0 && r.started_at.0 < b.start.0 + width)
                    .filter(|r| target.is_none_or(|t| r.target == t))
                    .collect();
                let mut d: Vec<u64> = runs.iter().filter_map(|r| r.duration_micros).collect();
                d.sort_unstable();
                let rank = |p: f64| {
                    (!d.is_empty()).then(|| d[((p * d.len() as f64).ceil() as usize).max(1) - 1])
                };
                assert_eq!(b.runs, runs.len() as u64);
                let failed = runs.iter().filter(|r| r.status == RunStatus::Failed);
                assert_eq!(b.failures, failed.count() as u64);
                assert_eq!(
                    (b.p50_micros, b.p95_micros, b.p99_micros),
                    (rank(0.5), rank(0.95), rank(0.99))
                );
                total += b.runs;
            }
            let want = all
                .iter()
                .filter(|r| target.is_none_or(|t| r.target == t))
                .count() as u64;
            assert_eq!(total, want, "{by:?} {target:?}");
        }
    }
}
