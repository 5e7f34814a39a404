// Workers: each group's workers and agents with their slots, current jobs,
// heartbeat age (late ones marked in words), version, isolation and the
// telemetry the server has (memory, CPU, occupancy, plugin health). Live:
// refreshed every 2 s.
import * as api from '../lib/api.js';
import { h, badge, table, section } from '../lib/dom.js';
import { liveContent } from '../lib/live.js';
import { formatBytes, formatDuration, formatPercent, timeCell } from '../lib/time.js';

export async function render(ctx) {
  ctx.setTitle('Workers');
  const content = h('div', { class: 'stack' });
  const { bar, first } = liveContent(ctx, content, (signal) => load(ctx, signal), 2000);
  ctx.root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Workers'), bar),
    h('p', { class: 'muted' }, 'Each worker group with its workers and agents. A heartbeat older than two of the worker’s intervals (plus 1 s) is marked LATE.'),
    content,
  );
  await first;
}

async function load(ctx, signal) {
  const [{ workers }, scaled] = await Promise.all([
    api.get('/api/workers', { signal }),
    ctx.can('autoscale.read') ? api.get('/api/autoscaling/groups', { signal }).catch(() => ({ groups: [] })) : { groups: [] },
  ]);
  const autoscale = new Map((scaled.groups || []).map((g) => [g.group, g]));
  const groups = new Map();
  for (const w of workers) {
    const name = w.group || '(no group)';
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(w);
  }
  for (const g of autoscale.keys()) if (!groups.has(g)) groups.set(g, []);
  if (!groups.size) return h('p', { class: 'empty' }, 'No worker has registered yet. Start one with `quern worker` or `quern up`.');

  const live = workers.filter((w) => w.live);
  const totalSlots = live.reduce((n, w) => n + w.slots, 0);
  const busy = live.reduce((n, w) => n + w.running, 0);
  const summary = h(
    'p',
    { class: 'summary' },
    `${live.length} live worker${live.length === 1 ? '' : 's'} in ${groups.size} group${groups.size === 1 ? '' : 's'} · ${busy} of ${totalSlots} slots busy`,
  );
  const sections = [...groups.keys()].sort().map((name) => groupSection(name, groups.get(name), autoscale.get(name)));
  return [summary, ...sections];
}

function groupSection(name, workers, scaled) {
  const live = workers.filter((w) => w.live);
  const slots = live.reduce((n, w) => n + w.slots, 0);
  const busy = live.reduce((n, w) => n + w.running, 0);
  const tags = [...new Set(workers.flatMap((w) => w.tags || []))].sort();
  const head = h(
    'p',
    { class: 'group-meta' },
    `${live.length} live of ${workers.length} · ${busy} of ${slots} slots busy`,
    tags.length ? ` · tags: ${tags.join(', ')}` : '',
  );
  const note = scaled
    ? h('p', { class: 'group-meta' }, `Autoscaled (${scaled.integration}): desired ${scaled.desired} (min ${scaled.min}, max ${scaled.max}) — ${scaled.reason || scaled.rule || 'no decision yet'}`)
    : null;
  const columns = [
    { label: 'Worker', cell: workerCell },
    { label: 'Status', cell: statusCell },
    { label: 'Heartbeat', cell: (w) => h('span', { class: 'nowrap' }, `${formatDuration(w.heartbeat_age_s * 1000)} ago`, w.late ? [' ', badge('LATE', 'late')] : null) },
    { label: 'Slots', cell: slotsCell },
    { label: 'Current jobs', cell: jobsCell },
    { label: 'Tags', cell: (w) => (w.tags || []).join(', ') },
    { label: 'Isolation', cell: (w) => w.isolation || '—' },
    { label: 'Memory · CPU', cell: resourcesCell },
    { label: 'Occupancy 15 s / 5 min / 30 min', cell: occupancyCell },
    { label: 'Plugins', cell: pluginsCell },
    { label: 'Started', cell: (w) => timeCell(w.started_at, { relativeOnly: true }) },
  ];
  return section(
    `Group ${name}`,
    head,
    note,
    table(columns, workers, { caption: `Workers of group ${name}`, key: `group-${name}`, empty: 'No worker of this group is registered.' }),
  );
}

function workerCell(w) {
  return h(
    'span',
    { class: 'nowrap' },
    h('code', null, w.id),
    h('br'),
    h('span', { class: 'muted' }, `${w.kind} ${w.version || ''} on ${w.hostname}, pid ${w.pid}`),
  );
}

function resourcesCell(w) {
  const t = w.telemetry || {};
  const cpu = typeof t.cpu_seconds === 'number' ? formatDuration(t.cpu_seconds * 1000) : '—';
  return h('span', { class: 'nowrap' }, `RSS ${formatBytes(t.rss_bytes)}`, h('br'), `CPU ${cpu}`);
}

function statusCell(w) {
  if (!w.live) return badge('gone', 'gone');
  if (w.late) return badge('late', 'late');
  return badge('live', 'live');
}

function slotsCell(w) {
  const busy = Math.min(w.running, w.slots);
  const idle = Math.max(w.slots - w.running, 0);
  const meter = h('span', { class: 'slots', 'aria-hidden': 'true' });
  for (let i = 0; i < w.slots && i < 64; i += 1) meter.append(h('span', { class: i < busy ? 'slot busy' : 'slot' }));
  return h('span', { class: 'nowrap' }, `${busy} busy / ${idle} idle`, h('br'), meter);
}

function jobsCell(w) {
  const jobs = w.current_jobs || [];
  if (!jobs.length) return h('span', { class: 'muted' }, 'idle');
  return h(
    'span',
    { class: 'job-links' },
    jobs.map((id, i) => [i ? ', ' : '', h('a', { href: `#/jobs/${id}` }, `#${id}`)]),
  );
}

function occupancyCell(w) {
  const o = w.telemetry?.occupancy;
  if (!o) return '—';
  return `${formatPercent(o['15s'])} / ${formatPercent(o['5m'])} / ${formatPercent(o['30m'])}`;
}

// Plugins with a known health; the unchecked ones (not used yet) counted.
function pluginsCell(w) {
  const plugins = w.telemetry?.plugins;
  if (!plugins) return '—';
  const entries = Object.entries(plugins);
  const checked = entries.filter(([, health]) => health !== 'unchecked');
  const unchecked = entries.length - checked.length;
  return h(
    'ul',
    { class: 'plain' },
    checked.map(([name, health]) => h('li', null, `${name}: `, health === 'ok' ? badge('ok', 'success') : badge(health, 'failure'))),
    unchecked ? h('li', { class: 'muted' }, `${unchecked} not used yet`) : null,
    entries.length ? null : h('li', { class: 'muted' }, 'none'),
  );
}
