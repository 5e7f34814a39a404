// The forms of the script pages: run a script (JSON arguments checked with
// JSON.parse before anything is sent) and deploy a version.
import * as api from '../lib/api.js';
import { h, field, select, errorBox, showError, uid } from '../lib/dom.js';

export const LANGUAGES = ['bash', 'python3', 'sql', 'http', 'noop', 'gpu'];

// The arguments a script documents in a `quern:args {...}` comment, else {}.
export function documentedArgs(content) {
  const m = /quern:args\s+(\{.*\})\s*$/m.exec(content || '');
  if (m) {
    try {
      return JSON.stringify(JSON.parse(m[1]), null, 2);
    } catch {
      // not JSON: ignore it
    }
  }
  return '{}';
}

// Parses the arguments: an object, or an error message naming the problem.
export function parseArgs(text) {
  let value;
  try {
    value = JSON.parse(text.trim() === '' ? '{}' : text);
  } catch (err) {
    return { error: `The arguments are not valid JSON: ${err.message}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: 'The arguments must be a JSON object, like {"name": "value"}.' };
  }
  return { value };
}

export function runForm(ctx, script) {
  const args = h('textarea', { name: 'args', rows: '6', spellcheck: 'false', class: 'mono', id: 'run-args' }, documentedArgs(script.content));
  const tag = h('input', { name: 'tag', type: 'text', spellcheck: 'false', autocomplete: 'off', placeholder: script.settings?.tag || 'from the script or routing rules' });
  const priority = h('input', { name: 'priority', type: 'number', min: '1', max: '100', placeholder: 'default' });
  const error = errorBox();
  error.id = uid('run-error');
  args.setAttribute('aria-describedby', error.id);
  const submit = h('button', { type: 'submit', class: 'button' }, 'Run');
  const form = h(
    'form',
    { class: 'form', 'aria-label': `Run ${script.path}`, novalidate: true },
    field('Arguments (JSON object)', args, 'Checked as JSON before it is sent.'),
    h('div', { class: 'row' }, field('Tag (optional)', tag), field('Priority 1–100 (optional)', priority)),
    error,
    h('div', { class: 'actions' }, submit),
  );
  args.addEventListener('input', () => {
    const parsed = parseArgs(args.value);
    args.setAttribute('aria-invalid', String(Boolean(parsed.error)));
    if (!parsed.error) showError(error, '');
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const parsed = parseArgs(args.value);
    if (parsed.error) {
      args.setAttribute('aria-invalid', 'true');
      showError(error, parsed.error);
      args.focus();
      return;
    }
    const body = { args: parsed.value };
    if (tag.value.trim()) body.tag = tag.value.trim();
    if (priority.value) body.priority = Number(priority.value);
    submit.disabled = true;
    showError(error, '');
    try {
      const r = await api.post(`/api/jobs/run/p/${api.pathParam(script.path)}`, body);
      ctx.navigate(`#/jobs/${r.id}`, { message: `Job #${r.id} queued (tag ${r.tag}).${r.warning ? ' ' + r.warning : ''}`, kind: 'ok' });
    } catch (err) {
      showError(error, `Not run: ${err.message}`);
      submit.disabled = false;
    }
  });
  return form;
}

// Deploy: a new script (no `script`) or a new version of `script`, which
// keeps its settings (tag, priority, timeout, concurrency, retry, limits)
// unless the form changes the tag.
export function deployForm(ctx, script, onDeployed) {
  const isNew = !script;
  const path = h('input', { name: 'path', type: 'text', required: true, spellcheck: 'false', autocomplete: 'off', placeholder: 'f/team/name', value: script?.path || '' });
  if (!isNew) path.readOnly = true;
  const language = select('language', LANGUAGES, script?.language || 'bash');
  const tag = h('input', { name: 'tag', type: 'text', spellcheck: 'false', autocomplete: 'off', value: script?.settings?.tag || '' });
  const summary = h('input', { name: 'summary', type: 'text', autocomplete: 'off', value: script?.summary || '' });
  const content = h('textarea', { name: 'content', rows: '12', spellcheck: 'false', class: 'mono', required: true }, script?.content || '');
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'button' }, isNew ? 'Deploy script' : 'Deploy new version');
  const form = h(
    'form',
    { class: 'form', 'aria-label': isNew ? 'Deploy a new script' : `Deploy a new version of ${script.path}`, novalidate: true },
    h(
      'div',
      { class: 'row' },
      field('Path', path, isNew ? 'f/<folder>/<name> or u/<user>/<name>' : undefined),
      field('Language', language),
      field('Tag (optional)', tag),
    ),
    field('Summary (optional)', summary),
    field('Content', content, isNew ? undefined : 'Deploying identical content returns the existing version. Other settings are kept.'),
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!path.value.trim()) return showError(error, 'Enter a path.');
    if (!content.value.trim()) return showError(error, 'Enter the script’s content.');
    const body = { path: path.value.trim(), language: language.value, content: content.value };
    if (summary.value.trim()) body.summary = summary.value.trim();
    const s = script?.settings || {};
    if (tag.value.trim()) body.tag = tag.value.trim();
    if (!isNew) {
      if (s.priority > 0) body.priority = s.priority;
      if (s.timeout_s > 0) body.timeout_s = s.timeout_s;
      if (s.dedicated) body.dedicated = true;
      for (const k of ['concurrency', 'retry', 'limits']) if (s[k]) body[k] = s[k];
    }
    submit.disabled = true;
    showError(error, '');
    try {
      const v = await api.post('/api/scripts', body);
      const same = !isNew && v.hash === script.hash;
      onDeployed(v, same);
    } catch (err) {
      showError(error, `Not deployed: ${err.message}`);
      submit.disabled = false;
    }
  });
  return form;
}
