// The browser side of the UI test: Chromium through playwright-core, the checks'
// PASS/FAIL lines, the console and CSP watch, screenshots at both widths.
import { createRequire } from 'node:module';
import path from 'node:path';

export const WIDE = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function loadPlaywright(dir) {
  const require = createRequire(path.join(dir, 'node_modules', 'noop.js'));
  return require('playwright-core');
}

// Runs named checks, printing PASS/FAIL as each ends; a failed check does not stop the
// ones after it unless it is `fatal`.
export class Checks {
  constructor() {
    this.failed = [];
    this.passed = 0;
  }

  async run(name, fn, { fatal = false } = {}) {
    const started = Date.now();
    try {
      await fn();
      this.passed += 1;
      console.log(`PASS: ${name} (${Date.now() - started} ms)`);
      return true;
    } catch (err) {
      this.failed.push(name);
      console.log(`FAIL: ${name}: ${err && err.stack ? err.stack.split('\n').slice(0, 4).join('\n    ') : err}`);
      if (fatal) throw new Error(`stopping: ${name} failed`);
      return false;
    }
  }

  summary() {
    console.log(`${this.passed} passed, ${this.failed.length} failed${this.failed.length ? ': ' + this.failed.join('; ') : ''}`);
    return this.failed.length === 0;
  }
}

// Every console error, page error and CSP violation of every page of a context. A 401
// answer is expected only where a check says so (`allow401`): the login page asks
// /api/me, and a wrong token or a forged cookie is refused.
export class ConsoleWatch {
  constructor() {
    this.problems = [];
    this.allow401 = false;
  }

  async attach(context) {
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile || ''}:${e.lineNumber || ''})`);
      });
    });
    context.on('page', (page) => this.watch(page));
  }

  watch(page) {
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && !/^Refused to|CSP violation/.test(msg.text())) return;
      const text = msg.text();
      if (this.allow401 && /status of 401/.test(text)) return;
      this.problems.push(`${msg.type()} on ${page.url()}: ${text}`);
    });
    page.on('pageerror', (err) => this.problems.push(`uncaught on ${page.url()}: ${err.message}`));
  }

  take() {
    return this.problems.splice(0);
  }
}

// Waits until `root`'s visible text includes each of `texts`.
export async function waitText(page, texts, { root = 'main', timeout = 15000 } = {}) {
  for (const text of [].concat(texts)) {
    try {
      await page.waitForFunction(
        ([sel, t]) => {
          const el = document.querySelector(sel);
          return Boolean(el && el.innerText.includes(t));
        },
        [root, text],
        { timeout },
      );
    } catch (err) {
      const shown = await page.evaluate((sel) => document.querySelector(sel)?.innerText.slice(0, 600), root).catch(() => '?');
      throw new Error(`"${text}" not shown in ${root} of ${page.url()} within ${timeout} ms; it shows:\n${shown}`);
    }
  }
}

// Goes to a route of the UI (#/jobs, …) and waits for its heading.
export async function open(page, baseUrl, hash, heading) {
  await page.goto(`${baseUrl}/ui/${hash}`);
  if (heading) await waitText(page, heading, { root: 'main h1' });
}

// Screenshots of the current route at both widths, full page; checks that the page
// itself never scrolls sideways (wide tables scroll inside their own box).
export async function shoot(page, outDir, name, ready) {
  const overflow = [];
  for (const size of [WIDE, PHONE]) {
    await page.setViewportSize(size);
    if (ready) await ready();
    await page.waitForTimeout(150); // layout after the resize
    await page.screenshot({ path: path.join(outDir, 'screenshots', `${name}-${size.width}x${size.height}.png`), fullPage: true });
    const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
    if (widths.scroll > widths.inner + 1) overflow.push(`${size.width}px: the page is ${widths.scroll}px wide`);
  }
  await page.setViewportSize(WIDE);
  if (overflow.length) throw new Error(`${name} overflows sideways: ${overflow.join('; ')}`);
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
