// A line diff from the longest common subsequence: what `diff` shows, as
// [{op: ' ' | '-' | '+', text, a, b}] with 1-based line numbers in the old
// (a) and new (b) text. The common head and tail are matched first, so that
// only the changed middle costs the O(n·m) table; a middle too large for
// that is shown as removed then added.

const MAX_CELLS = 4_000_000;

export function diffLines(oldText, newText) {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head += 1;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail += 1;

  const out = [];
  for (let i = 0; i < head; i += 1) out.push({ op: ' ', text: a[i], a: i + 1, b: i + 1 });
  const am = a.slice(head, a.length - tail);
  const bm = b.slice(head, b.length - tail);
  const middle = (am.length + 1) * (bm.length + 1) <= MAX_CELLS ? lcsDiff(am, bm) : blockDiff(am, bm);
  for (const d of middle) {
    out.push({ op: d.op, text: d.text, a: d.a === null ? null : d.a + head, b: d.b === null ? null : d.b + head });
  }
  for (let k = tail; k > 0; k -= 1) {
    out.push({ op: ' ', text: a[a.length - k], a: a.length - k + 1, b: b.length - k + 1 });
  }
  return out;
}

export function splitLines(text) {
  if (!text) return [];
  const lines = String(text).split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function lcsDiff(a, b) {
  const n = a.length;
  const m = b.length;
  const w = m + 1;
  // len[i*w + j]: the LCS length of a[i..] and b[j..].
  const len = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      len[i * w + j] = a[i] === b[j] ? len[(i + 1) * w + j + 1] + 1 : Math.max(len[(i + 1) * w + j], len[i * w + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ op: ' ', text: a[i], a: i + 1, b: j + 1 });
      i += 1;
      j += 1;
    } else if (len[(i + 1) * w + j] >= len[i * w + j + 1]) {
      out.push({ op: '-', text: a[i], a: i + 1, b: null });
      i += 1;
    } else {
      out.push({ op: '+', text: b[j], a: null, b: j + 1 });
      j += 1;
    }
  }
  for (; i < n; i += 1) out.push({ op: '-', text: a[i], a: i + 1, b: null });
  for (; j < m; j += 1) out.push({ op: '+', text: b[j], a: null, b: j + 1 });
  return out;
}

function blockDiff(a, b) {
  return [
    ...a.map((text, i) => ({ op: '-', text, a: i + 1, b: null })),
    ...b.map((text, j) => ({ op: '+', text, a: null, b: j + 1 })),
  ];
}

export function diffStats(lines) {
  let added = 0;
  let removed = 0;
  for (const l of lines) {
    if (l.op === '+') added += 1;
    else if (l.op === '-') removed += 1;
  }
  return { added, removed };
}
