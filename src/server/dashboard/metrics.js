// Reading the Prometheus text format of `/metrics` (version 0.0.4):
// samples with their labels, comments and types skipped.

/** `[{name, labels: {..}, value}]` of every sample in `text`. */
export function parseMetrics(text) {
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sample = parseLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseLine(line) {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i])) i += 1;
  const name = line.slice(0, i);
  if (!name) return null;
  const labels = {};
  if (line[i] === '{') {
    i += 1;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i += 1;
      if (line[i] === '}') {
        i += 1;
        break;
      }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return null;
      const label = line.slice(i, eq).trim();
      let value = '';
      let j = eq + 2;
      for (; j < line.length; j += 1) {
        const c = line[j];
        if (c === '\\') {
          const n = line[j + 1];
          value += n === 'n' ? '\n' : n;
          j += 1;
        } else if (c === '"') {
          break;
        } else {
          value += c;
        }
      }
      if (j >= line.length) return null;
      labels[label] = value;
      i = j + 1;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const text = rest[0];
  const value = text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
  if (text === undefined || (Number.isNaN(value) && text !== 'NaN')) return null;
  return {name, labels, value};
}

/** The samples named `name` whose labels include `match`. */
export function series(samples, name, match = {}) {
  return samples.filter((sample) => sample.name === name &&
    Object.entries(match).every(([k, v]) => sample.labels[k] === v));
}

/** The sum of the samples named `name` whose labels include `match`, or null if none. */
export function total(samples, name, match = {}) {
  const found = series(samples, name, match);
  return found.length === 0 ? null : found.reduce((sum, sample) => sum + sample.value, 0);
}
