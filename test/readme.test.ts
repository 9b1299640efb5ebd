// The README's example is code users copy: run it as written (only the package import points at
// the source) and check what it synthesises, so the README cannot drift from the library.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cdk8s from 'cdk8s';
import * as ts from 'typescript';
import * as YAML from 'yaml';
import * as lib from '../src';
import { parseConfigText } from '../src/proxy/config';

function readmeExample(): string {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Example\n'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README.md has no ```ts block under "## Example"');
  return m[1];
}

/** Runs TypeScript source with `cdk8s-egress` resolved to the library source. */
function run(source: string): void {
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  // The example may import only what a user of the package has: the package and cdk8s.
  const modules: Record<string, unknown> = { 'cdk8s-egress': lib, 'cdk8s': cdk8s };
  const requireFor = (name: string) => {
    if (!(name in modules)) throw new Error(`the README example imports "${name}", which a user of cdk8s-egress does not have`);
    return modules[name];
  };
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  new Function('require', 'exports', js)(requireFor, {});
}

let outdir: string;
const savedOutdir = process.env.CDK8S_OUTDIR;
beforeEach(() => {
  outdir = mkdtempSync(join(tmpdir(), 'egress-readme-'));
  process.env.CDK8S_OUTDIR = outdir;
});
afterEach(() => {
  if (savedOutdir === undefined) delete process.env.CDK8S_OUTDIR;
  else process.env.CDK8S_OUTDIR = savedOutdir;
  rmSync(outdir, { recursive: true, force: true });
});

test('the README example synthesises the gateway, its config and the DNS rule it promises', () => {
  const source = readmeExample();
  expect(source).toContain("from 'cdk8s-egress'");
  run(source);

  const objects = readdirSync(outdir).filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => YAML.parseAllDocuments(readFileSync(join(outdir, f), 'utf8')).map((d) => d.toJSON()))
    .filter((o) => o);
  const kinds = objects.map((o) => o.kind);
  expect(kinds).toEqual(expect.arrayContaining(['Namespace', 'ServiceAccount', 'ConfigMap', 'Deployment', 'Service', 'PodDisruptionBudget']));

  const service = objects.find((o) => o.kind === 'Service' && o.metadata.namespace === 'egress');
  expect(service.metadata.name).toBe('proxy');

  const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.data?.['config.json']);
  const config = parseConfigText(configMap.data['config.json'], 'README ConfigMap');
  expect(config.parent).toMatchObject({ trafficPolicy: 'Deny', allowDeclaredServices: true });
  expect(config.externalServices.map((s) => s.host)).toEqual(['api.github.com']);
  expect(config.externalServices[0].retry?.maxRetries).toBe(2);
  // The token is a mounted file, never a value in the config.
  expect(config.externalServices[0].injectHeaders[0].valueFile).toMatch(/^\/var\/run\/egress\/secrets\/github-token\/header$/);

  // Safe on a managed cluster: an import file CoreDNS already loads, never the Corefile itself.
  expect(objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.namespace === 'kube-system').map((o) => o.metadata.name)).toEqual(['coredns-custom']);
  const custom = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'coredns-custom');
  expect(Object.keys(custom.data)).toEqual(['egress-rewrite.override']);
  expect(custom.data['egress-rewrite.override']).toContain('name regex ^(.+)\\.egress\\.local\\.$ proxy.egress.svc.cluster.local.');
});

/** The ```ts block under `heading` (the first one). */
function readmeBlock(heading: string, nth = 0): string {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const start = readme.indexOf(`${heading}\n`);
  if (start < 0) throw new Error(`README.md has no "${heading}" section`);
  const blocks = [...readme.slice(start).matchAll(/```ts\n([\s\S]*?)```/g)];
  if (!blocks[nth]) throw new Error(`README.md has no ts block ${nth} under "${heading}"`);
  return blocks[nth][1];
}

test('the README policy test runs as written and its expectations hold (a broken policy fails it)', () => {
  const source = readmeBlock('### Test your egress policy');
  expect(source).toContain("from 'cdk8s-egress'");
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  const modules: Record<string, unknown> = { 'cdk8s-egress': lib, 'cdk8s': cdk8s };
  const requireFor = (name: string) => {
    if (!(name in modules)) throw new Error(`the README test imports "${name}", which a user of cdk8s-egress does not have`);
    return modules[name];
  };
  // The snippet's `test()` runs its body at once, with jest's own `expect`.
  const names: string[] = [];
  const inline = (name: string, fn: () => void) => {
    names.push(name);
    fn();
  };
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  new Function('require', 'exports', 'test', 'expect', js)(requireFor, {}, inline, expect);
  expect(names).toEqual(['only the payments namespace may call Stripe']);

  // The same snippet with the clients widened to everyone must fail its own expectations.
  const open = source.replace("clients: [Client.namespace('payments')] ", '');
  expect(open).not.toBe(source);
  const openJs = ts.transpileModule(open, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  expect(() => new Function('require', 'exports', 'test', 'expect', openJs)(requireFor, {}, inline, expect)).toThrow(/CALLER_NOT_ALLOWED/);
});

test('the README clients snippet declares what it says', () => {
  const source = readmeBlock('## Who may call what');
  const chart = new cdk8s.Chart(new cdk8s.App(), 'egress');
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  new Function('chart', ...Object.keys(lib), js)(chart, ...Object.values(lib));
  const config = (chart.node.findAll().find((c) => c instanceof lib.EgressGateway) as lib.EgressGateway)._renderConfig();
  expect(config.callers).toMatchObject({ source: 'Linkerd', unknown: 'AllowUnrestricted' });
  expect(config.externalServices[0].clients).toEqual([{ namespace: 'payments' }, { serviceAccount: { namespace: 'billing', name: 'invoicer' } }]);
});
