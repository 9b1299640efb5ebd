// The cdk8s CLI validation plugin, end to end and slow on purpose (about two minutes): builds lib/,
// packs the package with `npm pack` (bundled dependencies and crds/ included), installs the
// tarball into a fresh temporary cdk8s app (npm registry or its cache only) and runs the real
// `cdk8s synth` with a `validations:` entry, once on a valid app and once on a broken one.
import { execFileSync, spawnSync } from 'child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';

const ROOT = resolve(__dirname, '..', '..');
const CDK8S_CLI = join(ROOT, 'node_modules', '.bin', 'cdk8s');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; devDependencies: Record<string, string>; peerDependencies: Record<string, string> };

/** Newest modification time under a folder. */
function newest(dir: string): number {
  return readdirSync(dir).reduce((m, name) => {
    const p = join(dir, name);
    const st = statSync(p);
    return Math.max(m, st.isDirectory() ? newest(p) : st.mtimeMs);
  }, 0);
}

const MAIN = `const { App, Chart, ApiObject } = require('cdk8s');
const { EgressGateway, EgressNetwork, HttpRoute } = require('cdk8s-egress');
const app = new App();
const chart = new Chart(app, 'egress', { namespace: 'egress' });
const gateway = new EgressGateway(chart, 'gateway');
gateway.addExternalService('github', { host: 'api.github.com' });
const network = new EgressNetwork(chart, 'network', { namespace: 'apps' });
new HttpRoute(chart, 'github', { network, namespace: 'apps', hostnames: ['api.github.com'] });
if (process.env.BREAK_IT === '1') {
  new ApiObject(chart, 'typo', {
    apiVersion: 'policy.linkerd.io/v1alpha1', kind: 'EgressNetwork',
    metadata: { name: 'typo', namespace: 'apps' },
    spec: { trafficPolicy: 'Deny', netwroks: [{ cidr: '0.0.0.0/0' }] },
  });
}
app.synth();
`;

let work: string;
let app: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cdk8s-plugin-'));
  // A fresh clone has no lib/: build it (tsc; jsii's .jsii is not needed to load the package).
  if (!existsSync(join(ROOT, 'lib', 'index.js')) || statSync(join(ROOT, 'lib', 'index.js')).mtimeMs < newest(join(ROOT, 'src'))) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe', timeout: 300_000 });
  }
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] }));
  const tarball = join(work, packed[0].filename);

  app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'egress-app', version: '1.0.0', private: true }));
  writeFileSync(join(app, 'main.js'), MAIN);
  writeFileSync(join(app, 'cdk8s.yaml'), [
    'app: node main.js',
    'validations:',
    '  - package: ./node_modules/cdk8s-egress',
    `    version: ${pkg.version}`,
    '    class: ManifestValidationPlugin',
    '',
  ].join('\n'));
  execFileSync('npm', [
    'install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error',
    tarball,
    `cdk8s@${pkg.devDependencies.cdk8s}`,
    `constructs@${pkg.devDependencies.constructs}`,
    `cdk8s-plus-28@${pkg.devDependencies['cdk8s-plus-28']}`,
  ], { cwd: app, stdio: 'pipe', timeout: 300_000 });
}, 900_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

function synth(env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(CDK8S_CLI, ['synth', '--no-check-upgrade'], { cwd: app, encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...env } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('the packed package carries its CRDs and bundled dependencies, and the app loads them from there', () => {
  const installed = join(app, 'node_modules', 'cdk8s-egress');
  expect(existsSync(join(installed, 'crds', 'SOURCES.md'))).toBe(true);
  expect(existsSync(join(installed, 'crds', 'linkerd', 'egressnetworks.policy.linkerd.io.yaml'))).toBe(true);
  for (const dep of ['ajv', 'kubernetes-models', 'yaml']) expect(existsSync(join(installed, 'node_modules', dep, 'package.json'))).toBe(true);
});

test('cdk8s synth passes a valid app through the plugin', () => {
  const r = synth();
  expect(r.out).toContain('Performing validations');
  expect(r.out).toContain(`Validation Report (${join(app, 'node_modules', 'cdk8s-egress')}@${pkg.version})`);
  expect(r.out).toMatch(/Status\s*│\s*success/);
  expect(r.out).toContain('Validations ended succesfully');
  expect(r.status).toBe(0);
});

test('throws when the app breaks a CRD schema: cdk8s synth fails naming object, field and rule', () => {
  const r = synth({ BREAK_IT: '1' });
  expect(r.status).toBe(2);
  expect(r.out).toMatch(/Status\s*│\s*failure/);
  expect(r.out).toContain('cdk8s-egress/unknown-field (1 occurrences)');
  expect(r.out).toMatch(/Construct Path: egress\/typo/);
  expect(r.out).toMatch(/> EgressNetwork apps\/typo \(.*egress\.k8s\.yaml#\d+\) \/spec\/netwroks: unknown field "netwroks".*\[unknown-field\]/);
  expect(r.out).toContain('Validation failed');
});
