import * as fs from 'fs';
import * as path from 'path';
import type { ErrorObject } from 'ajv';
import { App, Chart, Testing } from 'cdk8s';
import * as YAML from 'yaml';
import { coreValidator } from './core-schemas';
import { CrdCatalog } from './crd-schemas';
import { ManifestProblem, ManifestValidationReport } from './manifest-validation-report';
import { checkReferences, groupOf, KubeObject, SourcedObject } from './references';
import { dnsLabelProblem, dnsSubdomainProblem } from '../model/names';

/**
 * Options for `ManifestValidator`.
 */
export interface ManifestValidatorOptions {
  /**
   * More CustomResourceDefinition files, or folders of them, to validate custom resources against.
   * A CRD for a group and kind the package bundles replaces the bundled one.
   *
   * @default - only the CRDs bundled in the package (Gateway API, Linkerd, Kuma, OSM, Istio,
   * Prometheus Operator, cert-manager; see `crds/SOURCES.md`)
   */
  readonly crdPaths?: string[];

  /**
   * Accept objects whose kind is neither built into Kubernetes nor defined by a known CRD,
   * without validating them. Otherwise each is a problem (rule `unknown-kind`).
   *
   * @default false
   */
  readonly allowUnknownKinds?: boolean;

  /**
   * Check references between the objects of the set (duplicates, Service selectors and target
   * ports, HPA targets, PodDisruptionBudget selectors, parentRefs to EgressNetworks, ConfigMap
   * volumes). Turn off to validate a partial set, e.g. one chart of an app that spreads a
   * workload and its Service across charts.
   *
   * @default true
   */
  readonly checkReferences?: boolean;
}

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** Kinds whose name must be a DNS-1035 label (the API server refuses anything else). */
const DNS1035_NAMED = new Set(['/Service']);

/**
 * Validates Kubernetes objects offline, the way an API server would accept or refuse them, and
 * checks the references between them.
 *
 * - Custom resources are validated against the `openAPIV3Schema` of their CRD, strictly: a field
 *   the schema does not declare is a problem (an API server would silently prune it), unless the
 *   schema says `x-kubernetes-preserve-unknown-fields`. `apiVersion`, `kind` and `metadata` are
 *   always allowed at the root. CEL rules (`x-kubernetes-validations`) are not evaluated.
 * - Built-in kinds are validated against the Kubernetes schemas of the kubernetes-models package.
 * - Every object needs a name that is a DNS-1123 subdomain (a DNS-1035 label for a Service) and,
 *   when it has one, a namespace that is a DNS-1123 label.
 * - References inside the set are checked (see `ManifestValidatorOptions.checkReferences`).
 *
 * @example
 * // in a jest test
 * const app = new App();
 * const chart = new Chart(app, 'egress');
 * new EgressGateway(chart, 'gateway');
 * new ManifestValidator().validateApp(app).assertValid();
 */
export class ManifestValidator {
  /** Every custom resource version the package bundles a schema for, as `group/version Kind`. */
  public static bundledCustomResources(): string[] {
    return CrdCatalog.bundled().list();
  }

  private readonly catalog: CrdCatalog;
  private readonly allowUnknownKinds: boolean;
  private readonly referenceChecks: boolean;

  constructor(options: ManifestValidatorOptions = {}) {
    const extra = options.crdPaths ?? [];
    this.catalog = extra.length === 0 ? CrdCatalog.bundled() : new CrdCatalog(extra, CrdCatalog.bundled());
    this.allowUnknownKinds = options.allowUnknownKinds ?? false;
    this.referenceChecks = options.checkReferences ?? true;
  }

  /**
   * Synthesises every chart of the app in memory (without writing files) and validates all their
   * objects as one set. Sources are named `chart:<chart path>#<index>`.
   */
  public validateApp(app: App): ManifestValidationReport {
    return this.validateSet(app.charts.flatMap((chart) => this.chartObjects(chart)), []);
  }

  /**
   * Synthesises one chart in memory and validates its objects as one set.
   */
  public validateChart(chart: Chart): ManifestValidationReport {
    return this.validateSet(this.chartObjects(chart), []);
  }

  /**
   * Validates the YAML (`.yaml`, `.yml`, multi-document) and JSON files at the given paths,
   * folders included (recursively, skipping `node_modules`), as one set, e.g. the output
   * folder of `cdk8s synth`.
   */
  public validateFiles(paths: string[]): ManifestValidationReport {
    const objects: SourcedObject[] = [];
    const problems: ManifestProblem[] = [];
    for (const p of paths) {
      if (!fs.existsSync(p)) {
        problems.push({ source: p, field: '/', rule: 'file', message: `${p} does not exist` });
        continue;
      }
      for (const file of manifestFiles(p)) {
        const parsed = parseManifests(fs.readFileSync(file, 'utf8'), displayPath(file), path.extname(file) === '.json');
        objects.push(...parsed.objects);
        problems.push(...parsed.problems);
      }
    }
    return this.validateSet(objects, problems);
  }

  /**
   * Validates the objects of a YAML text (multi-document; a `List` counts as its items) as one set.
   *
   * @param yaml the manifests
   * @param source the name of the text in messages, e.g. a file name
   */
  public validateYaml(yaml: string, source: string = 'manifest'): ManifestValidationReport {
    const parsed = parseManifests(yaml, source, false);
    return this.validateSet(parsed.objects, parsed.problems);
  }

  private chartObjects(chart: Chart): SourcedObject[] {
    return Testing.synth(chart).map((object, i) => ({ object: object as KubeObject, source: `chart:${chart.node.path}#${i}` }));
  }

  private validateSet(objects: readonly SourcedObject[], parseProblems: readonly ManifestProblem[]): ManifestValidationReport {
    const perObject: ManifestProblem[][] = objects.map(() => []);
    objects.forEach((x, i) => {
      for (const f of this.validateObject(x.object)) perObject[i].push(problem(x, f.field, f.rule, f.message));
    });
    if (this.referenceChecks) {
      for (const f of checkReferences(objects)) perObject[f.at].push(problem(objects[f.at], f.field, f.rule, f.message));
    }
    return new ManifestValidationReport(objects.length, [...parseProblems, ...perObject.flat()]);
  }

  private validateObject(o: KubeObject): Finding[] {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      return [{ field: '/', rule: 'type', message: 'a Kubernetes object must be a mapping' }];
    }
    if (typeof o.apiVersion !== 'string' || o.apiVersion === '' || typeof o.kind !== 'string' || o.kind === '') {
      const missing = ['apiVersion', 'kind'].filter((k) => typeof o[k] !== 'string' || o[k] === '');
      return missing.map((k) => ({ field: `/${k}`, rule: 'required', message: `"${k}" is required (a non-empty string)` }));
    }
    const findings = metadataFindings(o);
    const group = groupOf(o.apiVersion);
    const version = o.apiVersion.slice(o.apiVersion.indexOf('/') + 1);

    const crd = this.catalog.lookup(group, version, o.kind);
    if (crd.found === 'version') {
      // The CRD schema says only `metadata: object`; the API server still checks these maps.
      findings.push(...stringMapFindings(o));
      if (!crd.validate(o)) findings.push(...schemaFindings(crd.validate.errors ?? []));
      return findings;
    }
    if (crd.found === 'kind-only') {
      const served = [...crd.kind.versions.keys()].map((v) => `${group}/${v}`).join(', ');
      findings.push({ field: '/apiVersion', rule: 'served-version', message: `${o.kind} is not served as ${o.apiVersion}; its CRD serves ${served || 'no version'}` });
      return findings;
    }
    const core = coreValidator(group, version, o.kind);
    if (core !== undefined) {
      findings.push(...schemaFindings(core(o)));
      return findings;
    }
    if (!this.allowUnknownKinds) {
      findings.push({
        field: '/kind',
        rule: 'unknown-kind',
        message: `${o.apiVersion} ${o.kind} is neither a built-in kind nor defined by a known CRD; add its CRD with crdPaths, or allowUnknownKinds`,
      });
    }
    return findings;
  }
}

/** A problem on one object, before it is tied to the object. */
interface Finding {
  readonly field: string;
  readonly rule: string;
  readonly message: string;
}

function problem(x: SourcedObject, field: string, rule: string, message: string): ManifestProblem {
  const o = x.object;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const isObject = typeof o === 'object' && o !== null;
  return {
    source: x.source,
    apiVersion: isObject ? str(o.apiVersion) : undefined,
    kind: isObject ? str(o.kind) : undefined,
    namespace: isObject ? str(o.metadata?.namespace) : undefined,
    name: isObject ? str(o.metadata?.name) : undefined,
    field,
    rule,
    message,
  };
}

/** Name and namespace syntax (the API server checks these for every kind). */
function metadataFindings(o: KubeObject): Finding[] {
  const out: Finding[] = [];
  const meta = o.metadata;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    return [{ field: '/metadata', rule: 'required', message: 'metadata with a name is required' }];
  }
  const name = meta.name;
  if (name === undefined || name === '') {
    out.push({ field: '/metadata/name', rule: 'required', message: 'metadata.name is required' });
  } else if (typeof name !== 'string') {
    out.push({ field: '/metadata/name', rule: 'type', message: `metadata.name must be a string, got ${JSON.stringify(name)}` });
  } else if (DNS1035_NAMED.has(`${groupOf(o.apiVersion)}/${String(o.kind)}`)) {
    if (name.length > 63 || !DNS1035_LABEL.test(name)) {
      out.push({ field: '/metadata/name', rule: 'name-format', message: `"${name}" is not a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, at most 63 characters)` });
    }
  } else if (dnsSubdomainProblem(name)) {
    out.push({ field: '/metadata/name', rule: 'name-format', message: `"${name}" ${dnsSubdomainProblem(name)!.rule}` });
  }
  const ns = meta.namespace;
  if (ns !== undefined && dnsLabelProblem(ns)) {
    out.push({ field: '/metadata/namespace', rule: 'name-format', message: `${JSON.stringify(ns)} ${dnsLabelProblem(ns, { what: 'a namespace' })!.rule}` });
  }
  return out;
}

/** Labels and annotations are maps of strings (the built-in schemas say so; CRD schemas do not). */
function stringMapFindings(o: KubeObject): Finding[] {
  const out: Finding[] = [];
  const meta = o.metadata ?? {};
  for (const map of ['labels', 'annotations']) {
    const m = meta[map];
    if (m === undefined) continue;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      out.push({ field: `/metadata/${map}`, rule: 'type', message: `metadata.${map} must be a map of strings` });
      continue;
    }
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== 'string') out.push({ field: `/metadata/${map}/${escapePointer(k)}`, rule: 'type', message: `must be a string, got ${JSON.stringify(v)}` });
    }
  }
  return out;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Ajv errors as findings. An unknown field is reported at its own pointer; the branches of an
 * `anyOf`/`oneOf` (int-or-string, mostly) are folded into one finding for the whole choice.
 */
function schemaFindings(errors: readonly ErrorObject[]): Finding[] {
  const choices = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const branchesOf = (c: ErrorObject): ErrorObject[] => errors.filter((e) => e !== c && e.instancePath === c.instancePath && e.schemaPath.startsWith(`${c.schemaPath}/`));
  const inChoice = new Set(choices.flatMap(branchesOf));
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (inChoice.has(e)) continue;
    const f = e.keyword === 'anyOf' || e.keyword === 'oneOf' ? choiceFinding(e, branchesOf(e)) : schemaFinding(e);
    const key = `${f.field} ${f.rule} ${f.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(f);
  }
  return out;
}

function choiceFinding(e: ErrorObject, branches: readonly ErrorObject[]): Finding {
  const at = e.instancePath === '' ? '/' : e.instancePath;
  if (branches.length > 0 && branches.every((b) => b.keyword === 'type')) {
    const types = branches.map((b) => String((b.params as { type?: unknown }).type));
    return { field: at, rule: 'type', message: `must be ${types.map((t) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`)).join(' or ')}` };
  }
  const why = branches.map((b) => schemaFinding(b)).map((f) => `${f.field}: ${f.message}`);
  return { field: at, rule: e.keyword, message: `${e.message ?? e.keyword}${why.length > 0 ? ` (${why.join('; ')})` : ''}` };
}

function schemaFinding(e: ErrorObject): Finding {
  const at = e.instancePath === '' ? '/' : e.instancePath;
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = `${e.instancePath}/${escapePointer(String(params.additionalProperty))}`;
      return { field, rule: 'unknown-field', message: `unknown field "${String(params.additionalProperty)}": the schema does not declare it (an API server would drop it)` };
    }
    case 'required':
      return { field: `${e.instancePath}/${escapePointer(String(params.missingProperty))}`, rule: 'required', message: `required field "${String(params.missingProperty)}" is missing` };
    case 'enum':
      return { field: at, rule: 'enum', message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    default:
      return { field: at, rule: e.keyword, message: e.message ?? e.keyword };
  }
}

/** The YAML and JSON files under a path, sorted, skipping node_modules. */
function manifestFiles(p: string): string[] {
  if (!fs.statSync(p).isDirectory()) return [p];
  return fs.readdirSync(p).sort().flatMap((name) => {
    if (name === 'node_modules') return [];
    const child = path.join(p, name);
    if (fs.statSync(child).isDirectory()) return manifestFiles(child);
    return /\.(ya?ml|json)$/.test(name) ? [child] : [];
  });
}

/** A path relative to the working directory when it lies under it, as given otherwise. */
function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

function parseManifests(text: string, source: string, json: boolean): { objects: SourcedObject[]; problems: ManifestProblem[] } {
  const objects: SourcedObject[] = [];
  const problems: ManifestProblem[] = [];
  const docs: { value?: unknown; error?: string }[] = [];
  if (json) {
    try {
      docs.push({ value: JSON.parse(text) });
    } catch (e) {
      docs.push({ error: `JSON error: ${(e as Error).message.split('\n')[0]}` });
    }
  } else {
    for (const d of YAML.parseAllDocuments(text)) {
      docs.push(d.errors.length > 0 ? { error: `YAML error: ${d.errors[0].message.split('\n')[0].replace(/:$/, '')}` } : { value: d.toJS() });
    }
  }
  docs.forEach((d, i) => {
    if (d.error !== undefined) {
      problems.push({ source: `${source}#${i}`, field: '/', rule: 'syntax', message: d.error });
      return;
    }
    const o = d.value as KubeObject | null | undefined;
    if (o === null || o === undefined) return;
    if (typeof o === 'object' && o.kind === 'List' && Array.isArray(o.items)) {
      o.items.forEach((item: unknown, j: number) => objects.push({ object: item as KubeObject, source: `${source}#${i}.${j}` }));
    } else {
      objects.push({ object: o, source: `${source}#${i}` });
    }
  });
  return { objects, problems };
}
