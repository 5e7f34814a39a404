// Queue: per tag and priority — waiting (due), scheduled for later,
// running, oldest wait, whether a live worker serves the tag and what the
// autoscaler does about it; the concurrency keys with their limits (what
// blocks a job); the autoscaled groups. Refreshed every 5 s.
import * as api from '../lib/api.js';
import { h, badge, table, section, link } from '../lib/dom.js';
import { liveContent } from '../lib/live.js';
import { formatDuration, timeCell, parseTime } from '../lib/time.js';

export async function render(ctx) {
  ctx.setTitle('Queue');
  const content = h('div', { class: 'stack' });
  const { bar, first } = liveContent(ctx, content, (signal) => load(ctx, signal), 5000);
  ctx.root.append(h('div', { class: 'page-head' }, h('h1', null, 'Queue'), bar), content);
  await first;
}

async function load(ctx, signal) {
  const [queue, limits, scaled] = await Promise.all([
    api.get('/api/queue', { signal }),
    api.get('/api/queue/limits', { signal }),
    ctx.can('autoscale.read') ? api.get('/api/autoscaling/groups', { signal }) : null,
  ]);
  const tags = queue.tags || [];
  const out = [tagsSection(tags), prioritySection(tags), limitsSection(limits.keys || [])];
  if (scaled) out.push(autoscaleSection(scaled.groups || []));
  return out;
}

const jobsOf = (tag, state) => `#/jobs?${new URLSearchParams({ tag, state })}`;

function tagsSection(tags) {
  const columns = [
    { label: 'Tag', cell: (t) => h('code', null, t.tag) },
    { label: 'Waiting (due)', class: 'num', cell: (t) => (t.waiting ? link(jobsOf(t.tag, 'queued'), String(t.waiting)) : '0') },
    { label: 'Scheduled (later)', class: 'num', cell: (t) => String(t.scheduled) },
    { label: 'Running', class: 'num', cell: (t) => (t.running ? link(jobsOf(t.tag, 'running'), String(t.running)) : '0') },
    { label: 'Oldest wait', class: 'num', cell: (t) => (t.waiting ? formatDuration(t.oldest_wait_s * 1000) : '—') },
    { label: 'Served', cell: (t) => (t.served ? badge('served', 'success') : badge('NOT SERVED', 'failure')) },
    {
      label: 'Note',
      cell: (t) => {
        if (t.autoscale) return t.autoscale;
        if (!t.served && (t.waiting || t.scheduled)) return 'No live worker serves this tag: its jobs wait until one does.';
        return '';
      },
    },
  ];
  return section(
    'Per tag',
    table(columns, tags, { caption: 'Jobs per tag', key: 'tags', empty: 'The queue is empty and no worker has registered a tag.' }),
  );
}

function prioritySection(tags) {
  const rows = tags.flatMap((t) => (t.by_priority || []).map((p) => ({ tag: t.tag, ...p })));
  const columns = [
    { label: 'Tag', cell: (r) => h('code', null, r.tag) },
    { label: 'Priority', class: 'num', cell: (r) => String(r.priority) },
    { label: 'Waiting', class: 'num', cell: (r) => String(r.waiting) },
    { label: 'Oldest wait', class: 'num', cell: (r) => formatDuration(r.oldest_wait_s * 1000) },
  ];
  return section(
    'Waiting by priority',
    h('p', { class: 'muted' }, 'Higher priorities are claimed first; an old wait at a low priority is starvation.'),
    table(columns, rows, { caption: 'Waiting jobs per tag and priority', key: 'prio', empty: 'No job is waiting.' }),
  );
}

function limitsSection(keys) {
  const blocked = (k) => {
    if (!k.waiting) return '';
    const reasons = [];
    if (k.max_running > 0 && k.running >= k.max_running) reasons.push(`at max running (${k.running}/${k.max_running})`);
    if (k.rate_max > 0 && k.started_in_window >= k.rate_max) reasons.push(`rate used up (${k.started_in_window}/${k.rate_max} in ${k.rate_window_s} s)`);
    return reasons.length ? h('span', null, badge('BLOCKED', 'failure'), ' ', reasons.join('; ')) : '';
  };
  const columns = [
    { label: 'Key', cell: (k) => h('code', null, k.key) },
    { label: 'Max running', class: 'num', cell: (k) => (k.max_running > 0 ? String(k.max_running) : 'no cap') },
    { label: 'Rate', cell: (k) => (k.rate_max > 0 ? `${k.rate_max} per ${k.rate_window_s} s` : 'no rate limit') },
    { label: 'Running', class: 'num', cell: (k) => String(k.running) },
    { label: 'Waiting', class: 'num', cell: (k) => String(k.waiting) },
    { label: 'Started in window', class: 'num', cell: (k) => (k.rate_max > 0 ? String(k.started_in_window) : '—') },
    { label: 'Blocked', cell: blocked },
  ];
  return section(
    'Concurrency limits',
    h('p', { class: 'muted' }, 'Jobs sharing a concurrency key wait while the key is at its limits.'),
    table(columns, keys, { caption: 'Concurrency keys', key: 'limits', empty: 'No concurrency key is in use.' }),
  );
}

function autoscaleSection(groups) {
  const stale = (g) => {
    const d = parseTime(g.decided_at);
    return d && Date.now() - d.getTime() > 60000;
  };
  const columns = [
    { label: 'Group', cell: (g) => h('code', null, g.group) },
    { label: 'Desired', class: 'num', cell: (g) => String(g.desired) },
    { label: 'Was', class: 'num', cell: (g) => String(g.from) },
    { label: 'Min – max', class: 'num', cell: (g) => `${g.min} – ${g.max}` },
    { label: 'Reason', cell: (g) => [g.rule ? h('code', null, g.rule) : '', g.rule && g.reason ? ': ' : '', g.reason || ''] },
    { label: 'Integration', cell: (g) => g.integration },
    { label: 'Tags', cell: (g) => (g.tags || []).join(', ') },
    { label: 'Changed', cell: (g) => timeCell(g.requested_at) },
    { label: 'Decided', cell: (g) => [timeCell(g.decided_at, { relativeOnly: true }), stale(g) ? [' ', badge('STALE: no controller runs', 'late')] : ''] },
    { label: 'Controller', cell: (g) => g.controller || '—' },
  ];
  return section(
    'Autoscaled groups',
    table(columns, groups, { caption: 'Autoscaled worker groups', key: 'autoscale', empty: 'No group autoscales (see <autoscale> in docs/AUTOSCALING.md).' }),
  );
}
