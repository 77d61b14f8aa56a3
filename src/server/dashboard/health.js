// Health: the projection's lag (`GET /readyz`), and per connector its
// circuit breaker and rate-limit hits, read from `/metrics`
// (`neonhub_circuit_breaker_state`, `..._failures_total`,
// `neonhub_rate_limit_hits_total`) beside the catalog of `GET /v1/agents`.

import {api, apiText} from './api.js';
import {h, replace, count} from './dom.js';
import {parseMetrics, series, total} from './metrics.js';

const BREAKER = {0: 'closed', 1: 'open', 2: 'half-open'};

function fact(label, value, id) {
  return [h('dt', {}, label), h('dd', {id}, value)];
}

function projection(ready, readyError, samples) {
  const states = series(samples, 'neonhub_projection_state').filter((s) => s.value === 1).map((s) => s.labels.state);
  const errors = series(samples, 'neonhub_projection_errors_total').filter((s) => s.value > 0);
  const items = [];
  if (ready) {
    const lag = Math.max(0, ready.head - ready.checkpoint);
    items.push(fact('Ready', 'yes', 'ready'),
      fact('Checkpoint (applied up to)', count(ready.checkpoint), 'checkpoint'),
      fact('Log head', count(ready.head), 'head'),
      fact('Lag', `${count(lag)} event${lag === 1 ? '' : 's'}`, 'projection-lag'));
  } else {
    items.push(fact('Ready', `no: ${readyError.code ?? 'error'}: ${readyError.message}`, 'ready'));
    const lag = total(samples, 'neonhub_projection_lag');
    if (lag !== null) items.push(fact('Lag', `${count(lag)} events`, 'projection-lag'));
  }
  if (states.length > 0) items.push(fact('State', states.join(', '), 'projection-state'));
  items.push(fact('Errors', errors.length === 0 ? 'none'
    : errors.map((e) => `${e.labels.kind}: ${count(e.value)}`).join(', '), 'projection-errors'));
  const inFlight = total(samples, 'neonhub_runs_in_flight');
  if (inFlight !== null) items.push(fact('Runs in flight', count(inFlight), 'in-flight'));
  return h('section', {id: 'projection'}, h('h2', {}, 'Projection'),
    h('p', {class: 'muted'}, 'The AgentRun table follows the event log; the lag is how many events it has still to apply.'),
    h('dl', {class: 'facts'}, items));
}

/** The most open state of a connector's breakers (one per endpoint group): open, else half-open, else closed; null if none reported. */
function worstBreaker(states) {
  if (states.length === 0) return null;
  const values = states.map((sample) => sample.value);
  if (values.includes(1)) return 1;
  if (values.includes(2)) return 2;
  return 0;
}

function connectors(catalog, samples) {
  const names = new Set((catalog.connectors ?? []).map((c) => c.name));
  for (const name of ['neonhub_circuit_breaker_state', 'neonhub_rate_limit_hits_total', 'neonhub_connector_requests_total']) {
    for (const sample of series(samples, name)) if (sample.labels.connector) names.add(sample.labels.connector);
  }
  const modes = new Map((catalog.connectors ?? []).map((c) => [c.name, c.mode]));
  const rows = [...names].sort().map((name) => {
    const state = worstBreaker(series(samples, 'neonhub_circuit_breaker_state', {connector: name}));
    const label = state === null ? 'not reported yet' : (BREAKER[state] ?? String(state));
    const failures = total(samples, 'neonhub_circuit_breaker_failures_total', {connector: name});
    const hits = total(samples, 'neonhub_rate_limit_hits_total', {connector: name});
    const waited = total(samples, 'neonhub_rate_limit_wait_seconds_sum', {connector: name});
    const restarts = (catalog.connectors ?? []).find((c) => c.name === name)?.restarts ?? 0;
    const ok = total(samples, 'neonhub_connector_requests_total', {connector: name, status: 'succeeded'});
    const failed = total(samples, 'neonhub_connector_requests_total', {connector: name, status: 'failed'});
    return h('tr', {dataset: {connector: name, breaker: label}},
      h('td', {}, h('a', {href: `#/runs?agent=${encodeURIComponent(name)}&kind=connector`}, name)),
      h('td', {}, modes.get(name) ?? ''),
      h('td', {}, h('span', {class: `breaker breaker-${label.replace(/[^a-z-]/g, '-')}`}, label)),
      h('td', {class: 'num'}, count(failures ?? 0)),
      h('td', {class: 'num'}, count(hits ?? 0)),
      h('td', {class: 'num'}, (waited ?? 0).toFixed(1)),
      h('td', {class: 'num'}, count(restarts)),
      h('td', {class: 'num'}, count(ok ?? 0)),
      h('td', {class: 'num'}, failed ? h('a', {href: `#/runs?agent=${encodeURIComponent(name)}&kind=connector&status=failed`}, count(failed)) : '0'));
  });
  return h('section', {id: 'connectors'}, h('h2', {}, 'Connectors'),
    h('p', {class: 'muted'},
      'Breaker state as each connector last reported it (the most open of its endpoint groups); vendor failures counted by the breakers; ',
      'calls over a rate limit wait for their turn: rate-limit hits are calls failed rate_limited (their turn would come after their deadline), ',
      'waited is the seconds calls spent waiting in all; restarts after a panic in a call. Requests: finished connector runs, from the log.'),
    h('table', {class: 'grid', id: 'connectors-table'},
      h('thead', {}, h('tr', {}, ['Connector', 'Mode', 'Breaker', 'Breaker failures', 'Rate-limit hits', 'Waited (s)', 'Restarts', 'Succeeded', 'Failed']
        .map((t) => h('th', {}, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {class: 'empty'}, h('td', {colspan: 7}, 'No connectors.')))));
}

function agents(catalog, samples) {
  return h('section', {id: 'agents'}, h('h2', {}, 'Agents'),
    h('table', {class: 'grid', id: 'agents-table'},
      h('thead', {}, h('tr', {}, ['Agent', 'Intents', 'Succeeded', 'Failed'].map((t) => h('th', {}, t)))),
      h('tbody', {}, (catalog.agents ?? []).map((a) => h('tr', {dataset: {agent: a.name}},
        h('td', {}, h('a', {href: `#/runs?agent=${encodeURIComponent(a.name)}&kind=agent`}, a.name)),
        h('td', {class: 'mono'}, (a.intents ?? []).join(', ')),
        h('td', {class: 'num'}, count(total(samples, 'neonhub_agent_runs_total', {agent: a.name, status: 'succeeded'}) ?? 0)),
        h('td', {class: 'num'}, count(total(samples, 'neonhub_agent_runs_total', {agent: a.name, status: 'failed'}) ?? 0)))))));
}

export function healthPage({main, showError}) {
  let alive = true;
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const refresh = h('button', {type: 'button', id: 'refresh-health', onclick: () => load()}, 'Refresh');
  replace(main, h('h1', {}, 'Health'), h('p', {}, refresh, h('span', {class: 'muted'}, ' (every 5 s while shown)')), body);

  async function load() {
    let ready = null;
    let readyError = null;
    try {
      ready = await api('/readyz');
    } catch (error) {
      readyError = error;
    }
    try {
      const [catalog, text] = await Promise.all([api('/v1/agents'), apiText('/metrics')]);
      if (!alive) return;
      const samples = parseMetrics(text);
      replace(body, projection(ready, readyError, samples), connectors(catalog, samples), agents(catalog, samples));
      main.dataset.loaded = 'health';
    } catch (error) {
      if (alive) showError(error);
    }
  }
  load();
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') load();
  }, 5000);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}
