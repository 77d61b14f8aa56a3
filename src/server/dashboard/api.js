// Calls to the HTTP API. With a token configured, a 401 asks the user for
// it; it is kept in sessionStorage only (never localStorage, never the URL)
// and sent as `Authorization: Bearer <token>`.

const TOKEN_KEY = 'neonhub.token';

/** An error answer of the API: `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The token this tab holds, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Forgets the token. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  showForget();
}

function showForget() {
  const button = document.getElementById('forget-token');
  if (button) button.hidden = token() === null;
}

let asking = null;

/**
 * Asks for the token (one dialog however many calls wait for it); resolves
 * once one is entered. `refused`: the token held was refused.
 */
export function askToken(refused) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const reason = document.getElementById('token-reason');
  reason.textContent = refused
    ? 'The server refused the token this tab held: enter the right one.'
    : 'This neonhub requires a bearer token (serve --token, NEONHUB_TOKEN).';
  if (refused) sessionStorage.removeItem(TOKEN_KEY);
  showForget();
  asking = new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      input.value = '';
      form.removeEventListener('submit', submit);
      dialog.close();
      asking = null;
      showForget();
      resolve();
    };
    form.addEventListener('submit', submit);
    // Escape would leave every call waiting: keep the dialog open.
    dialog.addEventListener('cancel', (event) => event.preventDefault(), {once: true});
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return asking;
}

/** The headers every call sends. */
export function authHeaders(extra = {}) {
  const headers = {...extra};
  const held = token();
  if (held !== null) headers.Authorization = `Bearer ${held}`;
  return headers;
}

async function call(path, {method = 'GET', body, signal, accept = 'application/json'} = {}) {
  for (;;) {
    const init = {method, signal, cache: 'no-store', headers: authHeaders({Accept: accept})};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      await askToken(token() !== null);
      continue;
    }
    return response;
  }
}

async function failure(response) {
  const text = await response.text();
  let code = `http_${response.status}`;
  let message = text.slice(0, 300) || response.statusText;
  try {
    const parsed = JSON.parse(text);
    if (parsed && parsed.error) {
      code = String(parsed.error.code ?? code);
      message = String(parsed.error.message ?? message);
    }
  } catch {
    // Not JSON: the text itself.
  }
  return new ApiError(response.status, code, message);
}

/** A JSON call; throws an ApiError for a non-2xx answer. */
export async function api(path, options) {
  const response = await call(path, options);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** A call answered with text (`/metrics`). */
export async function apiText(path, options) {
  const response = await call(path, {...options, accept: 'text/plain'});
  if (!response.ok) throw await failure(response);
  return response.text();
}

/** `path?query` with the non-empty values of `params` (the API refuses unknown names). */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

showForget();
