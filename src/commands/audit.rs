//! `neonhub audit verify`: the hash chain of the whole log, every event
//! decoding with this build's codec (upcasters included), and the AgentRun
//! table matching the log. On EventStoreDB there is no hash chain (it is a
//! property of the embedded log): the other two checks are made.

use neonhub_events::{Codec, Position};
use neonhub_projections::{
    RunEventFeed, run_event_feed, verify_fed as verify_table_fed, verify_from as verify_table_from,
};

use crate::anchor::Anchor;
use crate::cli::{AnchorArgs, Format, VerifyArgs};
use crate::config::{DataDir, StoreConfig};
use crate::error::{Error, Result};
use crate::store::{Access, Store};

/// Events decoded per read.
const PAGE: usize = 4096;

pub(super) async fn verify(data: DataDir, store: StoreConfig, args: VerifyArgs) -> Result<()> {
    if (!args.anchors.is_empty() || args.archive.is_some())
        && !matches!(store, StoreConfig::Embedded)
    {
        return Err(Error::Usage(
            "--anchor and --archive check the embedded log's hash chain; EventStoreDB has none"
                .to_owned(),
        ));
    }
    // Reading only: verify changes no byte of the log or the table, and
    // runs beside a running `serve`. A table behind the log is compared up
    // to its checkpoint; the events after it are decoded below.
    let opened = Store::open(&store, &data, Access::Read)?;
    let path = data.projection_path();
    // On the embedded log with a table, the chain check below hands the run
    // events it has checked to the table comparison: the log is read once.
    let (feed, fed) = match &opened {
        Store::Embedded(_) if path.exists() => {
            let (feed, fed) = run_event_feed(FED_EVENTS, FED_BATCHES);
            (Some(feed), Some(fed))
        }
        _ => (None, None),
    };
    // 1. The embedded log's hash chain (EventStoreDB has none), on a thread
    //    of its own beside the table comparison below (both read the whole
    //    log; on two cores the check takes the longer of the two, not their
    //    sum). Its verdict comes first: a broken chain is reported as such,
    //    whatever the comparison found.
    let chain_check = match &opened {
        Store::Embedded(log) => {
            if let Some(torn) = log.torn_tail() {
                eprintln!(
                    "note: the log ends with {} bytes of a torn write at byte offset {} of {} \
                     ({}): an append that was never acknowledged, left unread; the next \
                     `neonhub serve` cuts it into a quarantine file beside the segment",
                    torn.bytes,
                    torn.offset,
                    torn.segment.display(),
                    torn.reason
                );
            }
            let log = log.clone();
            let archive = args.archive.clone();
            let handle = std::thread::Builder::new()
                .name("neonhub-verify-chain".into())
                .spawn(move || verify_chain(&log, archive.as_deref(), feed))
                .map_err(|e| Error::io("start the hash chain check", e))?;
            Some(handle)
        }
        Store::EventStoreDb { .. } => None,
    };
    // Events before it were archived: the table's rows of runs begun there
    // are kept and not compared, and they are not decoded below.
    let archived_before = match &opened {
        Store::Embedded(log) => log.archived_before(),
        Store::EventStoreDb { .. } => Position(0),
    };
    let log = opened.shared();
    // 2. The table matches the log up to its checkpoint, which decodes
    //    every run event before it.
    // No table is derived data missing, not a fault of the log: the log is
    // verified alone, and the output says so.
    let compared = if path.exists() {
        let compared = match fed {
            Some(fed) => verify_table_fed(&*log, &path, archived_before, fed).await,
            None => verify_table_from(&*log, &path, archived_before).await,
        };
        Some(compared.map_err(|e| match e {
            neonhub_projections::Error::Store(neonhub_events::Error::Decode {
                position, ..
            }) => Error::AuditFailed {
                position,
                reason: format!("does not decode with this build: {e}"),
            },
            other => other.into(),
        }))
    } else {
        None
    };
    //    The chain's verdict, and the anchors it must still hold.
    let chain = match (chain_check, &opened) {
        (Some(handle), Store::Embedded(embedded)) => {
            let chain = handle
                .join()
                .map_err(|_| Error::Service("the hash chain check panicked".to_owned()))??;
            let unchecked =
                check_anchors(embedded, &chain, &args.anchors, args.archive.as_deref())?;
            Some((chain, unchecked))
        }
        _ => None,
    };
    let table = match compared {
        Some(table) => {
            let table = table?;
            check_table(&table)?;
            Some(table)
        }
        None => None,
    };
    // 3. Every run event past the table's checkpoint (all of them without a
    //    table) decodes with this build too.
    let codec = Codec::new();
    let mut from = table
        .as_ref()
        .map_or(Position(0), |t| t.checkpoint)
        .max(archived_before);
    let mut run_events = table.as_ref().map_or(0, |t| t.run_events);
    loop {
        let page = log.read_all(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.position.next();
        for event in page.iter().filter(|e| e.stream.run_id().is_some()) {
            codec.decode(event).map_err(|e| Error::AuditFailed {
                position: event.position,
                reason: format!("does not decode with this build: {e}"),
            })?;
            run_events += 1;
        }
    }
    let compared = match &table {
        Some(table) if archived_before.0 > 0 => format!(
            "{} runs of the live log match the AgentRun table; its rows of runs begun in the \
             archive are kept and not compared, nor are its metric series, which count them",
            table.runs_in_log
        ),
        Some(table) => format!(
            "{} runs match the AgentRun table, and so do its {} metric series",
            table.rows, table.series
        ),
        None => format!(
            "no AgentRun table at {}: the log was verified alone (build the table with \
             `neonhub replay`)",
            path.display()
        ),
    };
    match chain {
        Some((chain, unchecked)) => println!(
            "ok: {} events, head position {}, head hash {} ({run_events} run events decode, {compared}){}{}",
            chain.events,
            chain.head,
            chain.head_hash_hex(),
            anchors_held(args.anchors.len() - unchecked, unchecked),
            archived_note(&chain, archived_before, args.archive.as_deref())
        ),
        None => println!(
            "ok (eventstoredb: no hash chain, that is the embedded log's; checked instead: \
             {run_events} run events decode with this build, {compared}, head position {})",
            log.head().await?
        ),
    }
    Ok(())
}

/// 2. The table compared with the log: not ahead of it, and every
///    difference listed.
fn check_table(table: &neonhub_projections::VerifyReport) -> Result<()> {
    if table.is_ahead() {
        let ahead = neonhub_projections::Error::AheadOfLog {
            checkpoint: table.checkpoint,
            head: table.head,
        };
        return Err(Error::Audit(ahead.to_string()));
    }
    if table.matches() {
        return Ok(());
    }
    for mismatch in &table.mismatches {
        eprintln!("mismatch: {mismatch}");
    }
    let unlisted = table.mismatch_count - table.mismatches.len() as u64;
    if unlisted > 0 {
        eprintln!("... and {unlisted} more mismatches not listed");
    }
    let what = format!(
        "the AgentRun table does not match the log: {} mismatch(es), listed above \
         (rebuild the table with `neonhub replay`; never edit the log)",
        table.mismatch_count
    );
    Err(match table.first_bad_position {
        Some(position) => Error::AuditFailed {
            position,
            reason: what,
        },
        None => Error::Audit(what),
    })
}

/// What the ok line says about archived events.
fn archived_note(
    chain: &neonhub_events::VerifyReport,
    archived_before: Position,
    archive: Option<&std::path::Path>,
) -> String {
    match archive {
        _ if archived_before.0 == 0 => String::new(),
        Some(dir) => format!(
            "; the {} events before position {archived_before} were re-checked in the archive {}",
            archived_before.0,
            dir.display()
        ),
        None => format!(
            "; {} events before position {archived_before} are archived and not re-checked: \
             the live log continues the hash the archive manifest records for them (re-check \
             them with --archive DIR)",
            chain.archived
        ),
    }
}

/// Run events per batch handed from the chain check to the table
/// comparison, and batches in the queue.
const FED_EVENTS: usize = 8192;
const FED_BATCHES: usize = 3;

/// 1. The hash chain and every record's checksum, across the archive in
///    `archive` when given; the live log's run events handed to `feed`.
fn verify_chain(
    log: &neonhub_events::EmbeddedLog,
    archive: Option<&std::path::Path>,
    feed: Option<RunEventFeed>,
) -> Result<neonhub_events::VerifyReport> {
    let verified = match feed {
        None => log.verify_each(archive, |_| {}),
        Some(mut feed) => {
            let verified = log.verify_each(archive, |record| feed.visit(record));
            feed.finish();
            verified
        }
    };
    match verified {
        Ok(report) => Ok(report),
        Err(neonhub_events::Error::ChainBroken {
            position,
            segment,
            offset,
        }) => Err(Error::AuditFailed {
            position,
            reason: format!(
                "hash chain broken ({} at byte offset {offset})",
                segment.display()
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

fn anchors_held(n: usize, unchecked: usize) -> String {
    let held = match n {
        0 => String::new(),
        1 => "; the anchor holds".to_owned(),
        n => format!("; all {n} anchors hold"),
    };
    match unchecked {
        0 => held,
        u => format!("{held}; {u} anchor(s) in the archived part not checked (see above)"),
    }
}

/// Checks that the log holds every anchor's position with its hash; prints
/// each that it does not, then fails naming them.
fn check_anchors(
    log: &neonhub_events::EmbeddedLog,
    chain: &neonhub_events::VerifyReport,
    anchors: &[Anchor],
    archive: Option<&std::path::Path>,
) -> Result<usize> {
    let mut failed = 0usize;
    let mut unchecked = 0usize;
    for (i, anchor) in anchors.iter().enumerate() {
        let name = format!("anchor {} of {} ({anchor})", i + 1, anchors.len());
        let held = if anchor.position < log.archived_before() {
            let Some(dir) = archive else {
                eprintln!(
                    "note: {name} is in the archived part of the log (before position {}): not \
                     checked; pass --archive DIR to check it in the archive",
                    log.archived_before()
                );
                unchecked += 1;
                continue;
            };
            log.chain_in_archive(dir, anchor.position)?
        } else {
            log.chain_at(anchor.position)?
        };
        let why = match held {
            None => format!(
                "the log ends before position {} (its last event is at {}): events up to the anchor were cut or a segment removed",
                anchor.position,
                chain
                    .head
                    .0
                    .checked_sub(1)
                    .map_or_else(|| "none, it is empty".to_owned(), |p| p.to_string()),
            ),
            Some(hash) if hash == anchor.hash => continue,
            Some(hash) => format!(
                "the log holds position {} with hash {}: the history up to it was rewritten",
                anchor.position,
                hex(&hash)
            ),
        };
        eprintln!("{name}: {why}");
        failed += 1;
    }
    if failed == 0 {
        return Ok(unchecked);
    }
    Err(Error::Audit(format!(
        "the log does not hold {failed} of {} anchor(s), named above; it was cut or rewritten \
         after they were taken: restore it from a backup and never edit it",
        anchors.len()
    )))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `neonhub audit anchor`: the head as an anchor to keep elsewhere.
pub(super) async fn anchor(data: DataDir, store: StoreConfig, args: AnchorArgs) -> Result<()> {
    let opened = Store::open(&store, &data, Access::Read)?;
    let Store::Embedded(log) = &opened else {
        return Err(Error::Usage(
            "anchors are points of the embedded log's hash chain; EventStoreDB has none".to_owned(),
        ));
    };
    let chain = verify_chain(log, None, None)?;
    let Some(position) = chain.head.0.checked_sub(1) else {
        return Err(Error::Usage(format!(
            "the log in {} is empty: there is nothing to anchor yet",
            log.dir().display()
        )));
    };
    let anchor = Anchor {
        position: Position(position),
        hash: chain.head_hash,
        events: Some(chain.events),
        at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    match args.format {
        Format::Json => println!("{}", anchor.to_json()),
        _ => {
            println!("position  {}", anchor.position);
            println!("hash      {}", anchor.hash_hex());
            println!("events    {}", chain.events);
            println!("at        {}", anchor.at.as_deref().unwrap_or_default());
            println!(
                "Keep it outside neonhub; later, `neonhub audit verify --anchor '{}'` proves the log still holds it.",
                anchor.to_json()
            );
        }
    }
    Ok(())
}
