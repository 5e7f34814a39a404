// Scripts: every deployed path (its latest version), and a form to deploy a
// new script for roles with scripts.write.
import * as api from '../lib/api.js';
import { h, table, link, section, shortHash } from '../lib/dom.js';
import { timeCell } from '../lib/time.js';
import { deployForm } from './script_forms.js';

export async function render(ctx) {
  ctx.setTitle('Scripts');
  const archived = ctx.query.get('archived') === 'true';
  const { scripts } = await api.get(`/api/scripts${archived ? '?archived=true' : ''}`, { signal: ctx.signal });
  const columns = [
    { label: 'Path', cell: (s) => link(`#/scripts/${api.pathParam(s.path)}`, s.path) },
    { label: 'Language', cell: (s) => s.language },
    { label: 'Summary', cell: (s) => s.summary || '' },
    { label: 'Tag', cell: (s) => (s.settings?.tag ? h('code', null, s.settings.tag) : h('span', { class: 'muted' }, 'routing rules')) },
    { label: 'Latest version', cell: (s) => h('code', { title: s.hash }, shortHash(s.hash)) },
    { label: 'Deployed', cell: (s) => timeCell(s.created_at) },
    { label: 'By', cell: (s) => s.deployed_by || '—' },
    { label: 'Status', cell: (s) => (s.archived ? 'archived' : 'active') },
    { label: 'Jobs', cell: (s) => link(`#/jobs?${new URLSearchParams({ script_path: s.path })}`, 'jobs', { 'aria-label': `Jobs of ${s.path}` }) },
  ];
  ctx.root.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, 'Scripts'),
      link(archived ? '#/scripts' : '#/scripts?archived=true', archived ? 'Hide archived' : 'Show archived', { class: 'button secondary small' }),
    ),
    h('p', { class: 'muted' }, `${scripts.length} script${scripts.length === 1 ? '' : 's'}. Open one for its versions, their differences and a run form.`),
    table(columns, scripts, { caption: 'Scripts (latest version of each path)', key: 'scripts', empty: 'No script is deployed yet.' }),
  );
  if (ctx.can('scripts.write')) {
    ctx.root.append(
      section(
        'Deploy a new script',
        deployForm(ctx, null, (v) => ctx.navigate(`#/scripts/${api.pathParam(v.path)}`, { message: `Deployed ${v.path} (version ${shortHash(v.hash)}).`, kind: 'ok' })),
      ),
    );
  }
}
