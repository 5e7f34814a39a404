// The API client: same-origin fetch with the session cookie. Requests that
// change state carry X-Quern-UI: 1, which the server requires of
// cookie-authenticated POST, PUT and DELETE (a cross-site form cannot set it).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

let unauthorizedHandler = null;

// Called with the error when any request answers 401 (the session ended).
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

// The message of an error body: {"error": "text"} or {"error": {"code", "message"}}.
function errorOf(status, data, text, statusText) {
  const e = data && data.error;
  if (typeof e === 'string') return new ApiError(status, '', e);
  if (e && typeof e === 'object') return new ApiError(status, e.code || '', e.message || e.code || statusText);
  const body = (text || '').trim().slice(0, 300);
  return new ApiError(status, '', body || `${status} ${statusText}`);
}

// request('GET', '/api/jobs', undefined, {signal}) → parsed JSON (or text
// with {text: true}). Throws ApiError for a 4xx/5xx answer.
export async function request(method, path, body, { signal, text: asText = false, quiet401 = false } = {}) {
  const headers = { Accept: asText ? 'text/plain' : 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Quern-UI'] = '1';
  const init = { method, headers, credentials: 'same-origin', signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', `cannot reach the server (${err.message})`);
  }
  const text = await resp.text();
  let data = null;
  if (!asText || !resp.ok) {
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const err = errorOf(resp.status, data, text, resp.statusText);
    if (resp.status === 401 && !quiet401 && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  return asText ? text : data;
}

export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body, opts) => request('POST', path, body === undefined ? {} : body, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);

// A script path or schedule name (f/team/name) in a URL: each segment
// encoded, the slashes kept.
export function pathParam(path) {
  return String(path).split('/').map(encodeURIComponent).join('/');
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
