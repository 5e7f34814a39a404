// Seeds a fresh `quern up` through its API for the browser test: scripts (one with two
// versions), jobs of every state, two jobs that log slowly (one to watch and cancel, one
// that keeps running while the pages are looked at), schedules, an operator token.

export function client(baseUrl, token) {
  return async function call(method, path, body, asToken = token) {
    const headers = { Authorization: `Bearer ${asToken}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await resp.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: resp.status, json, text };
  };
}

export async function must(call, method, path, body, expect = [200, 201]) {
  const r = await call(method, path, body);
  if (!expect.includes(r.status)) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor(what, fn, timeoutMs = 30000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function waitState(call, id, states, timeoutMs = 30000) {
  const want = [].concat(states);
  return waitFor(`job ${id} to be ${want.join(' or ')}`, async () => {
    const r = await call('GET', `/api/jobs/${id}`);
    return r.status === 200 && want.includes(r.json.state) ? r.json : null;
  }, timeoutMs);
}

export const GREET_V1 = [
  '# Greets someone.',
  '# quern:args {"name": "ada"}',
  'echo "greeting $name"',
  'echo "{\\"greeting\\": \\"hello $name\\"}"',
  '',
].join('\n');

export const GREET_V2 = [
  '# Greets someone, politely.',
  '# quern:args {"name": "ada"}',
  'echo "greeting $name"',
  'echo "preparing a polite greeting"',
  'echo "{\\"greeting\\": \\"hello $name\\", \\"polite\\": true}"',
  '',
].join('\n');

// A tag no worker of the test's config serves: its jobs stay queued.
export const UNSERVED = 'nowhere';

export async function seed(baseUrl, adminToken) {
  const call = client(baseUrl, adminToken);
  await waitFor('the server to be ready', async () => {
    try {
      return (await call('GET', '/readyz')).status === 200;
    } catch {
      return false;
    }
  }, 60000);
  await waitFor('two live workers', async () => {
    const r = await call('GET', '/api/workers');
    return r.status === 200 && r.json.workers.filter((w) => w.live).length >= 2;
  }, 60000);

  const operator = await must(call, 'POST', '/api/tokens', { role: 'operator', label: 'ui-test operator', expires_in_s: 3600 });

  const deploy = (path, content, extra = {}) => must(call, 'POST', '/api/scripts', { path, language: 'bash', content, ...extra });
  const greetV1 = await deploy('f/uitest/greet', GREET_V1, { summary: 'Greets someone' });
  const greetV2 = await deploy('f/uitest/greet', GREET_V2, { summary: 'Greets someone, politely' });
  await deploy('f/uitest/fail', 'echo "about to fail"\necho "something went wrong" >&2\nexit 3\n', { summary: 'Always fails' });
  await deploy('f/uitest/slow', 'for i in $(seq 1 "${count:-60}"); do echo "line $i"; sleep 0.5; done\necho \'{"lines": "done"}\'\n', {
    summary: 'Logs a line every half second',
  });
  await deploy('f/uitest/sleepy', 'echo "sleeping"\nsleep 30\n', { summary: 'Sleeps past its timeout' });

  const run = (path, body) => must(call, 'POST', `/api/jobs/run/p/${path}`, body);
  const success = await run('f/uitest/greet', { args: { name: 'ada' } });
  const failure = await run('f/uitest/fail', { args: {} });
  const timeout = await run('f/uitest/sleepy', { args: {}, timeout_s: 1 });
  const canceled = await run('f/uitest/greet', { args: { name: 'canceled-one' }, tag: UNSERVED });
  await must(call, 'POST', `/api/jobs/${canceled.id}/cancel`);
  const queued = await run('f/uitest/greet', {
    args: { name: 'waiting-one' },
    tag: UNSERVED,
    priority: 70,
    concurrency: { key: 'uitest-key', max_running: 1 },
  });
  await waitState(call, success.id, 'success');
  await waitState(call, failure.id, 'failure');
  await waitState(call, canceled.id, 'canceled');
  await waitState(call, timeout.id, 'timeout');

  await must(call, 'POST', '/api/schedules', {
    name: 'f/uitest/every-10s',
    cron: '*/10 * * * * *',
    script_path: 'f/uitest/greet',
    args: { name: 'cron' },
  });
  await must(call, 'POST', '/api/schedules', {
    name: 'f/uitest/nightly',
    cron: '0 3 * * *',
    timezone: 'Europe/Paris',
    script_path: 'f/uitest/fail',
    paused: true,
  });
  const fired = await waitFor('the 10 s schedule to fire', async () => {
    const r = await call('GET', '/api/schedules/f/uitest/every-10s');
    return r.status === 200 && r.json.last_job_id ? r.json : null;
  }, 25000, 500);

  // Last, so that the browser finds them running: one watched and canceled from the UI
  // (60 lines over 30 s), one that keeps running and logging while the pages are looked at.
  const slow = await run('f/uitest/slow', { args: { count: '60' } });
  const background = await run('f/uitest/slow', { args: { count: '600' } });
  await waitState(call, slow.id, 'running');
  await waitState(call, background.id, 'running');
  await waitFor(`job ${slow.id} to log`, async () => (await call('GET', `/api/jobs/${slow.id}/logs`)).text.includes('line 2'));

  return {
    call,
    operatorToken: operator.token,
    operatorTokenId: operator.id,
    greetV1,
    greetV2,
    jobs: { success: success.id, failure: failure.id, timeout: timeout.id, canceled: canceled.id, queued: queued.id, slow: slow.id, background: background.id },
    scheduleJob: fired.last_job_id,
  };
}
