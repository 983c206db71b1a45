/** PostgreSQL type OIDs → the types featureflow decodes (builtins, domains, enums), from the catalog where needed. */
// ---------------------------------------------------------------------------------------------
// Type OIDs

/** How a type OID decodes: the normalised element type, and whether the column is an array of it. */
export interface PgTypeInfo {
  readonly type: string;
  readonly array: boolean;
}

/** Builtin type OIDs (pg_type.dat): [scalar oid, array oid, normalised type]. */
const BUILTIN: readonly (readonly [number, number, string])[] = [
  [16, 1000, 'bool'],
  [17, 1001, 'bytea'],
  [19, 1003, 'text'], // name
  [20, 1016, 'int8'],
  [21, 1005, 'int2'],
  [23, 1007, 'int4'],
  [25, 1009, 'text'],
  [26, 1028, 'oid'],
  [114, 199, 'json'],
  [700, 1021, 'float4'],
  [701, 1022, 'float8'],
  [1042, 1014, 'text'], // bpchar: sent with its blank padding
  [1043, 1015, 'text'], // varchar
  [1082, 1182, 'date'],
  [1083, 1183, 'time'],
  [1114, 1115, 'timestamp'],
  [1184, 1185, 'timestamptz'],
  [1186, 1187, 'interval'],
  [1266, 1270, 'timetz'],
  [1700, 1231, 'numeric'],
  [2950, 2951, 'uuid'],
  [3802, 3807, 'jsonb'],
];

const BUILTIN_TYPES = new Map<number, PgTypeInfo>();
for (const [oid, arrayOid, type] of BUILTIN) {
  BUILTIN_TYPES.set(oid, Object.freeze({ type, array: false }));
  BUILTIN_TYPES.set(arrayOid, Object.freeze({ type, array: true }));
}

/** Send functions whose binary form is plain text (e.g. citext, which reuses textsend). */
const TEXT_SEND = new Set(['textsend', 'varcharsend', 'bpcharsend', 'namesend']);

/**
 * Runs one catalog query; `(sql, params) => client.query(sql, params)` with a node-postgres client
 * or pool fits.
 */
export type CatalogQuery = (sql: string, params: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

const TYPE_SQL =
  'SELECT t.typtype, t.typcategory, t.typbasetype::int8 AS typbasetype, t.typelem::int8 AS typelem, ' +
  't.typsend::text AS typsend, format_type(t.oid, NULL) AS name FROM pg_catalog.pg_type t WHERE t.oid = $1';

const KIND: Readonly<Record<string, string>> = {
  c: 'a composite type',
  r: 'a range type',
  m: 'a multirange type',
  p: 'a pseudo-type',
};

/**
 * Maps type OIDs to how featureflow decodes them: builtin OIDs from a static table, anything else
 * (enums, domains, arrays of those, text-like extension types) from `pg_type`, cached per resolver.
 */
export class PgTypeResolver {
  private readonly cache = new Map<number, PgTypeInfo>();

  /** The builtin or already resolved entry of `oid`, or undefined. */
  resolveSync(oid: number): PgTypeInfo | undefined {
    return BUILTIN_TYPES.get(oid) ?? this.cache.get(oid);
  }

  /**
   * Resolves `oid`, asking the catalog for types outside the builtin table.
   * @throws Error naming the type when featureflow cannot decode it.
   */
  async resolve(oid: number, query: CatalogQuery): Promise<PgTypeInfo> {
    const known = this.resolveSync(oid);
    if (known) return known;
    const info = await this.lookup(oid, query, 0);
    this.cache.set(oid, info);
    return info;
  }

  private async lookup(oid: number, query: CatalogQuery, depth: number): Promise<PgTypeInfo> {
    const known = this.resolveSync(oid);
    if (known) return known;
    if (depth > 16) throw new Error(`type oid ${oid}: domain or array nesting too deep to resolve`);
    const { rows } = await query(TYPE_SQL, [oid]);
    const row = rows[0];
    if (!row)
      throw new Error(`type oid ${oid} does not exist in pg_type; was the type dropped while it was being captured?`);
    const typtype = String(row.typtype);
    const name = String(row.name);
    let info: PgTypeInfo;
    if (typtype === 'e') {
      info = { type: 'enum', array: false };
    } else if (typtype === 'd') {
      // A domain is sent in its base type's binary format.
      info = await this.lookup(Number(row.typbasetype), query, depth + 1);
    } else if (typtype === 'b' && row.typcategory === 'A' && Number(row.typelem) !== 0) {
      const element = await this.lookup(Number(row.typelem), query, depth + 1);
      if (element.array) throw unsupported(name, oid, 'an array of arrays');
      info = { type: element.type, array: true };
    } else if (typtype === 'b' && TEXT_SEND.has(String(row.typsend))) {
      info = { type: 'text', array: false };
    } else {
      throw unsupported(name, oid, KIND[typtype]);
    }
    info = Object.freeze(info);
    this.cache.set(oid, info);
    return info;
  }
}

function unsupported(name: string, oid: number, kind: string | undefined): Error {
  return new Error(
    `column type ${name} (oid ${oid})${kind ? `, ${kind},` : ''} is not supported by featureflow; ` +
      `cast the column to a supported type (text, numeric, jsonb, …) in a view, or leave the column out of the capture`,
  );
}
