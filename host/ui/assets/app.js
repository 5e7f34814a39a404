// The Quern operator UI: a hash router over page modules (pages/*.js), the
// session (who is logged in, what they may do) and the notices region.
// Plain JavaScript modules, no build step; served at /ui/ with a CSP that
// allows only these files.
import * as api from './lib/api.js';
import { h, clear, append } from './lib/dom.js';
import { refreshRelativeTimes } from './lib/time.js';
import * as loginPage from './pages/login.js';
import * as workersPage from './pages/workers.js';
import * as queuePage from './pages/queue.js';
import * as jobsPage from './pages/jobs.js';
import * as jobPage from './pages/job.js';
import * as scriptsPage from './pages/scripts.js';
import * as scriptPage from './pages/script.js';
import * as schedulesPage from './pages/schedules.js';
import * as tokensPage from './pages/tokens.js';

// The navigation: each page with the permission that shows its link.
const NAV = [
  { href: '#/workers', label: 'Workers', permission: 'workers.read', section: 'workers' },
  { href: '#/queue', label: 'Queue', permission: 'queue.read', section: 'queue' },
  { href: '#/jobs', label: 'Jobs', permission: 'jobs.read', section: 'jobs' },
  { href: '#/scripts', label: 'Scripts', permission: 'scripts.read', section: 'scripts' },
  { href: '#/schedules', label: 'Schedules', permission: 'schedules.read', section: 'schedules' },
  { href: '#/tokens', label: 'Tokens', permission: 'tokens.manage', section: 'tokens' },
];

// Route table: the first segment picks the page; the rest are its params.
function resolve(segments) {
  const [first, ...rest] = segments;
  switch (first) {
    case 'login':
      return { page: loginPage, section: 'login' };
    case 'workers':
      return { page: workersPage, section: 'workers' };
    case 'queue':
      return { page: queuePage, section: 'queue' };
    case 'jobs':
      if (rest.length === 1 && /^[0-9]+$/.test(rest[0])) return { page: jobPage, section: 'jobs', params: { id: rest[0] } };
      if (rest.length === 0) return { page: jobsPage, section: 'jobs' };
      return null;
    case 'scripts':
      if (rest.length === 0) return { page: scriptsPage, section: 'scripts' };
      return { page: scriptPage, section: 'scripts', params: { path: rest.join('/') } };
    case 'schedules':
      return rest.length === 0 ? { page: schedulesPage, section: 'schedules' } : null;
    case 'tokens':
      return rest.length === 0 ? { page: tokensPage, section: 'tokens' } : null;
    default:
      return null;
  }
}

const state = {
  me: null, // {role, token_id, label, permissions}
  leave: null, // ends the current page: aborts its requests, stops its timers
  navigations: 0,
  flash: null, // a notice for the next page
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const notices = document.getElementById('notices');

export function can(permission) {
  return Boolean(state.me && state.me.permissions && state.me.permissions.includes(permission));
}

// A notice in the aria-live region: errors stay until dismissed or the next
// page; others go after a few seconds.
export function notify(message, kind = 'info') {
  const close = h('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss' }, '×');
  const el = h('div', { class: ['notice', `notice-${kind}`] }, h('span', { class: 'notice-kind' }, kind === 'error' ? 'Error: ' : kind === 'ok' ? 'Done: ' : 'Note: '), message, close);
  close.addEventListener('click', () => el.remove());
  notices.append(el);
  if (kind !== 'error') setTimeout(() => el.remove(), 8000);
  while (notices.children.length > 5) notices.firstChild.remove();
}

function clearNotices() {
  clear(notices);
}

function parseHash() {
  let hash = location.hash.replace(/^#/, '');
  if (!hash.startsWith('/')) hash = '/' + hash;
  const q = hash.indexOf('?');
  const pathPart = q >= 0 ? hash.slice(0, q) : hash;
  const query = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : '');
  const segments = pathPart
    .split('/')
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  return { segments, query, raw: hash };
}

// Goes to `hash`; `flash` ({message, kind}) is shown on the new page.
export function navigate(hash, flash) {
  state.flash = flash || null;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function renderNav(section) {
  clear(nav);
  const list = h('ul', null);
  for (const item of NAV) {
    if (!can(item.permission)) continue;
    list.append(h('li', null, h('a', { href: item.href, 'aria-current': item.section === section ? 'page' : undefined }, item.label)));
  }
  nav.append(list);
  nav.hidden = false;
  document.getElementById('session').hidden = false;
  const who = document.getElementById('who');
  who.textContent = `${state.me.label || state.me.token_id} · ${state.me.role}`;
}

function hideShell() {
  nav.hidden = true;
  document.getElementById('session').hidden = true;
}

function firstPage() {
  const item = NAV.find((n) => can(n.permission));
  return item ? item.href : '#/jobs';
}

async function route() {
  if (state.leave) state.leave();
  state.leave = null;
  const { segments, query, raw } = parseHash();
  state.navigations += 1;
  const isFirst = state.navigations === 1;

  if (!state.me && segments[0] !== 'login') {
    const next = raw && raw !== '/' && raw !== '/login' ? raw : '';
    location.replace(`#/login${next ? '?next=' + encodeURIComponent(next) : ''}`);
    return;
  }
  if (segments.length === 0) {
    location.replace(firstPage());
    return;
  }
  const found = resolve(segments);
  if (state.me && found && found.section === 'login') {
    location.replace(query.get('next') ? '#' + query.get('next') : firstPage());
    return;
  }

  const controller = new AbortController();
  const cleanups = [];
  state.leave = () => {
    controller.abort();
    for (const fn of cleanups.splice(0)) {
      try {
        fn();
      } catch (err) {
        console.warn('cleanup failed', err);
      }
    }
  };
  if (!isFirst) clearNotices();
  if (state.flash) notify(state.flash.message, state.flash.kind);
  state.flash = null;
  clear(main);
  if (state.me) renderNav(found ? found.section : '');
  else hideShell();

  if (!found) {
    document.title = 'Not found · Quern';
    append(main, [h('h1', { tabindex: '-1' }, 'Page not found'), h('p', null, 'No page at ', h('code', null, raw), '. ', h('a', { href: firstPage() }, 'Go to the start page'), '.')]);
    focusHeading();
    return;
  }
  const ctx = {
    root: main,
    params: found.params || {},
    query,
    me: state.me,
    can,
    notify: (message, kind) => {
      if (!controller.signal.aborted) notify(message, kind);
    },
    navigate,
    signal: controller.signal,
    onLeave: (fn) => cleanups.push(fn),
    setTitle: (title) => {
      document.title = `${title} · Quern`;
    },
    loggedIn: (me) => {
      state.me = me;
    },
  };
  try {
    await found.page.render(ctx);
  } catch (err) {
    if (err.name === 'AbortError' || controller.signal.aborted) return;
    showPageError(err);
  }
  // Keyboard and screen reader users land on the new page's heading, unless
  // the page put the focus somewhere itself (the login field).
  if (!isFirst && !controller.signal.aborted && !main.contains(document.activeElement)) focusHeading();
}

function showPageError(err) {
  console.warn(err);
  const message = err && err.message ? err.message : String(err);
  if (err && err.status === 403) {
    append(main, [h('p', { class: 'form-error', role: 'alert' }, `Your role may not see this: ${message}`)]);
  } else if (err && err.status === 401) {
    return; // the login page follows (onUnauthorized)
  } else {
    append(main, [h('p', { class: 'form-error', role: 'alert' }, `Could not load this page: ${message}`)]);
  }
}

function focusHeading() {
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: false });
  }
}

async function logout() {
  try {
    await api.post('/ui/logout', {}, { quiet401: true });
  } catch (err) {
    notify(`Logging out failed: ${err.message}`, 'error');
    return;
  }
  state.me = null;
  if (state.leave) state.leave();
  state.leave = null;
  hideShell();
  location.hash = '#/login';
  notify('Logged out.', 'ok');
}

// The session ended under us (expired, revoked, logged out elsewhere).
api.onUnauthorized(() => {
  if (!state.me) return;
  state.me = null;
  if (state.leave) state.leave();
  state.leave = null;
  hideShell();
  const { raw } = parseHash();
  location.replace(`#/login${raw && raw !== '/login' ? '?next=' + encodeURIComponent(raw) : ''}`);
  notify('Your session has ended: log in again.', 'error');
});

async function start() {
  document.getElementById('logout').addEventListener('click', logout);
  document.getElementById('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  window.addEventListener('hashchange', route);
  setInterval(() => refreshRelativeTimes(), 5000);
  try {
    state.me = await api.get('/api/me', { quiet401: true });
  } catch (err) {
    state.me = null;
    if (err.status !== 401) notify(`Cannot check the session: ${err.message}`, 'error');
  }
  route();
}

start();
