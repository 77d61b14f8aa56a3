// A run's page: the run, its tree (the whole correlation, from
// `GET /v1/runs/{id}/tree`), each step's attempts on a timeline, its raw
// events, and the operator's actions: cancel a running run, resolve a step
// that ended in doubt.

import {api, ApiError} from './api.js';
import {h, s, replace, time, duration, statusBadge, json, preview, clip} from './dom.js';
import {subscribe, runIdOf} from './live.js';

/** The runs of a tree whose events are read for the timeline, at most. */
const MAX_EVENT_READS = 40;

const micros = (text) => (text ? new Date(text).getTime() * 1000 : null);

/** The tree of `run`: the endpoint's, or the run and its steps without it. */
async function loadTree(id, detail) {
  try {
    const tree = await api(`/v1/runs/${encodeURIComponent(id)}/tree`);
    return {...tree, source: 'tree'};
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'not_found') throw error;
    const {children = [], ...run} = detail;
    return {
      correlation_id: run.correlation_id,
      runs: [run, ...children],
      source: 'children',
    };
  }
}

/** The attempts of a run from its events: `[{attempt, start, end, outcome, error}]` (micros). */
function attemptsOf(events) {
  const attempts = [];
  let open = null;
  for (const e of events) {
    const d = e.data || {};
    if (e.type === 'run.started.v1') {
      open = {attempt: d.attempt, start: d.started_at, end: null, outcome: 'running', error: null, resumed: !!d.resumed};
      attempts.push(open);
    } else if (e.type === 'run.succeeded.v1' || e.type === 'run.failed.v1') {
      const target = attempts.find((a) => a.attempt === d.attempt && a.end === null) ?? open;
      if (!target) continue;
      target.end = d.finished_at;
      if (e.type === 'run.succeeded.v1') target.outcome = 'succeeded';
      else target.outcome = d.will_retry ? 'retried' : 'failed';
      target.error = d.error ?? null;
      open = null;
    }
  }
  return attempts;
}

/** The step key of a connector run (its first `run.started`), or null. */
function stepKeyOf(events) {
  const first = events.find((e) => e.type === 'run.started.v1');
  return first && first.data && first.data.step ? first.data.step : null;
}

/** The tree's runs in depth-first order with their depth. */
function ordered(runs) {
  const ids = new Set(runs.map((r) => r.run_id));
  const children = new Map();
  const roots = [];
  for (const run of runs) {
    if (run.parent_run_id && ids.has(run.parent_run_id)) {
      if (!children.has(run.parent_run_id)) children.set(run.parent_run_id, []);
      children.get(run.parent_run_id).push(run);
    } else {
      roots.push(run);
    }
  }
  const out = [];
  const walk = (run, depth) => {
    out.push({run, depth});
    for (const child of children.get(run.run_id) ?? []) walk(child, depth + 1);
  };
  for (const root of roots) walk(root, 0);
  return out;
}

function field(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

function runLink(id, current) {
  if (!id) return '';
  if (id === current) return h('span', {class: 'mono'}, id);
  return h('a', {class: 'mono', href: `#/run/${encodeURIComponent(id)}`}, id);
}

function summary(run) {
  const items = [
    field('Kind', run.kind),
    field('Target', run.target),
    field('Operation', run.operation),
    run.intent ? field('Intent', run.intent) : null,
    field('Status', statusBadge(run.status)),
    field('Attempts', String(run.attempts)),
    field('Started', time(run.started_at)),
    field('Finished', run.finished_at ? time(run.finished_at) : '—'),
    field('Duration', run.duration_ms === null ? '—' : duration(run.duration_ms)),
    field('Correlation', h('a', {class: 'mono', href: `#/runs?correlation=${encodeURIComponent(run.correlation_id)}`}, run.correlation_id)),
    run.parent_run_id ? field('Parent run', runLink(run.parent_run_id)) : null,
    run.error ? field('Error', h('span', {class: 'error-kind'}, run.error.kind), ': ', run.error.message) : null,
  ];
  return h('section', {id: 'run-summary'},
    h('dl', {class: 'facts'}, items.filter(Boolean)),
    h('div', {class: 'io'},
      h('div', {}, h('h3', {}, 'Input'), h('pre', {id: 'run-input'}, json(run.input))),
      h('div', {}, h('h3', {}, 'Output'), h('pre', {id: 'run-output'}, run.output === null || run.output === undefined ? '—' : json(run.output)))));
}

function cancelForm(run, after) {
  const reason = h('input', {type: 'text', id: 'cancel-reason', placeholder: 'why (kept in the log)', size: 30});
  const result = h('span', {class: 'result', id: 'cancel-result'});
  const button = h('button', {type: 'submit', id: 'cancel-run', class: 'danger'}, 'Cancel this run');
  const form = h('form', {class: 'action'}, h('label', {}, 'Reason ', reason), ' ', button, ' ', result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!window.confirm(`Cancel run ${run.run_id}? Its attempt and steps are cut off; it ends failed (cancelled).`)) return;
    button.disabled = true;
    try {
      const body = reason.value.trim() ? {reason: reason.value.trim()} : undefined;
      const answer = await api(`/v1/runs/${encodeURIComponent(run.run_id)}/cancel`, {method: 'POST', body});
      result.textContent = `Cancelling (${answer.status}).`;
      after();
    } catch (error) {
      result.textContent = `${error.code ?? 'error'}: ${error.message}`;
      button.disabled = false;
    }
  });
  return form;
}

function resolveForm(step, key, after) {
  const who = h('input', {type: 'text', class: 'decided-by', placeholder: 'your name', size: 12, required: true,
    value: sessionStorage.getItem('neonhub.decided_by') ?? ''});
  const why = h('input', {type: 'text', class: 'resolve-reason', placeholder: 'what the vendor showed', size: 24});
  const result = h('span', {class: 'result'});
  const send = async (outcome) => {
    if (!who.value.trim()) {
      who.reportValidity();
      return;
    }
    sessionStorage.setItem('neonhub.decided_by', who.value.trim());
    const body = {outcome, decided_by: who.value.trim()};
    if (why.value.trim()) body.reason = why.value.trim();
    try {
      const path = `/v1/runs/${encodeURIComponent(step.parent_run_id)}/steps/${encodeURIComponent(key)}/resolve`;
      const answer = await api(path, {method: 'POST', body});
      result.textContent = `Recorded ${answer.outcome}; the run resumed (attempt ${answer.attempt}).`;
      after();
    } catch (error) {
      result.textContent = `${error.code ?? 'error'}: ${error.message}`;
    }
  };
  return h('div', {class: 'action resolve', dataset: {step: key}},
    h('span', {class: 'muted'}, 'In doubt: check with the vendor, then record what happened. '),
    who, ' ', why, ' ',
    h('button', {type: 'button', class: 'resolve-sent', onclick: () => send('sent')}, 'It was sent'), ' ',
    h('button', {type: 'button', class: 'resolve-not-sent', onclick: () => send('not_sent')}, 'It was not sent'), ' ',
    result);
}

function treeView(tree, current, keys, after) {
  const list = h('ul', {class: 'tree'});
  for (const {run, depth} of ordered(tree.runs)) {
    const key = keys.get(run.run_id);
    const inDoubt = run.kind === 'connector' && run.status === 'failed' && run.error &&
      run.error.kind === 'in_doubt' && run.parent_run_id && key;
    const label = `${run.target} · ${run.operation}`;
    list.append(h('li', {
      class: `depth-${Math.min(depth, 6)}${run.run_id === current ? ' current' : ''}`,
      dataset: {runId: run.run_id, kind: run.kind, status: run.status},
    },
    run.run_id === current
      ? h('strong', {}, label)
      : h('a', {href: `#/run/${encodeURIComponent(run.run_id)}`}, label),
    key ? h('span', {class: 'step-key mono', title: 'step key'}, key) : null,
    h('span', {class: 'muted'}, run.kind), statusBadge(run.status),
    h('span', {class: 'muted'}, `${run.attempts} attempt${run.attempts === 1 ? '' : 's'}`),
    h('span', {class: 'muted'}, duration(run.duration_ms)),
    run.error ? h('span', {class: 'error-kind', title: run.error.message}, run.error.kind) : null,
    inDoubt ? resolveForm(run, key, after) : null));
  }
  const note = tree.source === 'tree'
    ? `The whole correlation ${tree.correlation_id}: ${tree.runs.length} run${tree.runs.length === 1 ? '' : 's'}.`
    : 'This server has no GET /v1/runs/{id}/tree: showing this run and its direct steps only.';
  return h('section', {id: 'tree', dataset: {source: tree.source}},
    h('h2', {}, 'Tree'), h('p', {class: 'muted'}, note), list);
}

const BAR = {succeeded: 'bar-succeeded', failed: 'bar-failed', retried: 'bar-retried', running: 'bar-running'};

function timeline(tree, eventsByRun, keys) {
  const rows = ordered(tree.runs).map(({run, depth}) => {
    const events = eventsByRun.get(run.run_id);
    let attempts = events ? attemptsOf(events) : [];
    if (attempts.length === 0) {
      attempts = [{
        attempt: run.attempts, start: micros(run.started_at), end: micros(run.finished_at),
        outcome: run.status === 'running' ? 'running' : run.status, error: run.error,
      }];
    }
    return {run, depth, attempts};
  });
  const nowMicros = Date.now() * 1000;
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const row of rows) {
    for (const a of row.attempts) {
      if (a.start !== null) t0 = Math.min(t0, a.start);
      t1 = Math.max(t1, a.end ?? nowMicros, a.start ?? -Infinity);
    }
  }
  if (!Number.isFinite(t0)) return h('section', {id: 'timeline'}, h('h2', {}, 'Timeline'), h('p', {class: 'muted'}, 'No times recorded.'));
  const span = Math.max(t1 - t0, 1000);
  const labelWidth = 240;
  const plot = 680;
  const rowHeight = 22;
  const top = 24;
  const height = top + rows.length * rowHeight + 8;
  const x = (t) => labelWidth + ((t - t0) / span) * plot;
  const svg = s('svg', {class: 'timeline', viewBox: `0 0 ${labelWidth + plot + 20} ${height}`, width: labelWidth + plot + 20, height, role: 'img', 'aria-label': 'Attempts over time'});
  for (let i = 0; i <= 4; i += 1) {
    const tx = labelWidth + (plot * i) / 4;
    svg.append(s('line', {x1: tx, x2: tx, y1: top - 6, y2: height - 4, class: 'gridline'}));
    svg.append(s('text', {x: tx, y: 12, class: 'axis', 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle'},
      `+${duration((span * i) / 4 / 1000)}`));
  }
  rows.forEach(({run, depth, attempts}, i) => {
    const y = top + i * rowHeight;
    const key = keys.get(run.run_id);
    const g = s('g', {class: 'timeline-row', 'data-run-id': run.run_id});
    g.append(s('text', {x: 4 + depth * 12, y: y + 15, class: 'label'},
      clip(`${run.target} · ${key ?? run.operation}`, 34)));
    for (const a of attempts) {
      if (a.start === null) continue;
      const end = a.end ?? nowMicros;
      const width = Math.max(x(end) - x(a.start), 2);
      const tip = `${run.target} ${run.operation}, attempt ${a.attempt}: ${a.outcome}` +
        `${a.error ? ` (${a.error.kind}: ${a.error.message})` : ''}, ${duration((end - a.start) / 1000)}`;
      g.append(s('rect', {x: x(a.start), y: y + 4, width, height: rowHeight - 8, rx: 2,
        class: `bar ${BAR[a.outcome] ?? 'bar-running'}`, 'data-attempt': a.attempt}, s('title', {}, tip)));
    }
    svg.append(g);
  });
  return h('section', {id: 'timeline'},
    h('h2', {}, 'Timeline'),
    h('p', {class: 'muted'}, 'Each step and attempt from its start to its end (hover for details). ',
      h('span', {class: 'key bar-succeeded'}, 'succeeded'), ' ', h('span', {class: 'key bar-retried'}, 'failed, retried'), ' ',
      h('span', {class: 'key bar-failed'}, 'failed'), ' ', h('span', {class: 'key bar-running'}, 'running')),
    h('div', {class: 'scroll'}, svg));
}

function eventsView(events) {
  return h('section', {id: 'events'},
    h('h2', {}, 'Events'),
    h('table', {class: 'grid', id: 'events-table'},
      h('thead', {}, h('tr', {}, ['Position', 'Revision', 'Type', 'Recorded (UTC)', 'Data'].map((t) => h('th', {}, t)))),
      h('tbody', {}, events.map((e) => h('tr', {dataset: {position: String(e.position), type: e.type}},
        h('td', {class: 'num'}, e.position),
        h('td', {class: 'num'}, e.revision),
        h('td', {class: 'mono'}, e.type),
        h('td', {class: 'nowrap'}, time(e.recorded_at)),
        h('td', {}, h('details', {}, h('summary', {class: 'mono'}, preview(e.data, 90)), h('pre', {}, json(e.data)))))))));
}

export function runPage({main, path, showError}) {
  const id = path[1] ?? '';
  let alive = true;
  let unsubscribe = null;
  let watched = new Set([id]);
  let correlation = null;
  let loading = false;
  let again = false;
  let timer = null;

  async function load() {
    if (loading) {
      again = true;
      return;
    }
    // Do not redraw under a user typing a reason or a name.
    if (main.contains(document.activeElement) && document.activeElement.tagName === 'INPUT') {
      document.activeElement.addEventListener('blur', () => schedule(), {once: true});
      return;
    }
    loading = true;
    try {
      const detail = await api(`/v1/runs/${encodeURIComponent(id)}`);
      const [tree, events] = await Promise.all([
        loadTree(id, detail),
        api(`/v1/runs/${encodeURIComponent(id)}/events`).then((page) => page.events),
      ]);
      const eventsByRun = new Map([[id, events]]);
      const others = tree.runs.map((r) => r.run_id).filter((r) => r !== id).slice(0, MAX_EVENT_READS);
      for (let i = 0; i < others.length; i += 4) {
        await Promise.all(others.slice(i, i + 4).map((runId) =>
          api(`/v1/runs/${encodeURIComponent(runId)}/events`)
            .then((page) => eventsByRun.set(runId, page.events))
            .catch(() => {})));
      }
      if (!alive) return;
      const keys = new Map();
      for (const [runId, list] of eventsByRun) {
        const key = stepKeyOf(list);
        if (key) keys.set(runId, key);
      }
      watched = new Set(tree.runs.map((r) => r.run_id));
      correlation = tree.correlation_id;
      const run = {...detail};
      delete run.children;
      const actions = run.status === 'running' ? cancelForm(run, schedule) : null;
      replace(main,
        h('h1', {}, `${run.kind === 'connector' ? 'Step' : 'Run'} `, h('span', {class: 'mono', id: 'run-id'}, run.run_id), ' ', statusBadge(run.status)),
        h('p', {}, h('a', {href: '#/runs'}, '« All runs')),
        summary(run),
        actions ? h('section', {id: 'actions'}, h('h2', {}, 'Actions'), actions) : null,
        treeView(tree, id, keys, schedule),
        timeline(tree, eventsByRun, keys),
        eventsView(events));
      main.dataset.loaded = 'run';
    } catch (error) {
      if (!alive) return;
      if (error.code === 'unknown_run' || error.code === 'invalid_request') {
        replace(main, h('h1', {}, 'Run'), h('p', {id: 'no-run'}, error.message), h('p', {}, h('a', {href: '#/runs'}, '« All runs')));
      } else {
        showError(error);
      }
    } finally {
      loading = false;
      if (again && alive) {
        again = false;
        schedule();
      }
    }
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      if (alive) load();
    }, 300);
  }

  subscribe((message) => {
    const event = message.event;
    const runId = runIdOf(event);
    if (!runId) return;
    if (watched.has(runId) || (correlation && event.data && event.data.correlation_id === correlation)) schedule();
  }).then((unsub) => {
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
    if (timer) clearTimeout(timer);
  };
}
