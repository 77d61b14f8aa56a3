// The runs page: `GET /v1/runs` with the filters in the URL (a link
// reproduces the view), paged by `next_cursor`, kept current by the live
// feed: a new run that matches appears at the top, a shown run that changes
// is read again.

import {api, withQuery} from './api.js';
import {h, replace, time, duration, statusBadge, preview, clip, fromMicros} from './dom.js';
import {subscribe, runIdOf} from './live.js';

/** The filters of `GET /v1/runs` the page keeps in the URL. */
export const FILTERS = ['agent', 'kind', 'status', 'error_kind', 'since', 'until', 'correlation', 'sort', 'limit', 'cursor'];

export const ERROR_KINDS = [
  'timeout', 'panicked', 'agent', 'connector', 'circuit_open', 'rate_limited',
  'interrupted', 'rejected', 'in_doubt', 'cancelled',
];

/** At most this many runs are added live to one page before it asks for a reload. */
const MAX_LIVE_ROWS = 500;

function select(name, label, options, value) {
  return h('label', {}, label, ' ',
    h('select', {name, id: `filter-${name}`},
      options.map(([v, text]) => {
        const option = h('option', {value: v}, text);
        if (v === (value ?? '')) option.selected = true;
        return option;
      })));
}

function text(name, label, value, placeholder, size = 14) {
  return h('label', {}, label, ' ',
    h('input', {name, id: `filter-${name}`, type: 'text', value: value ?? '', placeholder, size, autocomplete: 'off'}));
}

/** Whether `run` passes the filters (as the API would apply them to a new run). */
function matches(run, f) {
  if (f.agent && run.target !== f.agent) return false;
  if (f.kind && run.kind !== f.kind) return false;
  if (f.status && run.status !== f.status) return false;
  if (f.error_kind && (!run.error || run.error.kind !== f.error_kind)) return false;
  if (f.correlation && run.correlation_id !== f.correlation.toLowerCase()) return false;
  return true;
}

/** A row for a run the table may not have yet, from its first `run.started`. */
function rowFromStarted(event) {
  const d = event.data;
  return {
    run_id: d.run_id,
    parent_run_id: d.parent_run_id ?? null,
    correlation_id: d.correlation_id,
    kind: d.kind,
    target: d.target,
    operation: d.operation,
    intent: d.intent ?? null,
    status: 'running',
    attempts: d.attempt,
    input: d.input,
    output: null,
    error: null,
    started_at: fromMicros(d.started_at) ?? event.recorded_at,
    finished_at: null,
    duration_ms: null,
  };
}

function runRow(run, fresh) {
  // UUID v7 ids share their leading (time) digits: the tail tells them apart.
  const short = `…${run.run_id.slice(-8)}`;
  const corr = run.correlation_id ?? '';
  return h('tr', {
    class: fresh ? 'fresh' : undefined,
    dataset: {runId: run.run_id, kind: run.kind ?? '', status: run.status ?? '', target: run.target ?? ''},
  },
  h('td', {class: 'nowrap', title: run.started_at}, time(run.started_at)),
  h('td', {class: 'mono nowrap'}, h('a', {href: `#/run/${encodeURIComponent(run.run_id)}`, title: run.run_id}, short)),
  h('td', {}, run.kind),
  h('td', {}, run.target),
  h('td', {}, run.operation),
  h('td', {}, statusBadge(run.status)),
  h('td', {class: 'num'}, run.attempts),
  h('td', {class: 'num nowrap'}, duration(run.duration_ms)),
  h('td', {}, run.error ? run.error.kind : ''),
  h('td', {class: 'clip', title: run.error ? run.error.message : ''}, run.error ? clip(run.error.message, 60) : ''),
  h('td', {class: 'clip mono', title: preview(run.input, 2000)}, preview(run.input, 50)),
  h('td', {class: 'mono nowrap'}, corr ? h('a', {href: `#/runs?correlation=${encodeURIComponent(corr)}`, title: corr}, `…${corr.slice(-8)}`) : ''));
}

export function runsPage({main, params, showError, go}) {
  const f = {};
  for (const name of FILTERS) f[name] = params.get(name) ?? '';
  const liveInserts = !f.cursor && !f.until && f.sort !== 'duration';

  const targets = h('datalist', {id: 'targets'});
  const form = h('form', {id: 'filters', class: 'filters'},
    h('label', {}, 'Agent or connector ', h('input', {name: 'agent', id: 'filter-agent', type: 'text', value: f.agent, list: 'targets', size: 12, autocomplete: 'off'})),
    targets,
    select('kind', 'Kind', [['', 'any'], ['agent', 'agent'], ['connector', 'connector']], f.kind),
    select('status', 'Status', [['', 'any'], ['running', 'running'], ['succeeded', 'succeeded'], ['failed', 'failed']], f.status),
    select('error_kind', 'Error kind', [['', 'any'], ...ERROR_KINDS.map((k) => [k, k])], f.error_kind),
    text('since', 'Since', f.since, '1h, 2026-11-30, RFC 3339', 12),
    text('until', 'Until', f.until, 'now', 12),
    text('correlation', 'Correlation', f.correlation, 'UUID', 20),
    select('sort', 'Order', [['', 'newest first'], ['duration', 'longest first']], f.sort),
    select('limit', 'Per page', [['', '50'], ['25', '25'], ['100', '100'], ['200', '200']], f.limit),
    h('span', {class: 'buttons'},
      h('button', {type: 'submit', id: 'apply-filters'}, 'Apply'),
      h('button', {type: 'button', id: 'clear-filters', onclick: () => go('runs', {})}, 'Clear'),
      h('button', {type: 'button', id: 'last-hour', onclick: () => {
        form.elements.since.value = '1h';
        form.requestSubmit();
      }}, 'Last hour')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = {};
    for (const name of FILTERS) {
      if (name === 'cursor') continue;
      const field = form.elements[name];
      if (field) next[name] = field.value.trim();
    }
    go('runs', next);
  });
  for (const name of ['kind', 'status', 'error_kind', 'sort', 'limit']) {
    form.elements[name].addEventListener('change', () => form.requestSubmit());
  }

  const summary = h('p', {id: 'runs-summary', class: 'muted'}, 'Loading…');
  const body = h('tbody', {id: 'runs-body'});
  const table = h('table', {id: 'runs', class: 'grid'},
    h('thead', {}, h('tr', {},
      ['Started (UTC)', 'Run', 'Kind', 'Target', 'Operation', 'Status', 'Attempts', 'Duration', 'Error kind', 'Error', 'Input', 'Correlation']
        .map((title) => h('th', {}, title)))),
    body);
  const first = h('button', {type: 'button', id: 'first-page', disabled: !f.cursor,
    onclick: () => go('runs', {...f, cursor: ''})}, '« First page');
  const next = h('button', {type: 'button', id: 'next-page', disabled: true}, 'Next page »');
  const notice = h('p', {id: 'live-notice', class: 'notice', hidden: true});
  replace(main, h('h1', {}, 'Runs'), form, notice, summary,
    h('div', {class: 'scroll'}, table), h('div', {class: 'pager'}, first, next));

  api('/v1/agents').then((catalog) => {
    const names = [...(catalog.agents ?? []), ...(catalog.connectors ?? [])].map((a) => a.name);
    replace(targets, [...new Set(names)].sort().map((name) => h('option', {value: name})));
  }).catch(() => {});

  let alive = true;
  let loaded = false;
  let unsubscribe = null;
  const pending = [];
  const rows = new Map(); // run_id -> <tr>
  const runs = new Map(); // run_id -> row
  let added = 0;
  let shown = 0;
  let nextCursor = null;

  function updateSummary() {
    const live = liveInserts ? 'new runs appear live' : 'live updates of new runs are off on this view (a later page, an end time or longest first)';
    summary.textContent = `${shown} run${shown === 1 ? '' : 's'} shown${nextCursor ? ', more on the next page' : ''}; ${live}.`;
  }

  /** Shows `run`: in place of its row, else at the end (`append`, a page in the API's order) or by start time. */
  function put(run, fresh, append = false) {
    body.querySelector('tr.empty')?.remove();
    const tr = runRow(run, fresh);
    const old = rows.get(run.run_id);
    runs.set(run.run_id, run);
    rows.set(run.run_id, tr);
    if (old) {
      old.replaceWith(tr);
      return;
    }
    // Newest first: before the first row that started earlier.
    let before = null;
    for (const other of append ? [] : body.children) {
      const o = runs.get(other.dataset.runId);
      if (o && o.started_at < run.started_at) {
        before = other;
        break;
      }
      if (o && o.started_at === run.started_at && o.run_id < run.run_id) {
        before = other;
        break;
      }
    }
    body.insertBefore(tr, before);
    shown += 1;
  }

  function drop(runId) {
    const tr = rows.get(runId);
    if (!tr) return;
    tr.remove();
    rows.delete(runId);
    runs.delete(runId);
    shown -= 1;
  }

  // Rows to read again, gathered for a moment and read a few at a time.
  const refetch = new Set();
  let refetchTimer = null;
  function scheduleRefetch(runId) {
    refetch.add(runId);
    if (refetchTimer) return;
    refetchTimer = setTimeout(async () => {
      refetchTimer = null;
      const ids = [...refetch];
      refetch.clear();
      for (let i = 0; i < ids.length && alive; i += 4) {
        await Promise.all(ids.slice(i, i + 4).map(async (runId) => {
          try {
            const detail = await api(`/v1/runs/${encodeURIComponent(runId)}`);
            if (!alive) return;
            delete detail.children;
            if (matches(detail, f)) {
              if (rows.has(runId) || liveInserts) {
                if (!rows.has(runId)) added += 1;
                put(detail, !rows.has(runId));
              }
            } else {
              drop(runId);
            }
          } catch {
            // A run the table no longer answers for: leave the row.
          }
        }));
      }
      updateSummary();
    }, 150);
  }

  function apply(message) {
    const event = message.event;
    const runId = runIdOf(event);
    if (!runId) return;
    if (rows.has(runId)) {
      // Read the row again: the table has the exact status, duration, error.
      if (event.type !== 'run.started.v1' || (event.data && event.data.attempt > 1)) scheduleRefetch(runId);
      return;
    }
    if (!liveInserts) return;
    if (added >= MAX_LIVE_ROWS) {
      notice.hidden = false;
      notice.textContent = `More than ${MAX_LIVE_ROWS} runs arrived since this page loaded: reload to see the newest.`;
      return;
    }
    if (event.type === 'run.started.v1' && event.data && event.data.attempt === 1) {
      const run = rowFromStarted(event);
      if (matches(run, f)) {
        added += 1;
        put(run, true);
        updateSummary();
      }
    } else if (f.status || f.error_kind) {
      // A run that was not shown may now match (it failed, say).
      scheduleRefetch(runId);
    }
  }

  function onEvent(message) {
    if (!alive) return;
    if (!loaded) pending.push(message);
    else apply(message);
  }

  async function load() {
    const query = {};
    for (const name of FILTERS) query[name] = f[name];
    try {
      const page = await api(withQuery('/v1/runs', query));
      if (!alive) return;
      for (const run of page.runs) put(run, false, true);
      nextCursor = page.next_cursor;
      next.disabled = !nextCursor;
      next.onclick = () => go('runs', {...f, cursor: nextCursor});
    } catch (error) {
      if (alive) showError(error);
    }
    loaded = true;
    for (const message of pending.splice(0)) apply(message);
    if (rows.size === 0) body.append(h('tr', {class: 'empty'}, h('td', {colspan: 12}, 'No runs match these filters.')));
    updateSummary();
    main.dataset.loaded = 'runs';
  }

  // Open the feed first, then read the page: nothing falls in between.
  subscribe(onEvent).then((unsub) => {
    if (!alive) {
      unsub();
      return;
    }
    unsubscribe = unsub;
    load();
  });

  return () => {
    alive = false;
    if (unsubscribe) unsubscribe();
    if (refetchTimer) clearTimeout(refetchTimer);
  };
}
