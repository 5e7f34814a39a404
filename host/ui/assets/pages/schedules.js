// Schedules: each cron schedule with its next tick, paused or active
// (pause/resume for schedules.write), the last tick that fired, its job
// with that job's outcome, and the last error.
import * as api from '../lib/api.js';
import { h, badge, table, link } from '../lib/dom.js';
import { timeCell } from '../lib/time.js';
import { stateBadge } from './job_common.js';

export async function render(ctx) {
  ctx.setTitle('Schedules');
  const content = h('div', { class: 'stack' });
  ctx.root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Schedules'), h('button', { type: 'button', class: 'button secondary small', onclick: () => load(ctx, content) }, 'Refresh')),
    h('p', { class: 'muted' }, 'Cron schedules, fired once per tick by the running servers. A resumed schedule fires from its next tick.'),
    content,
  );
  await load(ctx, content);
}

async function load(ctx, content) {
  const { schedules } = await api.get('/api/schedules', { signal: ctx.signal });
  // The outcome of each schedule's last job (at most 50 looked up).
  const jobIds = [...new Set(schedules.map((s) => s.last_job_id).filter(Boolean))].slice(0, 50);
  const outcomes = new Map();
  await Promise.all(
    jobIds.map(async (id) => {
      try {
        const job = await api.get(`/api/jobs/${id}`, { signal: ctx.signal });
        outcomes.set(id, job);
      } catch (err) {
        if (err.name === 'AbortError') throw err;
        outcomes.set(id, null); // pruned or unreadable: the id alone is shown
      }
    }),
  );
  const canWrite = ctx.can('schedules.write');
  const columns = [
    { label: 'Name', cell: (s) => h('code', null, s.name) },
    { label: 'When', cell: (s) => h('span', null, h('code', null, s.cron), h('br'), h('span', { class: 'muted' }, s.timezone)) },
    { label: 'Script', cell: (s) => link(`#/scripts/${api.pathParam(s.script_path)}`, s.script_path) },
    { label: 'Status', cell: (s) => (s.paused ? badge('paused', 'paused') : badge('active', 'live')) },
    { label: 'Next tick', cell: (s) => (s.paused ? h('span', { class: 'muted' }, 'paused (', timeCell(s.next_fire_at, { relativeOnly: true }), ' if resumed)') : timeCell(s.next_fire_at)) },
    { label: 'Last fired', cell: (s) => timeCell(s.last_fired_at) },
    { label: 'Last job', cell: (s) => lastJobCell(s, outcomes) },
    { label: 'Last error', cell: (s) => (s.last_error ? h('span', { class: 'error-text' }, s.last_error) : h('span', { class: 'muted' }, 'none')) },
    { label: 'Arguments', cell: (s) => h('code', { class: 'clip' }, JSON.stringify(s.args ?? {})) },
    { label: 'Catch-up', cell: (s) => s.catch_up },
  ];
  if (canWrite) columns.push({ label: 'Action', cell: (s) => pauseButton(ctx, s, () => load(ctx, content)) });
  const focusKey = document.activeElement?.dataset?.focusKey;
  content.replaceChildren(table(columns, schedules, { caption: 'Schedules', key: 'schedules', empty: 'No schedule yet (POST /api/schedules or `quern schedule create`).' }));
  if (focusKey) content.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
}

function lastJobCell(s, outcomes) {
  if (!s.last_job_id) return h('span', { class: 'muted' }, 'none yet');
  const job = outcomes.get(s.last_job_id);
  return h('span', { class: 'nowrap' }, link(`#/jobs/${s.last_job_id}`, `#${s.last_job_id}`), job ? [' ', stateBadge(job.state)] : '');
}

function pauseButton(ctx, s, reload) {
  const verb = s.paused ? 'Resume' : 'Pause';
  const b = h('button', { type: 'button', class: 'button secondary small', dataset: { focusKey: `pause-${s.name}` }, 'aria-label': `${verb} ${s.name}` }, verb);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await api.post(`/api/schedules/${s.paused ? 'resume' : 'pause'}/${api.pathParam(s.name)}`);
      ctx.notify(`Schedule ${s.name} ${s.paused ? 'resumed' : 'paused'}.`, 'ok');
    } catch (err) {
      ctx.notify(`Could not ${verb.toLowerCase()} ${s.name}: ${err.message}`, 'error');
    }
    await reload().catch((err) => {
      if (err.name !== 'AbortError') ctx.notify(`Could not reload the schedules: ${err.message}`, 'error');
    });
  });
  return b;
}
