import { createHash } from 'node:crypto';
import { typeName } from './feature-types.js';
import type { FeatureView } from './feature-view.js';

/** The parts of a view's definition that decide its table's contents (everything but the version). */
export interface ViewDescriptor {
  readonly name: string;
  readonly version: number;
  readonly entity: { readonly name: string; readonly keys: readonly string[] };
  readonly source: string;
  /** Feature name → type name (`float32`, `tensor<float32>[28,28]`), in declaration order. */
  readonly features: Readonly<Record<string, string>>;
  /** Transform source text (whitespace collapsed), or null for the default (columns by name). */
  readonly transform: string | null;
  readonly filter: string | null;
  /** ttl in microseconds (decimal), or null. */
  readonly ttl: string | null;
  readonly columns: readonly string[] | null;
}

const WORD = /[A-Za-z0-9_$]/;

/**
 * Function source in a canonical layout: comments and whitespace dropped (a space kept only between
 * two word characters), string and template literals verbatim, `(x) =>` as `x=>`, no trailing commas.
 * Loaders print the same function differently (tsx minifies whitespace, vitest does not), and
 * re-indenting is no change; anything else in the source is.
 */
export function canonicalSource(source: string): string {
  let out = '';
  let space = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]!;
    if (ch === '"' || ch === "'" || ch === '`') {
      const start = i;
      let depth = 0;
      for (i++; i < source.length; i++) {
        if (source[i] === '\\') i++;
        else if (ch === '`' && source[i] === '$' && source[i + 1] === '{') depth++;
        else if (ch === '`' && depth > 0 && source[i] === '}') depth--;
        else if (source[i] === ch && depth === 0) break;
      }
      out += source.slice(start, i + 1);
      space = false;
    } else if (ch === '/' && source[i + 1] === '/') {
      while (i < source.length && source[i] !== '\n') i++;
      space = true;
    } else if (ch === '/' && source[i + 1] === '*') {
      i = source.indexOf('*/', i + 2);
      if (i < 0) i = source.length;
      else i++;
      space = true;
    } else if (/\s/.test(ch)) {
      space = true;
    } else {
      if (space && WORD.test(ch) && WORD.test(out[out.length - 1] ?? '')) out += ' ';
      out += ch;
      space = false;
    }
  }
  return out
    .replace(/\(([A-Za-z_$][\w$]*)\)=>/g, '$1=>')
    .replace(/,([)\]}])/g, '$1')
    .replace(/;}/g, '}');
}

function sourceOf(fn: ((...args: never[]) => unknown) | undefined): string | null {
  return fn ? canonicalSource(fn.toString()) : null;
}

/** The descriptor of a view (what is fingerprinted and stored next to its table). */
export function describeView(view: FeatureView): ViewDescriptor {
  return {
    name: view.name,
    version: view.version,
    entity: { name: view.entity.name, keys: [...view.entity.keys] },
    source: view.source,
    features: Object.fromEntries(Object.entries(view.features).map(([k, t]) => [k, typeName(t)])),
    transform: sourceOf(view.transform as never),
    filter: sourceOf(view.filter as never),
    ttl: view.ttl === null ? null : view.ttl.toString(),
    columns: view.columns ? [...view.columns] : null,
  };
}

/** SHA-256 (hex) of the descriptor without its version: schema + transform + filter + ttl. */
export function fingerprint(descriptor: ViewDescriptor): string {
  const { version: _version, ...rest } = descriptor;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

function short(text: string | null): string {
  if (text === null) return 'none';
  return text.length > 60 ? JSON.stringify(text.slice(0, 57) + '…') : JSON.stringify(text);
}

/** What differs between two descriptors of the same view, one phrase per difference. */
export function describeChanges(before: ViewDescriptor, after: ViewDescriptor): string[] {
  const changes: string[] = [];
  if (before.entity.name !== after.entity.name || before.entity.keys.join() !== after.entity.keys.join()) {
    changes.push(
      `entity ${before.entity.name}(${before.entity.keys.join(', ')}) → ${after.entity.name}(${after.entity.keys.join(', ')})`,
    );
  }
  if (before.source !== after.source) changes.push(`source ${before.source} → ${after.source}`);
  for (const [f, t] of Object.entries(before.features)) {
    if (!(f in after.features)) changes.push(`feature ${f} removed`);
    else if (after.features[f] !== t) changes.push(`feature ${f} type ${t} → ${after.features[f]}`);
  }
  for (const [f, t] of Object.entries(after.features))
    if (!(f in before.features)) changes.push(`feature ${f} (${t}) added`);
  if (Object.keys(before.features).join() !== Object.keys(after.features).join() && changes.length === 0)
    changes.push('feature order changed');
  if (before.transform !== after.transform)
    changes.push(`transform changed (was ${short(before.transform)}, now ${short(after.transform)})`);
  if (before.filter !== after.filter)
    changes.push(`filter changed (was ${short(before.filter)}, now ${short(after.filter)})`);
  if (before.ttl !== after.ttl) changes.push(`ttl ${before.ttl ?? 'none'} µs → ${after.ttl ?? 'none'} µs`);
  if ((before.columns ?? []).join() !== (after.columns ?? []).join())
    changes.push(`columns [${before.columns?.join(', ') ?? ''}] → [${after.columns?.join(', ') ?? ''}]`);
  return changes;
}
