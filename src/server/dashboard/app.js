// The dashboard's entry: routing by URL hash (`#/runs?status=failed`,
// `#/run/<id>`, `#/report`, `#/health`), the error banner, the token
// button and the projection's lag in the header.

import {api, forgetToken} from './api.js';
import {replace, h} from './dom.js';
import {runsPage} from './runs.js';
import {runPage} from './run.js';
import {reportPage} from './report.js';
import {healthPage} from './health.js';

const main = document.getElementById('main');
const banner = document.getElementById('error');
let cleanup = null;

/** Shows an error in the banner (or hides it for null). */
export function showError(error) {
  if (!error) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  const code = error.code ? `${error.code}: ` : '';
  replace(banner, h('strong', {}, 'Error '), `${code}${error.message ?? error}`);
  banner.hidden = false;
}

/** The route of the current hash: `{path: ['run', id], params}`. */
export function route() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?', 2);
  return {
    path: path.split('/').filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(query),
  };
}

/** Sets the hash to `#/page?params` (the non-empty ones). */
export function go(page, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, value);
  }
  const text = query.toString();
  const hash = `#/${page}${text ? `?${text}` : ''}`;
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

const pages = {
  runs: runsPage,
  run: runPage,
  report: reportPage,
  health: healthPage,
};

function render() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // A page that failed to clean up must not stop the next one.
    }
    cleanup = null;
  }
  showError(null);
  const {path, params} = route();
  const name = pages[path[0]] ? path[0] : 'runs';
  for (const link of document.querySelectorAll('header nav a')) {
    link.classList.toggle('active', link.id === `nav-${name === 'run' ? 'runs' : name}`);
  }
  replace(main);
  delete main.dataset.loaded;
  const ctx = {main, path, params, showError, go};
  try {
    cleanup = pages[name](ctx) || null;
  } catch (error) {
    showError(error);
  }
}

async function refreshLag() {
  const lag = document.getElementById('lag');
  try {
    const ready = await api('/readyz');
    const behind = Math.max(0, ready.head - ready.checkpoint);
    lag.textContent = `lag: ${behind.toLocaleString('en-US')} events`;
    lag.classList.toggle('warn', behind > 1000);
    lag.classList.remove('bad');
  } catch (error) {
    lag.textContent = `not ready: ${error.code ?? 'unreachable'}`;
    lag.classList.add('bad');
  }
}

document.getElementById('forget-token').addEventListener('click', () => {
  forgetToken();
  render();
});
window.addEventListener('hashchange', render);
window.addEventListener('unhandledrejection', (event) => {
  if (event.reason && event.reason.name === 'AbortError') return;
  showError(event.reason);
});
if (!window.location.hash) window.history.replaceState(null, '', '#/runs');
render();
refreshLag();
setInterval(() => {
  if (document.visibilityState === 'visible') refreshLag();
}, 5000);
