// Jobs: the list, newest first, with filters (state, tag, script path,
// created after/before) kept in the address (#/jobs?state=failure&tag=…),
// and an "Older jobs" button that pages back with before_id.
import * as api from '../lib/api.js';
import { h, table, tableRow, field, select, link, clear } from '../lib/dom.js';
import { timeCell, formatDuration, localInputToIso, isoToLocalInput } from '../lib/time.js';
import { stateBadge, STATES } from './job_common.js';

const PAGE_SIZE = 50;
const FILTERS = ['state', 'tag', 'script_path', 'created_after', 'created_before'];

export async function render(ctx) {
  ctx.setTitle('Jobs');
  const filters = {};
  for (const k of FILTERS) if (ctx.query.get(k)) filters[k] = ctx.query.get(k);
  // Page size: #/jobs?limit=N (1 to 500), else 50.
  const asked = Number.parseInt(ctx.query.get('limit') || '', 10);
  const PAGE = asked >= 1 && asked <= 500 ? asked : PAGE_SIZE;

  const list = h('div', { class: 'stack' });
  const more = h('div', { class: 'actions' });
  const countNote = h('p', { class: 'muted', 'aria-live': 'polite' });
  ctx.root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Jobs'), h('button', { type: 'button', class: 'button secondary small', onclick: () => ctx.navigate(location.hash) }, 'Refresh')),
    filterForm(ctx, filters),
    countNote,
    list,
    more,
  );

  let rows = [];
  let tbody = null;
  const loadPage = async (beforeId) => {
    const data = await api.get(`/api/jobs${api.query({ ...filters, before_id: beforeId, limit: PAGE })}`, { signal: ctx.signal });
    const jobs = data.jobs || [];
    rows = rows.concat(jobs);
    if (!tbody) {
      clear(list);
      const t = table(COLUMNS, rows, { caption: 'Jobs, newest first', key: 'jobs', empty: Object.keys(filters).length ? 'No job matches these filters.' : 'No job yet.' });
      list.append(t);
      tbody = t.querySelector('tbody');
    } else {
      for (const job of jobs) tbody.append(tableRow(COLUMNS, job));
    }
    countNote.textContent = rows.length ? `Showing ${rows.length} job${rows.length === 1 ? '' : 's'}${jobs.length === PAGE ? '' : ' (all that match)'}.` : '';
    clear(more);
    if (jobs.length === PAGE) {
      const button = h('button', { type: 'button', class: 'button secondary' }, 'Older jobs');
      button.addEventListener('click', async () => {
        button.disabled = true;
        button.textContent = 'Loading…';
        try {
          await loadPage(rows[rows.length - 1].id);
          more.querySelector('button')?.focus();
        } catch (err) {
          if (err.name !== 'AbortError') ctx.notify(`Could not load older jobs: ${err.message}`, 'error');
          button.disabled = false;
          button.textContent = 'Older jobs';
        }
      });
      more.append(button);
    } else if (rows.length) {
      more.append(h('p', { class: 'muted' }, 'No older jobs.'));
    }
  };
  await loadPage(undefined);
}

const COLUMNS = [
  { label: 'Job', cell: (j) => link(`#/jobs/${j.id}`, `#${j.id}`) },
  { label: 'State', cell: (j) => stateBadge(j.state, j.cancel_requested) },
  { label: 'Script', cell: (j) => (j.script_path ? h('code', null, j.script_path) : h('span', { class: 'muted' }, `inline ${j.language}`)) },
  { label: 'Tag', cell: (j) => h('code', null, j.tag) },
  { label: 'Priority', class: 'num', cell: (j) => String(j.priority) },
  { label: 'Created', cell: (j) => timeCell(j.created_at) },
  { label: 'Duration', class: 'num', cell: (j) => (typeof j.duration_ms === 'number' ? formatDuration(j.duration_ms) : j.state === 'running' ? 'running' : '—') },
  { label: 'Attempt', class: 'num', cell: (j) => String(j.attempt) },
  { label: 'Error', cell: (j) => (j.error ? h('span', { class: 'clip' }, j.error.length > 120 ? j.error.slice(0, 120) + '…' : j.error) : '') },
];

function filterForm(ctx, filters) {
  const state = select('state', [['', 'any state'], ...STATES.map((s) => [s, s])], filters.state || '');
  const tag = h('input', { name: 'tag', type: 'text', value: filters.tag || '', spellcheck: 'false', autocomplete: 'off' });
  const script = h('input', { name: 'script_path', type: 'text', value: filters.script_path || '', spellcheck: 'false', autocomplete: 'off', placeholder: 'f/team/name' });
  const after = h('input', { name: 'created_after', type: 'datetime-local', value: isoToLocalInput(filters.created_after) });
  const before = h('input', { name: 'created_before', type: 'datetime-local', value: isoToLocalInput(filters.created_before) });
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Filter jobs' },
    field('State', state),
    field('Tag', tag),
    field('Script path', script),
    field('Created after', after),
    field('Created before', before),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'button' }, 'Apply filters'),
      h('a', { href: '#/jobs', class: 'button secondary' }, 'Clear'),
    ),
  );
  // Folded on a phone unless a filter is set; open on wider screens.
  const active = Object.keys(filters).length;
  const details = h(
    'details',
    { class: 'filters-box', open: active > 0 || window.matchMedia('(min-width: 701px)').matches },
    h('summary', null, active ? `Filters (${active} set)` : 'Filters'),
    form,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = api.query({
      state: state.value,
      tag: tag.value.trim(),
      script_path: script.value.trim(),
      created_after: localInputToIso(after.value),
      created_before: localInputToIso(before.value),
    });
    const limit = ctx.query.get('limit');
    ctx.navigate(`#/jobs${q}${limit ? (q ? '&' : '?') + 'limit=' + encodeURIComponent(limit) : ''}`);
  });
  return details;
}
