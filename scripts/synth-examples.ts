// Synthesises every example app (examples/<name>/main.ts) into dist/<name>/, validates each with
// the project's validator (src/validation/: bundled CRDs, Kubernetes schemas, references inside
// the app) and prints what was written. Each example exports `buildApp(outdir)` returning a cdk8s App; any single exported
// function is accepted too. Usage: npm run synth [-- <example> ...]
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { ManifestValidator } from '../src/validation/manifest-validator';

const ROOT = path.resolve(__dirname, '..');
// Overridable so the script itself can be tried on throwaway apps.
const EXAMPLES_DIR = path.resolve(process.env.SYNTH_EXAMPLES_DIR ?? path.join(ROOT, 'examples'));
const DIST_DIR = path.resolve(process.env.SYNTH_OUT_DIR ?? path.join(ROOT, 'dist'));

/** A problem this script found (as opposed to an example throwing): its message says it all. */
class SynthError extends Error {}

const validator = new ManifestValidator();

interface Synthesizable {
  synth(): void;
}

interface ExampleResult {
  readonly name: string;
  readonly outdir: string;
  readonly files: readonly { readonly file: string; readonly objects: number }[];
  readonly kinds: ReadonlyMap<string, number>;
}

function listExamples(only: readonly string[]): string[] {
  const all = fs.existsSync(EXAMPLES_DIR)
    ? fs.readdirSync(EXAMPLES_DIR)
      .filter((d) => fs.existsSync(path.join(EXAMPLES_DIR, d, 'main.ts')))
      .sort()
    : [];
  const unknown = only.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    throw new SynthError(`unknown example(s) ${unknown.map((n) => `"${n}"`).join(', ')}; examples/ holds: ${all.join(', ') || '(none)'}`);
  }
  return only.length > 0 ? [...only] : all;
}

/** `buildApp`, or the module's only exported function (named in the output so it can be renamed). */
function findBuilder(mod: Record<string, unknown>, name: string): { fn: (outdir: string) => unknown; exportName: string } {
  if (typeof mod.buildApp === 'function') {
    return { fn: mod.buildApp as (outdir: string) => unknown, exportName: 'buildApp' };
  }
  const fns = Object.entries(mod).filter(([, v]) => typeof v === 'function');
  if (fns.length === 1) {
    return { fn: fns[0][1] as (outdir: string) => unknown, exportName: fns[0][0] };
  }
  const names = fns.map(([k]) => k).join(', ') || 'none';
  throw new SynthError(`examples/${name}/main.ts must export buildApp(outdir: string): cdk8s.App (exported functions: ${names})`);
}

function isSynthesizable(x: unknown): x is Synthesizable {
  return typeof x === 'object' && x !== null && typeof (x as Synthesizable).synth === 'function';
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out.sort();
}

function synthExample(name: string): ExampleResult {
  const outdir = path.join(DIST_DIR, name);
  // Stale files from a renamed chart would otherwise be validated and shipped as if current.
  fs.rmSync(outdir, { recursive: true, force: true });
  fs.mkdirSync(outdir, { recursive: true });

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(path.join(EXAMPLES_DIR, name, 'main.ts')) as Record<string, unknown>;
  const { fn, exportName } = findBuilder(mod, name);
  if (exportName !== 'buildApp') {
    console.log(`  note: examples/${name}/main.ts exports ${exportName}() rather than buildApp(); using it`);
  }
  const app = fn(outdir);
  if (!isSynthesizable(app)) {
    throw new SynthError(`examples/${name}/main.ts: ${exportName}() returned ${app === undefined ? 'undefined' : typeof app}, expected a cdk8s App`);
  }
  app.synth();

  const written = fs.existsSync(outdir) ? listFiles(outdir) : [];
  if (written.length === 0) {
    throw new SynthError(`examples/${name}/main.ts: synth wrote nothing to ${path.relative(ROOT, outdir)}/; pass outdir to new App({ outdir })`);
  }
  const kinds = new Map<string, number>();
  const files = written.map((file) => {
    let objects = 0;
    if (/\.(ya?ml|json)$/.test(file)) {
      for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))) {
        if (doc.errors.length > 0) throw new SynthError(`${path.relative(ROOT, file)}: ${doc.errors[0].message}`);
        const obj = doc.toJS() as { kind?: string } | null;
        if (obj === null || obj === undefined) continue;
        objects++;
        const kind = obj.kind ?? '(no kind)';
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
    }
    return { file, objects };
  });
  if (kinds.size === 0) {
    throw new SynthError(`examples/${name}/main.ts: synth produced no Kubernetes objects in ${path.relative(ROOT, outdir)}/`);
  }
  const report = validator.validateFiles([outdir]);
  if (!report.valid) {
    throw new SynthError(`examples/${name}: ${report.problems.length} validation problem(s) in ${report.failedObjectCount} of ${report.objectCount} objects:\n${report.messages.map((m) => `    ${m}`).join('\n')}`);
  }
  return { name, outdir, files, kinds };
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function main(): number {
  let examples: string[];
  try {
    examples = listExamples(process.argv.slice(2));
  } catch (e) {
    console.error(`synth: ${(e as Error).message}`);
    return 2;
  }
  if (examples.length === 0) {
    console.error('synth: no examples found (expected examples/<name>/main.ts)');
    return 1;
  }
  const failures: string[] = [];
  let total = 0;
  for (const name of examples) {
    console.log(`examples/${name}`);
    try {
      const r = synthExample(name);
      const count = r.files.reduce((n, f) => n + f.objects, 0);
      total += count;
      for (const f of r.files) console.log(`  ${path.relative(ROOT, f.file)}  (${plural(f.objects, 'object')})`);
      const kinds = [...r.kinds.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(', ');
      console.log(`  => ${path.relative(ROOT, r.outdir)}/: ${plural(r.files.length, 'file')}, ${plural(count, 'object')} (${kinds}), all valid`);
    } catch (e) {
      const err = e as Error;
      console.error(`  FAILED: ${e instanceof SynthError ? err.message : err.stack ?? err.message}`);
      failures.push(`${name}: ${err.message.split('\n')[0]}`);
    }
  }
  console.log('');
  if (failures.length > 0) {
    console.error(`synth: ${failures.length} of ${examples.length} examples failed:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
    return 1;
  }
  console.log(`synth: ${plural(examples.length, 'example')}, ${plural(total, 'object')} under ${path.relative(ROOT, DIST_DIR)}/`);
  return 0;
}

process.exitCode = main();
