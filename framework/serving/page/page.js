// The live page of `featureflow serve`: each prediction as it arrives from GET /predictions/stream
// (key, predicted class, latency per stage, position), the entity's image drawn when the model reads
// an image-like feature, and a running accuracy when its view has a label feature. Plain JavaScript
// served as is: no build step.
//
// URL options: `#token=…` the bearer token (a fragment never reaches the server; the page keeps it in
// sessionStorage and clears it from the address bar), `?image=feature` and `?truth=feature` to choose
// the features drawn and compared (`none` for neither), `?ink=light` to draw high values light.

/** Cards kept on the page: older ones are removed (the page runs for days). */
const MAX_CARDS = 48;
/** Keys per POST /features. */
const BATCH_KEYS = 200;
/** Predictions waiting for their features at most; older ones are not checked (counted as skipped). */
const MAX_PENDING = 5_000;
/** How long a feature read may wait for the online store to reach a prediction's position, ms. */
const WAIT_MS = 5_000;
/** Names a label feature is recognised by, when `?truth=` does not name one. */
const TRUTH_NAMES = ['label', 'target', 'class', 'y'];

const params = new URLSearchParams(location.search);
const token = takeToken();
const $ = (id) => document.getElementById(id);

/** The token from `#token=…` (then kept for this tab only), or the one kept earlier. */
function takeToken() {
  const given = new URLSearchParams(location.hash.slice(1)).get('token');
  try {
    if (given !== null) {
      sessionStorage.setItem('featureflow-token', given);
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem('featureflow-token') ?? given;
  } catch {
    return given;
  }
}

/** A call of the serving API, relative to the page (the server may sit behind a path prefix). */
function api(path, init = {}) {
  const headers = { ...init.headers };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(new URL(path, document.baseURI), { ...init, headers });
}

/** The message of an error response (`{ code, message }`), for the status line. */
async function failure(response) {
  try {
    const body = await response.json();
    return `${body.code ?? response.status}: ${body.message ?? response.statusText}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function status(text, error = false) {
  const line = $('status');
  line.textContent = text;
  line.classList.toggle('error', error);
}

/** `X/Y` (hex halves) → a bigint that orders as positions do. */
function position(text) {
  const [high, low] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** Width, height and channels of a tensor shape that can be drawn: [h, w], [h, w, 1|3|4], or [n²]. */
function imageShape(shape) {
  if (shape.length === 2) return { height: shape[0], width: shape[1], channels: 1 };
  if (shape.length === 3 && [1, 3, 4].includes(shape[2]))
    return { height: shape[0], width: shape[1], channels: shape[2] };
  if (shape.length === 1) {
    const side = Math.round(Math.sqrt(shape[0]));
    if (side >= 4 && side * side === shape[0]) return { height: side, width: side, channels: 1 };
  }
  return null;
}

/**
 * What the page reads besides the prediction: an image-like tensor the model takes (else any of its
 * views' tensors) and a scalar label feature the model does not take.
 */
function plan(model) {
  const all = model.inputs.flatMap((input) =>
    Object.entries(input.features).map(([name, type]) => ({
      view: input.view,
      version: input.version,
      name,
      type,
      selected: input.selected.includes(name),
    })),
  );
  const pick = (option, fits, prefer) => {
    const wanted = params.get(option);
    if (wanted === 'none') return null;
    const candidates = all.filter((f) =>
      wanted === null ? fits(f) : f.name === wanted || `${f.view}.${f.name}` === wanted,
    );
    return candidates.find(prefer) ?? candidates[0] ?? null;
  };
  const image = pick(
    'image',
    (f) => f.type.kind === 'tensor' && imageShape(f.type.shape) !== null,
    (f) => f.selected,
  );
  const truth = pick(
    'truth',
    (f) => f.type.kind === 'scalar' && !f.selected && TRUTH_NAMES.includes(f.name.toLowerCase()),
    () => true,
  );
  return { image: image && { ...image, ...imageShape(image.type.shape ?? []) }, truth };
}

// Running figures.
const stats = { count: 0, labelled: 0, correct: 0, skipped: 0, latencies: [] };

function showStats() {
  $('count').textContent = String(stats.count);
  $('accuracy').textContent =
    stats.labelled === 0
      ? '–'
      : `${((100 * stats.correct) / stats.labelled).toFixed(1)}% (${stats.correct}/${stats.labelled})` +
        (stats.skipped ? `, ${stats.skipped} not checked` : '');
  const n = stats.latencies.length;
  if (n > 0) {
    const mean = (k) => (stats.latencies.reduce((sum, l) => sum + l[k], 0) / n).toFixed(1);
    $('latency').textContent =
      `received ${mean('receivedMs')} · features ${mean('featuresMs')} · scored ${mean('scoredMs')} ms`;
  }
}

/** The class a prediction names: the model's label, else the index of its largest output. */
function predictedClass(p) {
  if (p.label !== undefined) return p.label;
  if (p.argmax !== undefined) return String(p.argmax);
  return null;
}

function card(p) {
  const node = $('card').content.firstElementChild.cloneNode(true);
  const predicted = predictedClass(p);
  node.dataset.key = JSON.stringify(p.key);
  node.dataset.position = p.position;
  if (predicted !== null) node.dataset.predicted = predicted;
  node.querySelector('.predicted').textContent =
    predicted ?? p.output.map((v) => (typeof v === 'number' ? v.toPrecision(3) : v)).join(', ');
  if (p.argmax !== undefined && typeof p.output[p.argmax] === 'number')
    node.querySelector('.predicted').title = `p = ${p.output[p.argmax].toFixed(3)}`;
  node.querySelector('.key').textContent = p.key.join(', ');
  node.querySelector('.position').textContent = p.position;
  const l = p.latency;
  node.querySelector('.latency').textContent =
    `${l.receivedMs.toFixed(1)} + ${l.featuresMs.toFixed(1)} + ${l.scoredMs.toFixed(1)} ms`;
  node.querySelector('.latency').title = 'commit → received, → features written, → scored';
  return node;
}

/** Draws a flat row-major tensor on the card's canvas: one canvas pixel per element. */
function draw(node, image, values) {
  const canvas = node.querySelector('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.hidden = false;
  let max = 0;
  for (const v of values) if (typeof v === 'number' && v > max) max = v;
  // Values in 0…1 (scaled pixels) or 0…255 (raw bytes).
  const scale = max > 1 ? 1 : 255;
  const light = params.get('ink') === 'light';
  const pixels = new ImageData(image.width, image.height);
  const { channels } = image;
  for (let i = 0; i < image.width * image.height; i++) {
    const at = (c) => {
      const v = values[i * channels + c];
      return typeof v === 'number' ? Math.min(255, Math.max(0, Math.round(v * scale))) : 0;
    };
    if (channels === 1) {
      // One channel is ink: high values dark, as in handwritten digits, unless ?ink=light.
      const grey = light ? at(0) : 255 - at(0);
      pixels.data.set([grey, grey, grey, 255], i * 4);
    } else {
      pixels.data.set([at(0), at(1), at(2), channels === 4 ? at(3) : 255], i * 4);
    }
  }
  canvas.getContext('2d').putImageData(pixels, 0, 0);
  node.dataset.image = 'drawn';
}

// Predictions waiting for their features, read in batches with read-after-write.
const pending = [];
let reading = false;

function enqueue(item) {
  pending.push(item);
  if (pending.length > MAX_PENDING) stats.skipped += pending.splice(0, pending.length - MAX_PENDING).length;
  if (!reading) void readFeatures();
}

async function readFeatures() {
  reading = true;
  try {
    while (pending.length > 0) {
      const batch = pending.splice(0, BATCH_KEYS);
      let results;
      try {
        results = await readBatch(batch);
      } catch (error) {
        status(error.message, true);
        for (const { node } of batch) if (node) node.dataset.image = 'unavailable';
        stats.skipped += batch.length;
        continue;
      }
      for (const [i, item] of batch.entries()) show(item, results, i);
      showStats();
    }
  } finally {
    reading = false;
  }
}

/** The features of a batch of predictions, per view, read once the views reach the newest prediction. */
async function readBatch(batch) {
  const newest = batch.reduce((m, { p }) => (position(p.position) > position(m) ? p.position : m), batch[0].p.position);
  const views = new Map();
  for (const f of [page.image, page.truth]) if (f) views.set(f.view, f.version);
  const results = new Map();
  for (const [view, version] of views) {
    const response = await api(`features?minPosition=${encodeURIComponent(newest)}&timeoutMs=${WAIT_MS}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ view, version, keys: batch.map(({ p }) => p.key) }),
    });
    if (!response.ok) throw new Error(`features of ${view} could not be read: ${await failure(response)}`);
    results.set(view, (await response.json()).results);
  }
  return results;
}

/** Draws the image and checks the label of one prediction, from the features read at (or after) its position. */
function show({ p, node }, results, i) {
  const of = (feature) => {
    const result = results.get(feature.view)?.[i];
    // A later change of the entity would show other values than the model saw: not shown as its.
    if (result?.status !== 'ok' || result.position !== p.position) return undefined;
    return result.values[feature.name];
  };
  if (page.image && node) {
    const values = of(page.image);
    if (Array.isArray(values)) draw(node, page.image, values);
    else node.dataset.image = 'unavailable';
  }
  if (page.truth) {
    const truth = of(page.truth);
    const predicted = predictedClass(p);
    if (truth === undefined) stats.skipped++;
    else if (truth !== null && predicted !== null) {
      const ok = String(truth) === predicted;
      stats.labelled++;
      if (ok) stats.correct++;
      if (node) {
        const line = node.querySelector('.truth');
        line.textContent = `${page.truth.name} ${truth} ${ok ? '✓' : '✗'}`;
        line.classList.add(ok ? 'ok' : 'wrong');
        node.dataset.truth = String(truth);
      }
    }
  }
}

// Predictions arrive faster than a screen refreshes (a snapshot scores every row): each frame draws
// the newest few and queues the rest for the accuracy only.
let arrived = [];
function receive(p) {
  arrived.push(p);
  if (arrived.length === 1) requestAnimationFrame(render);
}

function render() {
  const batch = arrived;
  arrived = [];
  const feed = $('feed');
  batch.forEach((p, i) => {
    stats.count++;
    stats.latencies.push(p.latency);
    if (stats.latencies.length > 100) stats.latencies.shift();
    const node = i >= batch.length - MAX_CARDS ? card(p) : null;
    if (node) feed.prepend(node);
    if (page.image || page.truth) enqueue({ p, node });
  });
  while (feed.children.length > MAX_CARDS) feed.lastElementChild.remove();
  showStats();
}

/** Follows the stream (fetch rather than EventSource, which cannot send the token), resuming after a cut. */
async function follow() {
  let lastId = null;
  let retryMs = 1_000;
  for (;;) {
    try {
      const headers = lastId === null ? {} : { 'last-event-id': lastId };
      const response = await api('predictions/stream', { headers });
      if (!response.ok) {
        status(`the stream was refused: ${await failure(response)}`, true);
        if (response.status === 401 || response.status === 404) return;
      } else {
        status('live');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replaceAll('\r\n', '\n');
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const event = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event.id !== undefined) lastId = event.id;
            if (event.retry !== undefined) retryMs = event.retry;
            if (event.type === 'prediction') receive(JSON.parse(event.data));
            if (event.type === 'gap') stats.skipped++;
          }
        }
        status('reconnecting…');
      }
    } catch (error) {
      status(`reconnecting (${error.message})…`, true);
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

/** One Server-Sent Events frame: `field: value` lines, comments (`:`) ignored. */
function parseEvent(frame) {
  const event = { type: 'message', data: [] };
  for (const line of frame.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event.type = value;
    else if (field === 'data') event.data.push(value);
    else if (field === 'id') event.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) event.retry = Number(value);
  }
  return { ...event, data: event.data.join('\n') };
}

let page = { image: null, truth: null };

async function main() {
  const response = await api('model');
  if (response.status === 401) {
    const text = token
      ? 'the token given is not this server’s: open the page as /#token=<the serve token>'
      : 'this server needs its token: open the page as /#token=<the serve token>';
    $('model').textContent = text;
    status('not connected', true);
    return;
  }
  if (!response.ok) {
    $('model').textContent = await failure(response);
    status('not connected', true);
    return;
  }
  const model = await response.json();
  page = plan(model);
  const parts = [`model ${model.name} ${model.version}`, `service ${model.service}`, `entity ${model.entity.name}`];
  if (page.image) parts.push(`image ${page.image.view}.${page.image.name}`);
  if (page.truth) parts.push(`label ${page.truth.view}.${page.truth.name}`);
  $('model').textContent = parts.join(' · ');
  document.body.dataset.ready = 'true';
  await follow();
}

void main();
