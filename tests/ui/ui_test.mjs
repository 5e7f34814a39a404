// The web UI in headless Chromium against a real, seeded `quern up` (run by ui_test.sh,
// which passes QUERN_URL, QUERN_ADMIN_TOKEN, UI_OUT_DIR, PLAYWRIGHT_DIR and CHROMIUM).
// Prints PASS/FAIL per check; exits 1 when any failed.
import { seed, must, waitFor, waitState, sleep, GREET_V2, UNSERVED } from './seed.mjs';
import { Checks, ConsoleWatch, loadPlaywright, waitText, open, shoot, assert, assertEqual, WIDE } from './browser.mjs';
import { readFile } from 'node:fs/promises';

const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set (run tests/ui/ui_test.sh)`);
  return process.env[name];
};
const api = env('QUERN_URL');
const base = process.env.QUERN_UI_URL || api; // the UI's origin (the server's own)
const adminToken = env('QUERN_ADMIN_TOKEN');
const outDir = env('UI_OUT_DIR');
const { chromium } = loadPlaywright(env('PLAYWRIGHT_DIR'));

const checks = new Checks();
const watch = new ConsoleWatch();
let browser;

async function newContext() {
  const context = await browser.newContext({ viewport: WIDE, locale: 'en-GB', timezoneId: 'Europe/Paris' });
  await watch.attach(context);
  context.setDefaultTimeout(15000);
  return context;
}

async function login(page, token) {
  watch.allow401 = true; // the login page's own /api/me before the session exists
  await page.goto(`${base}/ui/`);
  await page.getByLabel('Token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('#nav a');
  watch.allow401 = false;
}

const rowTexts = (page) => page.$$eval('main tbody tr', (rows) => rows.map((r) => r.innerText));
const navLinks = (page) => page.$$eval('#nav a', (as) => as.map((a) => a.textContent.trim()));
const hashJobId = (page) => {
  const m = /#\/jobs\/(\d+)$/.exec(page.url());
  return m ? Number(m[1]) : null;
};

// The UI's line diff (host/ui/assets/lib/diff.js, a module without imports), loaded as
// a data: URL so that it is an ES module whatever the Node version.
async function diffModule() {
  const src = await readFile(new URL('../../host/ui/assets/lib/diff.js', import.meta.url), 'utf8');
  return import(`data:text/javascript,${encodeURIComponent(src)}`);
}

async function main() {
  await checks.run('the line diff (LCS): minimal on examples, and rebuilds both sides of random texts', async () => {
    const { diffLines, diffStats } = await diffModule();
    const show = (a, b) => diffLines(a, b).map((l) => l.op + l.text).join('|');
    assertEqual(show('a\nb\nc\n', 'a\nx\nc\n'), ' a|-b|+x| c', 'one changed line');
    assertEqual(show('a\nb\nc\nd', 'b\nc\nd\ne'), '-a| b| c| d|+e', 'head removed, tail added');
    assertEqual(show('', 'a'), '+a', 'from nothing');
    assertEqual(diffStats(diffLines('x\na\nb\ny', 'x\nb\na\ny')), { added: 1, removed: 1 }, 'a swap');
    for (let t = 0; t < 300; t += 1) {
      const text = () => Array.from({ length: Math.floor(Math.random() * 15) }, () => 'abcd'[Math.floor(Math.random() * 4)]).join('\n');
      const a = text();
      const b = text();
      const d = diffLines(a, b);
      assertEqual(d.filter((l) => l.op !== '+').map((l) => l.text).join('\n'), a, `old side of ${JSON.stringify([a, b])}`);
      assertEqual(d.filter((l) => l.op !== '-').map((l) => l.text).join('\n'), b, `new side of ${JSON.stringify([a, b])}`);
    }
  });

  let s;
  await checks.run('seed quern up through the API (scripts, jobs of each state, schedules, tokens)', async () => {
    s = await seed(api, adminToken);
    console.log(`  seeded jobs ${JSON.stringify(s.jobs)}`);
  }, { fatal: true });
  const { call, jobs } = s;
  browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox'], headless: true });

  await checks.run('GET / redirects to /ui/; /ui/ is served with the CSP and no inline script or style', async () => {
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    assertEqual(root.status, 302, 'GET / status');
    assert(/\/ui\/$/.test(root.headers.get('location') || ''), `Location: ${root.headers.get('location')}`);
    const page = await fetch(`${base}/ui/`);
    assertEqual(page.status, 200, 'GET /ui/ status');
    const csp = page.headers.get('content-security-policy') || '';
    assert(csp.includes("script-src 'self'") && csp.includes("style-src 'self'") && !csp.includes('unsafe'), `CSP: ${csp}`);
    const html = await page.text();
    assert(/<script type="module" src="app.js"><\/script>/.test(html), 'index.html loads app.js as a module');
    assert(!/<script(?![^>]*\ssrc=)[^>]*>/i.test(html), 'index.html has an inline <script>');
    assert(!/<style|\sstyle=|\son[a-z]+=/i.test(html), 'index.html has inline style or an event handler attribute');
    assertEqual((await fetch(`${base}/ui/no-such-file.js`)).status, 404, 'an unknown UI file');
  });

  // ---- Admin -------------------------------------------------------------------------
  const admin = await newContext();
  const page = await admin.newPage();
  page.on('dialog', (d) => d.accept());

  await checks.run('the login page asks for a token (password field labelled Token) and refuses a wrong one', async () => {
    watch.allow401 = true;
    await page.goto(`${base}/ui/`);
    const input = page.getByLabel('Token', { exact: true });
    await input.waitFor();
    assertEqual(await input.getAttribute('type'), 'password', 'the token field type');
    assert(/#\/login/.test(page.url()), `not on the login route: ${page.url()}`);
    await shoot(page, outDir, 'login');
    await input.fill('qrn_tok_0000000000000000_' + '0'.repeat(64));
    await page.getByRole('button', { name: 'Log in' }).click();
    await waitText(page, 'not valid', { root: '#login-error' });
    watch.allow401 = false;
  });

  await checks.run('login with the admin token: every page in the navigation, an HttpOnly SameSite=Strict cookie', async () => {
    await login(page, adminToken);
    assertEqual(await navLinks(page), ['Workers', 'Queue', 'Jobs', 'Scripts', 'Schedules', 'Tokens'], 'admin navigation');
    const cookie = (await admin.cookies()).find((c) => c.name === 'quern_session');
    assert(cookie, 'no quern_session cookie');
    assert(cookie.httpOnly && cookie.sameSite === 'Strict', `cookie flags ${JSON.stringify(cookie)}`);
  }, { fatal: true });

  await checks.run('keyboard: Tab reaches the skip link, then the navigation, with a visible focus ring', async () => {
    await open(page, base, '#/queue', 'Queue');
    await page.reload(); // a fresh load: the focus starts at the top of the document
    await waitText(page, 'Queue', { root: 'main h1' });
    const focused = () =>
      page.evaluate(() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        return { text: el.textContent.trim(), outline: style.outlineStyle, width: parseFloat(style.outlineWidth) };
      });
    await page.keyboard.press('Tab');
    assertEqual((await focused()).text, 'Skip to content', 'the first Tab stop');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const nav = await focused();
    assertEqual(nav.text, 'Workers', 'the first link of the navigation');
    assert(nav.outline !== 'none' && nav.width >= 2, `no visible focus: ${JSON.stringify(nav)}`);
    await page.keyboard.press('Enter');
    await waitText(page, 'Workers', { root: 'main h1' });
  });

  // The job that logs slowly is watched first, while it still runs (30 s in all).
  await checks.run("the running job's log pane gains lines while it runs", async () => {
    await open(page, base, `#/jobs/${jobs.slow}`, `Job #${jobs.slow}`);
    await waitText(page, 'Streaming live', { root: '#job-log-status' });
    await waitText(page, 'line 2', { root: '#job-log' });
    const count = () => page.$eval('#job-log', (el) => el.textContent.split('\n').filter((l) => l.startsWith('line ')).length);
    const first = await count();
    await sleep(2500);
    const second = await count();
    console.log(`  log lines: ${first}, 2.5 s later ${second}`);
    assert(second >= first + 2, `the log did not grow: ${first} then ${second} lines`);
  });

  await checks.run('Cancel from the UI cancels the running job (state canceled through the API)', async () => {
    await page.getByRole('button', { name: 'Cancel job' }).click();
    const job = await waitState(call, jobs.slow, 'canceled', 20000);
    assertEqual(job.state, 'canceled', 'state');
    await waitText(page, 'canceled', { root: 'main h1' });
    await waitText(page, 'The job ended: canceled', { root: '#job-log-status' });
  });

  await checks.run('Workers: both groups, their workers, slots and the running job; refreshed live', async () => {
    const { json } = await call('GET', '/api/workers');
    await open(page, base, '#/workers', 'Workers');
    await waitText(page, ['Group alpha', 'Group beta', ...json.workers.map((w) => w.id), 'busy', `#${jobs.background}`, 'RSS']);
    const before = await page.textContent('.live-status');
    await page.waitForFunction((t) => document.querySelector('.live-status').textContent !== t, before, { timeout: 6000 });
    await shoot(page, outDir, 'workers');
  });

  await checks.run('Queue: per tag and priority, the unserved tag marked, the concurrency key', async () => {
    await open(page, base, '#/queue', 'Queue');
    await waitText(page, [UNSERVED, 'NOT SERVED', 'bash', 'served', 'uitest-key', 'Waiting by priority', '70']);
    await shoot(page, outDir, 'queue');
  });

  await checks.run('Jobs: the list shows every seeded job and every state', async () => {
    await open(page, base, '#/jobs', 'Jobs');
    await waitText(page, Object.values(jobs).map((id) => `#${id}`));
    await waitText(page, ['success', 'failure', 'timeout', 'canceled', 'queued', 'running', 'f/uitest/greet']);
    await shoot(page, outDir, 'jobs');
  });

  await checks.run('Jobs: the state filter (form) shows only failed jobs', async () => {
    await page.getByLabel('State', { exact: true }).selectOption('failure');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForFunction(() => location.hash.includes('state=failure'));
    await waitText(page, `#${jobs.failure}`);
    const rows = await rowTexts(page);
    assert(rows.length >= 1 && rows.every((r) => r.includes('failure')), `rows: ${rows.join(' | ')}`);
    assert(!rows.some((r) => r.includes(`#${jobs.success}\t`)), 'the success job is listed');
  });

  await checks.run('Jobs: "Older jobs" pages back with before_id', async () => {
    await open(page, base, '#/jobs?limit=3', 'Jobs');
    await page.waitForFunction(() => document.querySelectorAll('main tbody tr').length === 3);
    const ids = async () => (await rowTexts(page)).map((r) => Number(/#(\d+)/.exec(r)[1]));
    const first = await ids();
    await page.getByRole('button', { name: 'Older jobs' }).click();
    await page.waitForFunction(() => document.querySelectorAll('main tbody tr').length === 6);
    const all = await ids();
    assertEqual(all.slice(0, 3), first, 'the first page stays');
    assert(all.every((id, i) => i === 0 || id < all[i - 1]), `not newest first: ${all}`);
  });

  await checks.run('Job detail (success): arguments, result, timings, resources, the complete log', async () => {
    await open(page, base, `#/jobs/${jobs.success}`, `Job #${jobs.success}`);
    await waitText(page, ['success', 'Arguments', '"ada"', 'hello ada', 'Timings', 'Ran for', 'Resources', 'f/uitest/greet']);
    await waitText(page, 'greeting ada', { root: '#job-log' });
    await waitText(page, 'The complete log', { root: '#job-log-status' });
    await shoot(page, outDir, 'job-success');
  });

  await checks.run('Job detail (failure): the error and the log', async () => {
    await open(page, base, `#/jobs/${jobs.failure}`, `Job #${jobs.failure}`);
    await waitText(page, ['failure', 'Error']);
    await waitText(page, 'about to fail', { root: '#job-log' });
    const error = await page.$eval('main pre.error-text', (el) => el.textContent);
    assert(error.trim().length > 0, 'empty error');
    await shoot(page, outDir, 'job-failure');
  });

  await checks.run('Job detail (running): streams live', async () => {
    await open(page, base, `#/jobs/${jobs.background}`, `Job #${jobs.background}`);
    await waitText(page, 'Streaming live', { root: '#job-log-status' });
    await waitText(page, 'line 1', { root: '#job-log' });
    await shoot(page, outDir, 'job-running');
  });

  await checks.run('Re-run creates a new job with the same arguments and opens it', async () => {
    await open(page, base, `#/jobs/${jobs.success}`, `Job #${jobs.success}`);
    await page.getByRole('button', { name: 'Re-run' }).click();
    await page.waitForFunction((old) => /#\/jobs\/\d+$/.test(location.hash) && location.hash !== `#/jobs/${old}`, jobs.success);
    const id = hashJobId(page);
    await waitText(page, `Job #${id}`, { root: 'main h1' });
    const job = await must(call, 'GET', `/api/jobs/${id}`);
    assertEqual(job.args, { name: 'ada' }, 're-run args');
    assertEqual(job.script_path, 'f/uitest/greet', 're-run script');
    await waitState(call, id, 'success');
  });

  await checks.run('Scripts: every path with its summary', async () => {
    await open(page, base, '#/scripts', 'Scripts');
    await waitText(page, ['f/uitest/greet', 'f/uitest/fail', 'f/uitest/slow', 'f/uitest/sleepy', 'Greets someone, politely', 'Deploy a new script']);
    await shoot(page, outDir, 'scripts');
  });

  await checks.run("Script: its versions and the line diff between them", async () => {
    await open(page, base, '#/scripts/f/uitest/greet', 'f/uitest/greet');
    await waitText(page, ['Versions (2)', 'v1 → v2', '3 lines added, 2 removed']);
    const added = await page.$$eval('.diff-add .text', (els) => els.map((e) => e.textContent));
    const removed = await page.$$eval('.diff-del .text', (els) => els.map((e) => e.textContent));
    assert(added.includes('echo "preparing a polite greeting"'), `added: ${added}`);
    assert(removed.includes('# Greets someone.'), `removed: ${removed}`);
    await shoot(page, outDir, 'script');
  });

  await checks.run('Script run form: invalid JSON is refused before submit, valid JSON runs', async () => {
    const newest = async () => (await must(call, 'GET', '/api/jobs?limit=1')).jobs[0].id;
    const before = await newest();
    const url = page.url();
    await page.fill('#run-args', '{"name": ');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await waitText(page, 'not valid JSON', { root: 'main' });
    assertEqual(page.url(), url, 'the page after an invalid submit');
    assertEqual(await newest(), before, 'the newest job after an invalid submit');
    await page.fill('#run-args', '{"name": "from-ui"}');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.waitForFunction(() => /#\/jobs\/\d+$/.test(location.hash));
    const job = await must(call, 'GET', `/api/jobs/${hashJobId(page)}`);
    assertEqual(job.args, { name: 'from-ui' }, 'args of the job run from the form');
  });

  await checks.run('Script: deploy a new version from the UI', async () => {
    await open(page, base, '#/scripts/f/uitest/greet', 'f/uitest/greet');
    const form = page.getByRole('form', { name: 'Deploy a new version of f/uitest/greet' });
    await form.getByLabel('Content').fill(GREET_V2 + 'echo "v3"\n');
    await form.getByRole('button', { name: 'Deploy new version' }).click();
    await waitText(page, 'Versions (3)');
    const { versions } = await must(call, 'GET', '/api/scripts/versions/f/uitest/greet');
    assertEqual(versions.length, 3, 'versions');
  });

  await checks.run('Schedules: next tick, paused state, last job linked', async () => {
    await open(page, base, '#/schedules', 'Schedules');
    await waitText(page, ['f/uitest/every-10s', 'f/uitest/nightly', '*/10 * * * * *', 'Europe/Paris', 'paused', 'active']);
    const link = await page.$$eval('main tbody tr', (rows) => {
      const row = rows.find((r) => r.innerText.includes('f/uitest/every-10s'));
      return row && [...row.querySelectorAll('a')].map((a) => a.getAttribute('href')).find((h) => /^#\/jobs\/\d+$/.test(h));
    });
    assert(link, 'no last job link in the row of f/uitest/every-10s');
    await shoot(page, outDir, 'schedules');
  });

  await checks.run('Schedules: resume and pause from the UI', async () => {
    const paused = async () => (await must(call, 'GET', '/api/schedules/f/uitest/nightly')).paused;
    await page.getByRole('button', { name: 'Resume f/uitest/nightly' }).click();
    await waitFor('nightly resumed', async () => !(await paused()), 10000);
    await page.getByRole('button', { name: 'Pause f/uitest/nightly' }).click();
    await waitFor('nightly paused', paused, 10000);
  });

  let created;
  await checks.run('Tokens: the list; create shows the secret once and it works', async () => {
    await open(page, base, '#/tokens', 'Tokens');
    await waitText(page, ['ui-test operator', s.operatorTokenId, 'this session']);
    await shoot(page, outDir, 'tokens');
    await page.getByLabel('Role', { exact: true }).selectOption('developer');
    await page.getByLabel('Label', { exact: true }).fill('ui-created');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = await page.locator('#new-token-secret').inputValue();
    assert(/^qrn_/.test(secret), `secret: ${secret}`);
    await waitText(page, 'ui-created');
    const { tokens } = await must(call, 'GET', '/api/tokens');
    created = tokens.find((t) => t.label === 'ui-created');
    assert(created && created.role === 'developer', 'the created token is not listed by the API');
    assertEqual((await call('GET', '/api/scripts', undefined, secret)).status, 200, 'the new token on /api/scripts');
    created.secret = secret;
  });

  await checks.run('Tokens: revoke (after a confirm) revokes it', async () => {
    await page.getByRole('button', { name: `Revoke token ${created.id} (ui-created)` }).click();
    await waitFor('the token revoked', async () => {
      const { tokens } = await must(call, 'GET', '/api/tokens');
      return tokens.find((t) => t.id === created.id).revoked_at;
    }, 10000);
    assertEqual((await call('GET', '/api/scripts', undefined, created.secret)).status, 401, 'the revoked token');
  });

  await checks.run('a cookie-authenticated POST without X-Quern-UI is refused (403)', async () => {
    const r = await admin.request.post(`${base}/api/jobs/${jobs.queued}/cancel`, { data: {} });
    assertEqual(r.status(), 403, 'status');
    assertEqual((await must(call, 'GET', `/api/jobs/${jobs.queued}`)).state, 'queued', 'the queued job');
  });

  await checks.run('Log out: back to the login page, and the session no longer works', async () => {
    watch.allow401 = true;
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Token', { exact: true }).waitFor();
    assertEqual((await admin.request.get(`${base}/api/me`)).status(), 401, '/api/me after logout');
    watch.allow401 = false;
  });
  await admin.close();

  // ---- Operator ----------------------------------------------------------------------
  const operator = await newContext();
  const opPage = await operator.newPage();
  await checks.run('operator: no Tokens link, and #/tokens shows no token list', async () => {
    await login(opPage, s.operatorToken);
    assertEqual(await navLinks(opPage), ['Workers', 'Queue', 'Jobs', 'Scripts', 'Schedules'], 'operator navigation');
    await open(opPage, base, '#/tokens', 'Tokens');
    await waitText(opPage, 'may not manage tokens');
    assertEqual(await opPage.locator('main table').count(), 0, 'tables on the operator token page');
    assertEqual((await operator.request.get(`${base}/api/tokens`)).status(), 403, 'GET /api/tokens as operator');
    await shoot(opPage, outDir, 'tokens-operator');
  });

  await checks.run('operator: no deploy form, no schedule pause; run and cancel are offered', async () => {
    await open(opPage, base, '#/scripts/f/uitest/greet', 'f/uitest/greet');
    await waitText(opPage, ['Versions (3)', 'Run']);
    assertEqual(await opPage.getByRole('button', { name: /Deploy/ }).count(), 0, 'deploy buttons');
    await open(opPage, base, '#/schedules', 'Schedules');
    await waitText(opPage, 'f/uitest/nightly');
    assertEqual(await opPage.getByRole('button', { name: /^(Pause|Resume) / }).count(), 0, 'pause/resume buttons');
    await open(opPage, base, `#/jobs/${jobs.queued}`, `Job #${jobs.queued}`);
    await opPage.getByRole('button', { name: 'Cancel job' }).waitFor();
  });
  await operator.close();

  // ---- A forged cookie ---------------------------------------------------------------
  await checks.run('a forged session cookie gets 401 from /api/me and the login page', async () => {
    const forged = await newContext();
    watch.allow401 = true;
    await forged.addCookies([{ name: 'quern_session', value: `qrn_forged_${'ab'.repeat(32)}`, url: base }]);
    assertEqual((await forged.request.get(`${base}/api/me`)).status(), 401, '/api/me with a forged cookie');
    const p = await forged.newPage();
    await p.goto(`${base}/ui/#/jobs`);
    await p.getByLabel('Token', { exact: true }).waitFor();
    assertEqual(await p.locator('#nav a').count(), 0, 'navigation links without a session');
    watch.allow401 = false;
    await forged.close();
  });

  await checks.run('no console errors, uncaught exceptions or CSP violations on any page', async () => {
    const problems = watch.take();
    assert(problems.length === 0, `\n      ${problems.join('\n      ')}`);
  });

  await checks.run('(the console watch does see a CSP violation)', async () => {
    const context = await newContext();
    const p = await context.newPage();
    watch.allow401 = true;
    await p.goto(`${base}/ui/`);
    await p.getByLabel('Token', { exact: true }).waitFor();
    watch.take();
    await p.evaluate(() => document.body.append(Object.assign(document.createElement('div'), { innerHTML: '<span style="color:red">x</span>' })));
    await waitFor('a CSP report', async () => watch.problems.some((m) => /CSP violation|Refused to/.test(m)), 5000, 100);
    watch.take();
    await context.close();
  });

  await call('POST', `/api/jobs/${jobs.background}/cancel`);
}

try {
  await main();
} catch (err) {
  console.log(`FAIL: ${err.stack || err}`);
  checks.failed.push('main');
} finally {
  if (browser) await browser.close();
}
process.exit(checks.summary() ? 0 : 1);
