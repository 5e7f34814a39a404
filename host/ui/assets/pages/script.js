// A script: its latest version and settings, the run form, every version
// with a line diff between any two, and (scripts.write) a form to deploy a
// new version.
import * as api from '../lib/api.js';
import { h, facts, json, pre, section, table, link, select, clear, shortHash, swap } from '../lib/dom.js';
import { timeCell, formatAbsolute } from '../lib/time.js';
import { diffLines, diffStats } from '../lib/diff.js';
import { runForm, deployForm } from './script_forms.js';

export async function render(ctx) {
  const path = ctx.params.path;
  ctx.setTitle(path);
  const enc = api.pathParam(path);
  const [script, { versions }] = await Promise.all([
    api.get(`/api/scripts/p/${enc}`, { signal: ctx.signal }),
    api.get(`/api/scripts/versions/${enc}`, { signal: ctx.signal }),
  ]);
  const s = script.settings || {};
  ctx.root.append(
    h('p', { class: 'crumbs' }, link('#/scripts', 'Scripts'), ' / ', path),
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, h('code', null, path)),
      h('div', { class: 'actions' }, link(`#/jobs?${new URLSearchParams({ script_path: path })}`, 'Jobs of this script', { class: 'button secondary' })),
    ),
    script.summary ? h('p', null, script.summary) : null,
    h(
      'div',
      { class: 'grid-2' },
      section(
        'Latest version',
        facts([
          ['Version', h('code', { title: script.hash }, shortHash(script.hash))],
          ['Language', script.language],
          ['Deployed', timeCell(script.created_at)],
          ['Deployed by', script.deployed_by],
          ['Tag', s.tag ? h('code', null, s.tag) : 'from the routing rules'],
          ['Priority', s.priority > 0 ? String(s.priority) : 'default'],
          ['Timeout', s.timeout_s > 0 ? `${s.timeout_s} s` : 'the worker’s default'],
          ['Dedicated worker', s.dedicated ? 'yes' : 'no'],
          ['Concurrency', s.concurrency ? pre(json(s.concurrency)) : undefined],
          ['Retry', s.retry ? pre(json(s.retry)) : undefined],
          ['Limits', s.limits ? pre(json(s.limits)) : undefined],
        ]),
      ),
      ctx.can('jobs.run') ? section('Run', runForm(ctx, script)) : null,
    ),
    section('Content', pre(script.content)),
    versionsSection(ctx, path, script, versions),
  );
  if (ctx.can('scripts.write')) {
    ctx.root.append(
      section(
        'Deploy a new version',
        deployForm(ctx, script, (v, same) => {
          if (same) ctx.notify(`The content and settings are unchanged: version ${shortHash(v.hash)} stays the latest.`, 'info');
          else ctx.navigate(location.hash, { message: `Deployed version ${shortHash(v.hash)} of ${v.path}.`, kind: 'ok' });
        }),
      ),
    );
  }
}

function versionsSection(ctx, path, latest, versions) {
  // Newest first from the API; numbered from the oldest (v1).
  const numbered = versions.map((v, i) => ({ ...v, n: versions.length - i }));
  const label = (v) => `v${v.n} · ${shortHash(v.hash)} · ${formatAbsolute(new Date(v.created_at))}`;
  const columns = [
    { label: 'Version', cell: (v) => h('span', null, `v${v.n}`, v.hash === latest.hash ? h('span', { class: 'muted' }, ' (latest)') : '') },
    { label: 'Hash', cell: (v) => h('code', { title: v.hash }, shortHash(v.hash)) },
    { label: 'Deployed', cell: (v) => timeCell(v.created_at) },
    { label: 'By', cell: (v) => v.deployed_by || '—' },
    { label: 'Summary', cell: (v) => v.summary || '' },
  ];
  const options = numbered.map((v) => [v.hash, label(v)]);
  const from = select('from', options, numbered[1]?.hash || numbered[0]?.hash);
  const to = select('to', options, numbered[0]?.hash);
  from.id = 'diff-from';
  to.id = 'diff-to';
  const output = h('div', { class: 'diff-output', 'aria-live': 'polite' });
  const cache = new Map([[latest.hash, latest]]);
  const content = async (hash) => {
    if (!cache.has(hash)) cache.set(hash, await api.get(`/api/scripts/h/${encodeURIComponent(hash)}`, { signal: ctx.signal }));
    return cache.get(hash).content;
  };
  const show = async () => {
    swap(output, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const [a, b] = await Promise.all([content(from.value), content(to.value)]);
      swap(output, diffView(a, b, numbered.find((v) => v.hash === from.value), numbered.find((v) => v.hash === to.value)));
    } catch (err) {
      if (err.name !== 'AbortError') swap(output, h('p', { class: 'form-error', role: 'alert' }, `Could not load the versions: ${err.message}`));
    }
  };
  const form = h(
    'form',
    { class: 'row diff-form', 'aria-label': 'Compare two versions' },
    h('div', { class: 'field' }, h('label', { for: 'diff-from' }, 'From'), from),
    h('div', { class: 'field' }, h('label', { for: 'diff-to' }, 'To'), to),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button secondary' }, 'Show the difference')),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    show();
  });
  if (numbered.length > 1) show();
  else clear(output).append(h('p', { class: 'muted' }, 'Only one version: nothing to compare yet.'));
  return section(
    `Versions (${versions.length})`,
    table(columns, numbered, { caption: `Versions of ${path}, newest first`, key: 'versions' }),
    h('h3', null, 'Difference between two versions'),
    form,
    output,
  );
}

function diffView(oldText, newText, fromV, toV) {
  const lines = diffLines(oldText, newText);
  const { added, removed } = diffStats(lines);
  const summary = h(
    'p',
    { class: 'diff-summary' },
    `v${fromV.n} → v${toV.n}: `,
    added || removed ? `${added} line${added === 1 ? '' : 's'} added, ${removed} removed` : 'identical content',
  );
  const body = h('div', { class: 'diff', role: 'table', 'aria-label': `Line differences from v${fromV.n} to v${toV.n}` });
  for (const l of lines) {
    const kind = l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same';
    body.append(
      h(
        'div',
        { class: ['diff-line', `diff-${kind}`], role: 'row' },
        h('span', { class: 'ln', role: 'cell' }, l.a === null ? '' : String(l.a)),
        h('span', { class: 'ln', role: 'cell' }, l.b === null ? '' : String(l.b)),
        h('span', { class: 'op', role: 'cell', 'aria-label': kind === 'add' ? 'added' : kind === 'del' ? 'removed' : 'unchanged' }, l.op),
        h('span', { class: 'text', role: 'cell' }, l.text),
      ),
    );
  }
  return [summary, h('div', { class: 'diff-wrap', tabindex: '0' }, body)];
}
