// The report: per agent and connector (`GET /v1/reports/agents`: success
// rate, p50/p95/p99, language-model tokens and cost) and runs and failures over time as an SVG chart
// (`GET /v1/reports/timeline`).

import {api, ApiError, withQuery} from './api.js';
import {h, s, replace, duration, count, time} from './dom.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)} %`;
}

function dollars(usd) {
  return typeof usd === 'number' && usd > 0 ? `$${usd < 0.01 ? usd.toFixed(6) : usd.toFixed(2)}` : '—';
}

function reportTable(agents) {
  return h('table', {class: 'grid', id: 'report-table'},
    h('thead', {}, h('tr', {}, ['Target', 'Kind', 'Runs', 'Succeeded', 'Failed', 'Running', 'Success rate', 'p50', 'p95', 'p99', 'Tokens in', 'Tokens out', 'Cost']
      .map((t) => h('th', {}, t)))),
    h('tbody', {}, agents.length === 0
      ? h('tr', {class: 'empty'}, h('td', {colspan: 13}, 'No runs in this window.'))
      : agents.map((a) => h('tr', {dataset: {target: a.target, kind: a.kind}},
        h('td', {}, h('a', {href: `#/runs?agent=${encodeURIComponent(a.target)}&kind=${encodeURIComponent(a.kind)}`}, a.target)),
        h('td', {}, a.kind),
        h('td', {class: 'num'}, count(a.runs)),
        h('td', {class: 'num'}, count(a.succeeded)),
        h('td', {class: 'num'}, a.failed > 0 ? h('a', {href: `#/runs?agent=${encodeURIComponent(a.target)}&kind=${encodeURIComponent(a.kind)}&status=failed`}, count(a.failed)) : '0'),
        h('td', {class: 'num'}, count(a.running)),
        h('td', {class: 'num'}, percent(a.success_rate)),
        h('td', {class: 'num'}, duration(a.p50_ms)),
        h('td', {class: 'num'}, duration(a.p95_ms)),
        h('td', {class: 'num'}, duration(a.p99_ms)),
        h('td', {class: 'num tokens-in'}, count(a.input_tokens ?? 0)),
        h('td', {class: 'num tokens-out'}, count(a.output_tokens ?? 0)),
        h('td', {class: 'num cost'}, dollars(a.cost_usd))))));
}

function tickLabel(start, by) {
  const d = new Date(start);
  const iso = d.toISOString();
  return by === 'day' ? iso.slice(5, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 13)}h`;
}

/** Runs and failures per bucket as bars, p95 as a line on its own scale. */
function chart(timeline) {
  const by = timeline.by === 'day' ? 'day' : 'hour';
  const step = by === 'day' ? DAY_MS : HOUR_MS;
  const buckets = (timeline.buckets ?? [])
    .map((b) => ({...b, at: new Date(b.start).getTime()}))
    .filter((b) => Number.isFinite(b.at))
    .sort((a, b) => a.at - b.at);
  if (buckets.length === 0) return h('p', {class: 'muted', id: 'chart-empty'}, 'No runs in this window.');
  const t0 = buckets[0].at;
  const t1 = buckets[buckets.length - 1].at + step;
  const slots = Math.max(1, Math.round((t1 - t0) / step));
  const left = 48;
  const right = 48;
  const plot = Math.max(600, Math.min(1200, slots * 14));
  const top = 12;
  const height = 220;
  const bottom = 36;
  const maxRuns = Math.max(1, ...buckets.map((b) => b.runs));
  const p95s = buckets.map((b) => b.p95_ms).filter((v) => typeof v === 'number');
  const maxP95 = Math.max(1, ...p95s);
  const slot = plot / slots;
  const x = (at) => left + ((at - t0) / step) * slot;
  const y = (n) => top + height - (n / maxRuns) * height;
  const yp = (ms) => top + height - (ms / maxP95) * height;
  const width = left + plot + right;
  const svg = s('svg', {id: 'timeline-chart', class: 'chart', viewBox: `0 0 ${width} ${top + height + bottom}`,
    width, height: top + height + bottom, role: 'img', 'aria-label': 'Runs and failures over time'});
  for (const frac of [0, 0.5, 1]) {
    const gy = top + height - frac * height;
    svg.append(s('line', {x1: left, x2: left + plot, y1: gy, y2: gy, class: 'gridline'}));
    svg.append(s('text', {x: left - 4, y: gy + 4, class: 'axis', 'text-anchor': 'end'}, count(Math.round(maxRuns * frac))));
    svg.append(s('text', {x: left + plot + 4, y: gy + 4, class: 'axis p95', 'text-anchor': 'start'}, duration(maxP95 * frac)));
  }
  for (const b of buckets) {
    const bx = x(b.at) + 1;
    const bw = Math.max(1, slot - 2);
    const tip = `${time(b.start)}: ${count(b.runs)} runs, ${count(b.failures)} failed; ` +
      `p50 ${duration(b.p50_ms) || '—'}, p95 ${duration(b.p95_ms) || '—'}, p99 ${duration(b.p99_ms) || '—'}`;
    const g = s('g', {class: 'bucket', 'data-start': b.start, 'data-runs': b.runs, 'data-failures': b.failures}, s('title', {}, tip));
    g.append(s('rect', {x: bx, y: y(b.runs), width: bw, height: top + height - y(b.runs), class: 'bar-runs'}));
    if (b.failures > 0) g.append(s('rect', {x: bx, y: y(b.failures), width: bw, height: top + height - y(b.failures), class: 'bar-failures'}));
    svg.append(g);
  }
  const points = buckets.filter((b) => typeof b.p95_ms === 'number')
    .map((b) => `${(x(b.at) + slot / 2).toFixed(1)},${yp(b.p95_ms).toFixed(1)}`);
  if (points.length > 0) svg.append(s('polyline', {points: points.join(' '), class: 'line-p95'}));
  for (const point of points) {
    const [px, py] = point.split(',');
    svg.append(s('circle', {cx: px, cy: py, r: 2.5, class: 'dot-p95'}));
  }
  const every = Math.max(1, Math.ceil(slots / 10));
  for (let i = 0; i < slots; i += every) {
    const at = t0 + i * step;
    svg.append(s('text', {x: x(at) + slot / 2, y: top + height + 16, class: 'axis', 'text-anchor': 'middle'}, tickLabel(at, by)));
  }
  return h('div', {},
    h('p', {class: 'muted'}, h('span', {class: 'key bar-runs'}, 'runs'), ' ', h('span', {class: 'key bar-failures'}, 'failures'), ' ',
      h('span', {class: 'key line-p95'}, 'p95 (right axis)'), ` per ${by}, UTC.`),
    h('div', {class: 'scroll'}, svg));
}

export function reportPage({main, params, showError, go}) {
  const by = params.get('by') === 'day' ? 'day' : 'hour';
  const f = {
    since: params.get('since') ?? '',
    until: params.get('until') ?? '',
    by,
    agent: params.get('agent') ?? '',
    kind: params.get('kind') ?? '',
  };
  const since = f.since || (by === 'day' ? '30d' : '24h');
  const input = (name, label, placeholder) => h('label', {}, label, ' ',
    h('input', {name, id: `report-${name}`, type: 'text', value: f[name], placeholder, size: 12, autocomplete: 'off'}));
  const bySelect = h('select', {name: 'by', id: 'report-by'},
    h('option', {value: 'hour', selected: by === 'hour'}, 'hour'), h('option', {value: 'day', selected: by === 'day'}, 'day'));
  const kindSelect = h('select', {name: 'kind', id: 'report-kind'},
    [['', 'any'], ['agent', 'agent'], ['connector', 'connector']].map(([v, t]) => h('option', {value: v, selected: f.kind === v}, t)));
  const form = h('form', {class: 'filters', id: 'report-filters'},
    input('since', 'Since', by === 'day' ? '30d' : '24h'),
    input('until', 'Until', 'now'),
    h('label', {}, 'Chart per ', bySelect),
    input('agent', 'Chart of agent', 'all'),
    h('label', {}, 'Kind ', kindSelect),
    h('button', {type: 'submit'}, 'Apply'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = {};
    for (const name of ['since', 'until', 'by', 'agent', 'kind']) next[name] = form.elements[name].value.trim();
    if (next.by === 'hour') next.by = '';
    go('report', next);
  });
  bySelect.addEventListener('change', () => form.requestSubmit());
  kindSelect.addEventListener('change', () => form.requestSubmit());
  const tableBox = h('div', {class: 'scroll'}, h('p', {class: 'muted'}, 'Loading…'));
  const chartBox = h('div', {id: 'chart'}, h('p', {class: 'muted'}, 'Loading…'));
  replace(main, h('h1', {}, 'Report'), form,
    h('h2', {}, 'Per agent and connector'), tableBox,
    h('h2', {}, 'Runs and failures over time'), chartBox);

  let alive = true;
  api(withQuery('/v1/reports/agents', {since: f.since, until: f.until}))
    .then((report) => {
      if (alive) replace(tableBox, reportTable(report.agents ?? []));
    })
    .catch((error) => {
      if (alive) {
        replace(tableBox);
        showError(error);
      }
    });
  api(withQuery('/v1/reports/timeline', {since, until: f.until, by, agent: f.agent, kind: f.kind}))
    .then((timeline) => {
      if (alive) replace(chartBox, chart(timeline));
    })
    .catch((error) => {
      if (!alive) return;
      if (error instanceof ApiError && error.code === 'not_found') {
        replace(chartBox, h('p', {class: 'muted'}, 'This server has no GET /v1/reports/timeline: no chart.'));
      } else {
        replace(chartBox);
        showError(error);
      }
    });
  return () => {
    alive = false;
  };
}
