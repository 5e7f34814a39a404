// What the job pages share: the states and their badges.
import { h, badge } from '../lib/dom.js';

export const STATES = ['queued', 'running', 'success', 'failure', 'timeout', 'canceled'];

export function finished(state) {
  return state !== 'queued' && state !== 'running';
}

// The state in words (a badge styled per state), with "cancel requested"
// for a running job asked to stop.
export function stateBadge(state, cancelRequested = false) {
  const b = badge(state, state);
  if (cancelRequested && !finished(state)) return h('span', { class: 'nowrap' }, b, ' ', badge('cancel requested', 'late'));
  return b;
}
