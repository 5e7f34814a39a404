// Times in the reader's locale, with relative ages ("3 sec. ago") that the
// page keeps current (refreshRelativeTimes, every few seconds).
import { h } from './dom.js';

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const relativeFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });

export function parseTime(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function formatAbsolute(date) {
  return absolute.format(date);
}

const STEPS = [
  ['second', 1, 60],
  ['minute', 60, 3600],
  ['hour', 3600, 86400],
  ['day', 86400, 86400 * 30],
  ['month', 86400 * 30, 86400 * 365],
  ['year', 86400 * 365, Infinity],
];

// "3 sec. ago", "in 5 min." (the locale's words), from a difference in ms.
export function formatRelative(date, now = Date.now()) {
  const diff = (date.getTime() - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 1) return relativeFmt.format(0, 'second');
  for (const [unit, size, limit] of STEPS) {
    if (abs < limit) return relativeFmt.format(Math.round(diff / size), unit);
  }
  return '';
}

// A <time> element: the local date and time, then the relative age.
export function timeCell(iso, { relativeOnly = false } = {}) {
  const date = parseTime(iso);
  if (!date) return h('span', { class: 'muted' }, '—');
  const rel = h('span', { class: 'rel', dataset: { relTime: date.toISOString() } }, formatRelative(date));
  if (relativeOnly) return h('time', { datetime: date.toISOString(), title: formatAbsolute(date) }, rel);
  return h('time', { datetime: date.toISOString() }, formatAbsolute(date), ' ', h('span', { class: 'muted' }, '(', rel, ')'));
}

export function refreshRelativeTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('[data-rel-time]')) {
    el.textContent = formatRelative(new Date(el.dataset.relTime), now);
  }
}

// 42 ms, 1.5 s, 3 min 4 s, 2 h 5 min, 3 d 4 h.
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const total = Math.round(s);
  const d = Math.floor(total / 86400);
  const hr = Math.floor((total % 86400) / 3600);
  const min = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${min} min`;
  return `${min} min ${sec} s`;
}

export function between(fromIso, toIso) {
  const a = parseTime(fromIso);
  const b = parseTime(toIso);
  return a && b ? b.getTime() - a.getTime() : null;
}

export function formatBytes(n) {
  if (n === null || n === undefined || n < 0) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatPercent(x) {
  if (typeof x !== 'number') return '—';
  return `${(x * 100).toFixed(x < 0.1 ? 1 : 0)} %`;
}

// A <input type="datetime-local"> value (local time) as ISO 8601 UTC, and back.
export function localInputToIso(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export function isoToLocalInput(iso) {
  const d = parseTime(iso);
  if (!d) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
