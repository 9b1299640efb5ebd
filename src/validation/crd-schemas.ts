// Custom resource schemas: loads CustomResourceDefinition files and compiles each served version's
// openAPIV3Schema the way an API server with pruning applies it (unknown fields are errors).
import * as fs from 'fs';
import * as path from 'path';
import Ajv, { ValidateFunction } from 'ajv';
import * as YAML from 'yaml';

/** The CRDs vendored in this package (see crds/SOURCES.md). */
export const BUNDLED_CRD_DIR = path.join(__dirname, '..', '..', 'crds');

/** One served version of a custom resource. */
interface CrdVersion {
  readonly schema: object;
  compiled?: ValidateFunction;
}

/** What the catalogue knows about one group and kind. */
interface CrdKind {
  readonly group: string;
  readonly kind: string;
  readonly scope: string;
  readonly file: string;
  /** Served versions only: the API server refuses the others. */
  readonly versions: Map<string, CrdVersion>;
}

/** The result of looking an apiVersion and kind up. */
export type CrdLookup =
  | { readonly found: 'version'; readonly validate: ValidateFunction; readonly kind: CrdKind }
  | { readonly found: 'kind-only'; readonly kind: CrdKind }
  | { readonly found: 'none' };

/**
 * Turns an upstream schema into the one an API server enforces on a pruned object:
 * - an object schema with `properties` and no `additionalProperties` is closed, unless it says
 *   `x-kubernetes-preserve-unknown-fields` (pruning would remove the unknown field silently,
 *   which for a synthesised object is a bug);
 * - `x-kubernetes-int-or-string` accepts an integer or a string;
 * - CEL rules (`x-kubernetes-validations`) are dropped: they cannot be evaluated here.
 */
export function closeSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'x-kubernetes-validations') continue;
    // `properties` and friends are maps from a name to a schema: recurse into each schema.
    out[key] = closeSchema(value);
  }
  if (out['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    if (out.anyOf === undefined) out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  if (out.properties !== undefined && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return out;
}

/**
 * The root of every object may hold `apiVersion`, `kind` and `metadata`, whether or not the CRD's
 * schema declares them (OSM's and Istio's declare only `spec`): the API server always accepts them
 * and validates `metadata` itself.
 */
export function withTypeMeta(schema: Record<string, unknown>): Record<string, unknown> {
  const properties = (schema.properties ?? {}) as Record<string, unknown>;
  return {
    ...schema,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      ...properties,
    },
  };
}

/**
 * CRD patterns are Go RE2 expressions. RE2 accepts a leading flag group such as `(?i)`, which
 * JavaScript does not (prometheus-operator's `^(?i)(abort|warn)?$`); at the start of the pattern
 * (after an optional `^`) it applies to the whole pattern, so it becomes a RegExp flag. Any other
 * RE2-only syntax fails to compile, loudly.
 */
export function re2RegExp(source: string, flags: string): RegExp {
  const m = /^(\^?)\(\?([imsU]+)\)/.exec(source);
  if (m === null) return new RegExp(source, flags);
  if (m[2].includes('U')) throw new Error(`RE2 flag U (ungreedy) has no JavaScript equivalent in pattern ${JSON.stringify(source)}`);
  const extra = [...new Set(m[2])].filter((f) => !flags.includes(f)).join('');
  return new RegExp(m[1] + source.slice(m[0].length), flags + extra);
}
// Ajv names the engine in standalone code only, which this package never generates.
re2RegExp.code = 're2RegExp';

/** Lists the YAML files of a file or folder, sorted, skipping node_modules. */
function yamlFiles(p: string): string[] {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return [p];
  return fs.readdirSync(p).sort().flatMap((name) => {
    if (name === 'node_modules') return [];
    const child = path.join(p, name);
    if (fs.statSync(child).isDirectory()) return yamlFiles(child);
    return /\.ya?ml$/.test(name) ? [child] : [];
  });
}

/**
 * A catalogue of custom resource kinds from CRD files, loaded lazily: a file holding one CRD is
 * only indexed by its group and kind (read from the text) until an object of that kind is
 * validated; then it is parsed, and a version's schema is compiled the first time an object of
 * that version is validated. The bundled files hold 3 MB of YAML, and most sets use few kinds.
 */
export class CrdCatalog {
  /** The catalogue of the bundled CRDs, loaded once per process. */
  public static bundled(): CrdCatalog {
    if (CrdCatalog.bundledCatalog === undefined) CrdCatalog.bundledCatalog = new CrdCatalog([BUNDLED_CRD_DIR]);
    return CrdCatalog.bundledCatalog;
  }

  private static bundledCatalog?: CrdCatalog;

  private readonly kinds = new Map<string, CrdKind>();
  /** `group/Kind` of a file not parsed yet, from its text, and the file. */
  private readonly pending = new Map<string, string>();
  private readonly ajv: Ajv;

  /**
   * @param paths CRD files or folders of them; a later definition of the same group and kind
   * replaces an earlier one, so a user's CRDs can override the bundled ones.
   * @param base a catalogue whose kinds this one starts from
   */
  constructor(paths: readonly string[], base?: CrdCatalog) {
    this.ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, code: { regExp: re2RegExp } });
    if (base !== undefined) {
      for (const [key, file] of base.pending) this.pending.set(key, file);
      for (const [key, k] of base.kinds) {
        this.kinds.set(key, { ...k, versions: new Map([...k.versions].map(([v, cv]) => [v, { schema: cv.schema }])) });
      }
    }
    for (const p of paths) {
      if (!fs.existsSync(p)) throw new Error(`CRD path ${JSON.stringify(p)} does not exist`);
      for (const file of yamlFiles(p)) this.index(file);
    }
  }

  /** Every group/version/kind known, as `group/version Kind` (parses every file). */
  public list(): string[] {
    for (const key of [...this.pending.keys()]) this.resolve(key);
    const out: string[] = [];
    for (const k of this.kinds.values()) for (const v of k.versions.keys()) out.push(`${k.group}/${v} ${k.kind}`);
    return out.sort();
  }

  public lookup(group: string, version: string, kind: string): CrdLookup {
    const key = `${group}/${kind}`;
    this.resolve(key);
    const k = this.kinds.get(key);
    if (k === undefined) return { found: 'none' };
    const v = k.versions.get(version);
    if (v === undefined) return { found: 'kind-only', kind: k };
    if (v.compiled === undefined) v.compiled = this.ajv.compile(v.schema);
    return { found: 'version', validate: v.compiled, kind: k };
  }

  /** Parses the file that defines `key`, if it is still pending. */
  private resolve(key: string): void {
    const file = this.pending.get(key);
    if (file === undefined) return;
    this.pending.delete(key);
    this.load(file);
  }

  /**
   * Indexes a file by the group and kind of its one CRD, read from the text (`spec.group` and
   * `spec.names.kind`, as every CRD generator writes them); anything else is parsed now.
   */
  private index(file: string): void {
    const text = fs.readFileSync(file, 'utf8');
    const crds = text.match(/^kind:\s*CustomResourceDefinition\s*$/gm)?.length ?? 0;
    const group = /^ {2}group:\s*['"]?([a-z0-9.-]+)['"]?\s*$/m.exec(text)?.[1];
    const kind = /^ {2}names:\s*\n(?: {4}.*\n)*? {4}kind:\s*['"]?([A-Za-z0-9]+)['"]?\s*$/m.exec(text)?.[1];
    if (crds === 1 && group !== undefined && kind !== undefined) {
      const key = `${group}/${kind}`;
      this.kinds.delete(key);
      this.pending.set(key, file);
    } else {
      this.load(file, text);
    }
  }

  private load(file: string, text: string = fs.readFileSync(file, 'utf8')): void {
    const docs = YAML.parseAllDocuments(text);
    for (const doc of docs) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
      const crd = doc.toJS() as CustomResourceDefinition | null;
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      const { group, names, scope, versions } = crd.spec;
      const versionMap = new Map<string, CrdVersion>();
      for (const v of versions) {
        const schema = v.schema?.openAPIV3Schema;
        if (!v.served || schema === undefined) continue;
        versionMap.set(v.name, { schema: withTypeMeta(closeSchema(schema) as Record<string, unknown>) });
      }
      const key = `${group}/${names.kind}`;
      // A later file defines the kind now: an earlier pending one no longer applies.
      this.pending.delete(key);
      this.kinds.set(key, { group, kind: names.kind, scope, file, versions: versionMap });
    }
  }
}

/** The parts of a CustomResourceDefinition read here. */
interface CustomResourceDefinition {
  readonly kind: string;
  readonly spec: {
    readonly group: string;
    readonly scope: string;
    readonly names: { readonly kind: string };
    readonly versions: readonly {
      readonly name: string;
      readonly served: boolean;
      readonly schema?: { readonly openAPIV3Schema?: object };
    }[];
  };
}
