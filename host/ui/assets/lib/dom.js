// Small DOM helpers. Every piece of data reaches the page as text (text
// nodes, textContent, attribute values): never as HTML.

// h('a', {href: '#/jobs', class: 'x', onclick: fn}, 'text', child, [more])
// Attributes: `class`, `text` (textContent), `on<event>` (a listener),
// `dataset` (an object), booleans (present when true), anything else with
// setAttribute. `style` is refused: the page's CSP allows only classes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'style') throw new Error('h(): use a class, not style');
      if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
      else if (key === 'text') el.textContent = String(value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (key === 'value' && 'value' in el) el.value = String(value);
      else if (key === 'checked' || key === 'selected') el[key] = Boolean(value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false || child === '') continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let idCounter = 0;
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

// A state as a badge: the word itself, so that it reads without colour.
export function badge(text, kind = text) {
  return h('span', { class: ['badge', `badge-${String(kind).replace(/[^a-z0-9_-]/gi, '')}`] }, text);
}

export function link(href, text, attrs = {}) {
  return h('a', { href, ...attrs }, text);
}

export function pre(text, cls = 'code') {
  return h('pre', { class: cls, tabindex: '0' }, text);
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

// A table whose wide content scrolls inside its own box, never the page.
// columns: [{label, cell: (row) => node|string, class?}]
export function table(columns, rows, { caption, empty = 'Nothing to show.', key } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label))));
  const tbody = h('tbody', null, rows.map((row) => tableRow(columns, row)));
  const t = h('table', null, caption ? h('caption', null, caption) : null, thead, tbody);
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption || 'table', dataset: key ? { scrollKey: key } : undefined },
    t,
  );
}

// One row of table(): each cell's content in one box, so that the phone
// layout (a card per row, each cell under its column's name) has one item.
export function tableRow(columns, row) {
  return h('tr', null, columns.map((c) => h('td', { class: c.class, 'data-label': c.label }, h('div', { class: 'cell' }, c.cell(row)))));
}

// A description list from [[term, value], ...]; rows whose value is
// undefined are left out.
export function facts(pairs) {
  const dl = h('dl', { class: 'facts' });
  for (const [term, value] of pairs) {
    if (value === undefined) continue;
    dl.append(h('div', null, h('dt', null, term), h('dd', null, value === null || value === '' ? '—' : value)));
  }
  return dl;
}

export function section(title, ...children) {
  const id = uid('sec');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

// Replaces the children of `container` with `nodes`, keeping what a live
// refresh must not take away: the horizontal scroll of each table (matched
// by data-scroll-key) and the keyboard focus (matched by href, id or
// data-focus-key).
export function swap(container, nodes) {
  const scrolls = new Map();
  for (const el of container.querySelectorAll('[data-scroll-key]')) scrolls.set(el.dataset.scrollKey, el.scrollLeft);
  const active = document.activeElement;
  let focusSel = null;
  if (active && container.contains(active)) {
    if (active.dataset.focusKey) focusSel = `[data-focus-key="${CSS.escape(active.dataset.focusKey)}"]`;
    else if (active.id) focusSel = `#${CSS.escape(active.id)}`;
    else if (active.getAttribute('href')) focusSel = `[href="${CSS.escape(active.getAttribute('href'))}"]`;
    else if (active.dataset.scrollKey) focusSel = `[data-scroll-key="${CSS.escape(active.dataset.scrollKey)}"]`;
  }
  clear(container);
  append(container, [nodes]);
  for (const el of container.querySelectorAll('[data-scroll-key]')) {
    const left = scrolls.get(el.dataset.scrollKey);
    if (left) el.scrollLeft = left;
  }
  if (focusSel) container.querySelector(focusSel)?.focus({ preventScroll: true });
}

// A labelled form field. `control` is an <input>, <select> or <textarea>;
// it gets an id when it has none.
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', [control.getAttribute('aria-describedby'), hintId].filter(Boolean).join(' '));
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export function select(name, options, value) {
  return h(
    'select',
    { name },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: v === value }, text);
    }),
  );
}

export function button(text, onclick, cls = 'button') {
  return h('button', { type: 'button', class: cls, onclick }, text);
}

// An inline error under a form: role=alert so that it is read out.
export function errorBox() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

export function showError(box, message) {
  box.textContent = message || '';
  box.hidden = !message;
}

export function shortHash(hash) {
  return hash ? hash.slice(0, 12) : '';
}
