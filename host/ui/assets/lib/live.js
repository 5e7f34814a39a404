// Live refresh: loads a page's data every few seconds while the page is open
// and the tab visible, and swaps the new content in (keeping table scroll
// and focus). A Pause button stops it (moving content can be paused).
import { h, swap } from './dom.js';

// load(signal) → the nodes to show. Returns {bar, first}: the status bar
// (put it above the content) and the promise of the first load (its error
// propagates, so that the page shows it).
export function liveContent(ctx, container, load, intervalMs) {
  let paused = false;
  let timer = null;
  let lastOk = null;
  const status = h('span', { class: 'muted live-status' }, 'Loading…');
  const pause = h('button', { type: 'button', class: 'button secondary small', 'aria-pressed': 'false' }, 'Pause live refresh');
  const bar = h('div', { class: 'live-bar' }, status, pause);

  const schedule = () => {
    clearTimeout(timer);
    if (!paused && !ctx.signal.aborted) timer = setTimeout(tick, intervalMs);
  };
  const describe = () => {
    const every = `every ${intervalMs / 1000} s`;
    const at = lastOk ? `Updated ${lastOk.toLocaleTimeString()}` : 'Not loaded yet';
    return paused ? `${at} · live refresh paused` : `${at} · refreshing ${every}`;
  };
  async function tick() {
    if (document.hidden) return schedule();
    try {
      const nodes = await load(ctx.signal);
      if (ctx.signal.aborted) return;
      swap(container, nodes);
      lastOk = new Date();
      status.textContent = describe();
    } catch (err) {
      if (ctx.signal.aborted || err.name === 'AbortError') return;
      status.textContent = `${describe()} · last refresh failed: ${err.message}`;
    }
    schedule();
  }
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume live refresh' : 'Pause live refresh';
    pause.setAttribute('aria-pressed', String(paused));
    status.textContent = describe();
    if (!paused) tick();
    else clearTimeout(timer);
  });
  ctx.onLeave(() => clearTimeout(timer));

  const first = (async () => {
    const nodes = await load(ctx.signal);
    if (ctx.signal.aborted) return;
    swap(container, nodes);
    lastOk = new Date();
    status.textContent = describe();
    schedule();
  })();
  return { bar, first };
}
