// Tokens (tokens.manage, the admin role): the list (never the secrets),
// create — the secret is shown once, here — and revoke, after a confirm.
import * as api from '../lib/api.js';
import { h, badge, table, section, field, select, errorBox, showError, clear } from '../lib/dom.js';
import { timeCell, parseTime } from '../lib/time.js';

const EXPIRY = [
  ['', 'never'],
  ['3600', '1 hour'],
  ['86400', '1 day'],
  ['604800', '7 days'],
  ['2592000', '30 days'],
  ['7776000', '90 days'],
  ['31536000', '1 year'],
];

export async function render(ctx) {
  ctx.setTitle('Tokens');
  ctx.root.append(h('div', { class: 'page-head' }, h('h1', null, 'Tokens')));
  if (!ctx.can('tokens.manage')) {
    ctx.root.append(
      h('p', { class: 'form-error', role: 'alert', id: 'tokens-forbidden' }, `Your role (${ctx.me.role}) may not manage tokens: that needs the tokens.manage permission, which only admins have.`),
    );
    return;
  }
  const list = h('div', { class: 'stack' });
  const secretSlot = h('div', { 'aria-live': 'polite' });
  ctx.root.append(
    h('p', { class: 'muted' }, 'Tokens are shown once, when they are created; the server keeps only their hashes.'),
    secretSlot,
    section('Create a token', createForm(ctx, secretSlot, () => load(ctx, list))),
    list,
  );
  await load(ctx, list);
}

function status(t) {
  if (t.revoked_at) return badge('revoked', 'failure');
  const exp = parseTime(t.expires_at);
  if (exp && exp.getTime() <= Date.now()) return badge('expired', 'late');
  return badge('active', 'live');
}

async function load(ctx, list) {
  const { tokens } = await api.get('/api/tokens', { signal: ctx.signal });
  const columns = [
    { label: 'ID', cell: (t) => h('code', null, t.id) },
    { label: 'Label', cell: (t) => [t.label || h('span', { class: 'muted' }, 'no label'), t.id === ctx.me.token_id ? h('span', { class: 'muted' }, ' (this session)') : ''] },
    { label: 'Role', cell: (t) => t.role },
    { label: 'Status', cell: status },
    { label: 'Group / tags', cell: (t) => [t.group || '', t.tags && t.tags.length ? ` ${t.tags.join(', ')}` : ''].join('').trim() || '—' },
    { label: 'Created', cell: (t) => timeCell(t.created_at) },
    { label: 'Expires', cell: (t) => (t.expires_at ? timeCell(t.expires_at) : 'never') },
    { label: 'Last used', cell: (t) => timeCell(t.last_used_at) },
    { label: 'Action', cell: (t) => (t.revoked_at ? '' : revokeButton(ctx, t, () => load(ctx, list))) },
  ];
  list.replaceChildren(section(`All tokens (${tokens.length})`, table(columns, tokens, { caption: 'Tokens', key: 'tokens', empty: 'No tokens.' })));
}

function revokeButton(ctx, t, reload) {
  const b = h('button', { type: 'button', class: 'button danger small', 'aria-label': `Revoke token ${t.id}${t.label ? ' (' + t.label + ')' : ''}` }, 'Revoke');
  b.addEventListener('click', async () => {
    const own = t.id === ctx.me.token_id;
    const what = `${t.id}${t.label ? ' (' + t.label + ')' : ''}`;
    if (!window.confirm(`Revoke token ${what}? Everything using it stops working at once.${own ? ' It is the token of this session: you will be logged out.' : ''}`)) return;
    b.disabled = true;
    try {
      await api.del(`/api/tokens/${encodeURIComponent(t.id)}`);
      ctx.notify(`Token ${what} revoked.`, 'ok');
      await reload();
    } catch (err) {
      if (err.status !== 401) ctx.notify(`Could not revoke ${what}: ${err.message}`, 'error');
      b.disabled = false;
    }
  });
  return b;
}

function createForm(ctx, secretSlot, reload) {
  const role = select('role', ['operator', 'developer', 'admin', 'agent'], 'operator');
  const label = h('input', { name: 'label', type: 'text', autocomplete: 'off', maxlength: '200' });
  const expires = select('expires_in_s', EXPIRY, '2592000');
  const group = h('input', { name: 'group', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const tags = h('input', { name: 'tags', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'bash,python3' });
  const agentOnly = h('div', { class: 'row', hidden: true }, field('Agent group', group), field('Agent tags (comma-separated)', tags, 'The tags an agent may claim jobs of.'));
  role.addEventListener('change', () => {
    agentOnly.hidden = role.value !== 'agent';
  });
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'button' }, 'Create token');
  const form = h(
    'form',
    { class: 'form', 'aria-label': 'Create a token', novalidate: true },
    h('div', { class: 'row' }, field('Role', role), field('Label', label, 'Who or what uses it.'), field('Expires in', expires)),
    agentOnly,
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { role: role.value };
    if (label.value.trim()) body.label = label.value.trim();
    if (expires.value) body.expires_in_s = Number(expires.value);
    if (role.value === 'agent') {
      if (group.value.trim()) body.group = group.value.trim();
      const list = tags.value.split(',').map((t) => t.trim()).filter(Boolean);
      if (list.length) body.tags = list;
    }
    submit.disabled = true;
    showError(error, '');
    try {
      const r = await api.post('/api/tokens', body);
      showSecret(secretSlot, r, body.label);
      form.reset();
      agentOnly.hidden = true;
      await reload();
    } catch (err) {
      showError(error, `Not created: ${err.message}`);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// The new token's secret, shown once: it is not kept by the page.
function showSecret(slot, created, label) {
  const value = h('input', { type: 'text', readonly: true, class: 'mono secret', id: 'new-token-secret', value: created.token, 'aria-label': 'The new token' });
  const copy = h('button', { type: 'button', class: 'button secondary small' }, 'Copy');
  copy.addEventListener('click', async () => {
    value.select();
    try {
      await navigator.clipboard.writeText(created.token);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Press Ctrl+C to copy';
    }
  });
  const done = h('button', { type: 'button', class: 'button small' }, 'I have saved it');
  done.addEventListener('click', () => clear(slot));
  clear(slot).append(
    h(
      'section',
      { class: 'card secret-card', 'aria-label': 'New token' },
      h('h2', null, `New ${created.role} token ${created.id}${label ? ' (' + label + ')' : ''}`),
      h('p', null, h('strong', null, 'Copy it now: it is shown only this once.')),
      h('div', { class: 'row' }, value, copy, done),
    ),
  );
  value.focus();
  value.select();
}
