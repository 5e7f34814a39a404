// A job: state, script, arguments, result, error, attempts, timings and
// resources; its log, streamed live over server-sent events while the job
// is queued or running (GET /api/jobs/{id}/logs/stream: "log" events with
// new text, then one "done"); Cancel and Re-run.
import * as api from '../lib/api.js';
import { h, clear, facts, json, pre, section, table, link, swap, shortHash } from '../lib/dom.js';
import { timeCell, formatDuration, formatBytes, between } from '../lib/time.js';
import { stateBadge, finished } from './job_common.js';

export async function render(ctx) {
  const id = ctx.params.id;
  ctx.setTitle(`Job #${id}`);
  let job = await api.get(`/api/jobs/${id}`, { signal: ctx.signal });

  const badgeSlot = h('span', { class: 'head-badge' });
  const actions = h('div', { class: 'actions' });
  const details = h('div', { class: 'stack' });
  const log = logPane(ctx, id);
  ctx.root.append(
    h('p', { class: 'crumbs' }, link('#/jobs', 'Jobs'), ' / ', `#${id}`),
    h('div', { class: 'page-head' }, h('h1', null, `Job #${id}`, ' ', badgeSlot), actions),
    details,
    log.element,
  );

  let pollTimer = null;
  const refresh = async () => {
    try {
      job = await api.get(`/api/jobs/${id}`, { signal: ctx.signal });
      show();
    } catch (err) {
      if (err.name !== 'AbortError' && !ctx.signal.aborted) ctx.notify(`Could not refresh job #${id}: ${err.message}`, 'error');
    }
  };
  const poll = () => {
    clearTimeout(pollTimer);
    if (!finished(job.state) && !ctx.signal.aborted) {
      pollTimer = setTimeout(async () => {
        await refresh();
        poll();
      }, 2000);
    }
  };
  ctx.onLeave(() => clearTimeout(pollTimer));

  function show() {
    swap(badgeSlot, stateBadge(job.state, job.cancel_requested));
    swap(actions, actionButtons(ctx, job, refresh));
    swap(details, detailSections(job));
  }
  show();
  log.start(job, refresh);
  poll();
}

function actionButtons(ctx, job, refresh) {
  const out = [];
  if (job.script_path) out.push(link(`#/scripts/${api.pathParam(job.script_path)}`, 'Script', { class: 'button secondary' }));
  if (!finished(job.state) && ctx.can('jobs.cancel')) {
    const cancel = h('button', { type: 'button', class: 'button danger', dataset: { focusKey: 'cancel' } }, job.cancel_requested ? 'Cancel again' : 'Cancel job');
    cancel.addEventListener('click', async () => {
      if (!window.confirm(`Cancel job #${job.id}? A running job is stopped (SIGTERM, then SIGKILL).`)) return;
      cancel.disabled = true;
      try {
        const r = await api.post(`/api/jobs/${job.id}/cancel`);
        ctx.notify(r.outcome === 'canceled' ? `Job #${job.id} canceled.` : `Cancel of job #${job.id} requested: its worker stops it.`, 'ok');
      } catch (err) {
        ctx.notify(`Could not cancel job #${job.id}: ${err.message}`, 'error');
      }
      await refresh();
    });
    out.push(cancel);
  }
  const inline = !job.script_path;
  if (ctx.can(inline ? 'jobs.run_inline' : 'jobs.run')) {
    const rerun = h('button', { type: 'button', class: 'button', dataset: { focusKey: 'rerun' } }, 'Re-run');
    rerun.addEventListener('click', async () => {
      rerun.disabled = true;
      try {
        const r = await api.post(`/api/jobs/${job.id}/rerun`);
        ctx.navigate(`#/jobs/${r.id}`, { message: `Job #${r.id} created: a re-run of #${job.id} with the same arguments.`, kind: 'ok' });
      } catch (err) {
        ctx.notify(`Could not re-run job #${job.id}: ${err.message}`, 'error');
        rerun.disabled = false;
      }
    });
    out.push(rerun);
  }
  return out;
}

function detailSections(job) {
  const waited = between(job.created_at, job.started_at);
  const overview = facts([
    ['State', stateBadge(job.state, job.cancel_requested)],
    ['Script', job.script_path ? link(`#/scripts/${api.pathParam(job.script_path)}`, job.script_path) : `inline ${job.language} code`],
    ['Version', job.script_hash ? h('code', { title: job.script_hash }, shortHash(job.script_hash)) : undefined],
    ['Language', job.language],
    ['Tag', link(`#/jobs?${new URLSearchParams({ tag: job.tag })}`, job.tag)],
    ['Priority', String(job.priority)],
    ['Attempt', String(job.attempt)],
    ['Worker', job.worker_id ? h('code', null, job.worker_id) : null],
    ['Concurrency key', job.concurrency_key ? h('code', null, job.concurrency_key) : undefined],
  ]);
  const timings = facts([
    ['Created', timeCell(job.created_at)],
    ['Started', timeCell(job.started_at)],
    ['Completed', timeCell(job.completed_at)],
    ['Waited in queue', waited === null ? null : formatDuration(waited)],
    ['Ran for', typeof job.duration_ms === 'number' ? formatDuration(job.duration_ms) : job.state === 'running' ? 'still running' : null],
  ]);
  const out = [h('div', { class: 'grid-2' }, section('Overview', overview), section('Timings', timings))];
  if (job.error) out.push(section('Error', pre(job.error, 'code error-text')));
  out.push(
    h(
      'div',
      { class: 'grid-2' },
      section('Arguments', pre(json(job.args ?? {}))),
      section('Result', job.result === null || job.result === undefined ? h('p', { class: 'muted' }, finished(job.state) ? 'No result.' : 'Not finished yet.') : pre(json(job.result))),
    ),
  );
  if (job.resources) out.push(section('Resources', resourceFacts(job.resources)));
  if (job.attempts && job.attempts.length) out.push(section('Earlier attempts', attemptsTable(job.attempts)));
  if (job.code) out.push(section('Code', pre(job.code)));
  return out;
}

const RESOURCE_NAMES = { cpu_ms: 'CPU time', peak_memory_bytes: 'Peak memory' };

// What the job used, as its plugin reported it: durations and sizes in
// units, anything else as it came.
function resourceFacts(resources) {
  const pairs = [];
  for (const [key, value] of Object.entries(resources)) {
    let shown;
    if (key.endsWith('_bytes') && typeof value === 'number') shown = formatBytes(value);
    else if (key.endsWith('_ms') && typeof value === 'number') shown = formatDuration(value);
    else shown = typeof value === 'object' ? pre(json(value)) : String(value);
    const name = RESOURCE_NAMES[key] || key.replace(/_(ms|bytes)$/, '').replace(/_/g, ' ');
    pairs.push([name.charAt(0).toUpperCase() + name.slice(1), shown]);
  }
  return facts(pairs);
}

function attemptsTable(attempts) {
  return table(
    [
      { label: 'Attempt', class: 'num', cell: (a) => String(a.attempt) },
      { label: 'Outcome', cell: (a) => stateBadge(a.status) },
      { label: 'Error', cell: (a) => a.error || '' },
      { label: 'Worker', cell: (a) => (a.worker_id ? h('code', null, a.worker_id) : '—') },
      { label: 'Started', cell: (a) => timeCell(a.started_at) },
      { label: 'Ended', cell: (a) => timeCell(a.ended_at) },
      { label: 'Retry at', cell: (a) => timeCell(a.retry_at) },
    ],
    attempts,
    { caption: 'Earlier attempts', key: 'attempts' },
  );
}

// The log: the whole text of a finished job, or a live stream. The stream
// starts from the beginning on each (re)connection, so the pane is reset
// when the EventSource reconnects.
function logPane(ctx, id) {
  const status = h('p', { class: 'muted log-status', id: 'job-log-status', 'aria-live': 'polite' }, 'Loading the log…');
  const text = h('pre', { class: 'log', id: 'job-log', tabindex: '0', 'aria-label': `Log of job #${id}`, 'aria-describedby': 'job-log-status' });
  const follow = h('input', { type: 'checkbox', id: 'job-log-follow', checked: true });
  const element = section(
    'Log',
    h('div', { class: 'log-head' }, status, h('label', { class: 'inline', for: 'job-log-follow' }, follow, ' Follow the end')),
    text,
  );
  let es = null;
  ctx.onLeave(() => es && es.close());

  const lines = () => {
    const t = text.textContent;
    if (!t) return 0;
    return t.split('\n').length - (t.endsWith('\n') ? 1 : 0);
  };
  const add = (chunk) => {
    text.append(chunk);
    if (follow.checked) text.scrollTop = text.scrollHeight;
  };
  const loadWhole = async (label) => {
    const body = await api.get(`/api/jobs/${id}/logs`, { signal: ctx.signal, text: true });
    clear(text).append(body);
    if (follow.checked) text.scrollTop = text.scrollHeight;
    status.textContent = `${label} · ${lines()} line${lines() === 1 ? '' : 's'}`;
  };

  const start = (job, onDone) => {
    if (finished(job.state)) {
      loadWhole('The complete log').catch((err) => {
        if (!ctx.signal.aborted) status.textContent = `Could not load the log: ${err.message}`;
      });
      return;
    }
    let opened = false;
    es = new EventSource(`/api/jobs/${id}/logs/stream`);
    status.textContent = job.state === 'queued' ? 'Waiting for the job to start…' : 'Connecting to the live log…';
    es.addEventListener('open', () => {
      if (opened) clear(text); // a reconnection streams from the start again
      opened = true;
      status.textContent = 'Streaming live…';
    });
    es.addEventListener('log', (e) => {
      add(e.data);
      status.textContent = `Streaming live · ${lines()} line${lines() === 1 ? '' : 's'}`;
    });
    es.addEventListener('done', (e) => {
      es.close();
      let outcome = '';
      try {
        outcome = JSON.parse(e.data).state;
      } catch {
        outcome = 'finished';
      }
      status.textContent = `The job ended: ${outcome} · ${lines()} line${lines() === 1 ? '' : 's'}`;
      onDone();
    });
    es.addEventListener('error', (e) => {
      if (typeof e.data === 'string') {
        // The server's own "error" event: the stream cannot go on.
        es.close();
        status.textContent = `The live log stopped: ${e.data}`;
        return;
      }
      if (es.readyState === EventSource.CLOSED) {
        status.textContent = 'The live log was refused or lost; showing the log so far.';
        loadWhole('The log so far (live stream lost; reload to retry)').catch(() => {});
      } else {
        status.textContent = 'Connection lost; reconnecting…';
      }
    });
  };
  return { element, start };
}
