// scripts/validate-examples.sh: sets aside exactly the validator's known root apiVersion/kind/
// metadata defect on OSM and Istio objects, prints it, and fails on everything else.
import { spawnSync } from 'child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';

const ROOT = resolve(__dirname, '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'validate-examples.sh');

const EGRESS = `apiVersion: policy.openservicemesh.io/v1alpha1
kind: Egress
metadata:
  name: httpbin
  namespace: curl
spec:
  sources:
    - kind: ServiceAccount
      name: curl
      namespace: curl
  hosts:
    - httpbin.org
  ports:
    - number: 443
      protocol: https
`;

const CONFIG_MAP = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: curl
data:
  a: "1"
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'validate-examples-'));
  mkdirSync(join(dir, 'examples', 'demo'), { recursive: true });
  writeFileSync(join(dir, 'examples', 'demo', 'main.ts'), '// placeholder\n');
  mkdirSync(join(dir, 'dist', 'demo'), { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function run(env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', [SCRIPT], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, EXAMPLES_DIR: join(dir, 'examples'), DIST_DIR: join(dir, 'dist'), ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A stand-in validator printing `lines` and exiting with `rc`. */
function fakeValidator(lines: string[], rc: number): string {
  const file = join(dir, 'fake-validator');
  writeFileSync(file, `#!/usr/bin/env bash\ncat <<'EOF'\n${lines.join('\n')}\nEOF\nexit ${rc}\n`);
  chmodSync(file, 0o755);
  return file;
}

test('a valid OSM Egress passes: its three root messages are printed as set aside, with the explanation', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'egress.k8s.yaml'), `${EGRESS}---\n${CONFIG_MAP}`);
  const r = run();
  expect(r.status).toBe(0);
  const setAside = r.stdout.split('\n').filter((l) => l.includes('set aside (known validator defect, policy.openservicemesh.io Egress)'));
  expect(setAside.map((l) => l.replace(/.*\((apiVersion|kind|metadata)\)$/, '$1'))).toEqual(['apiVersion', 'kind', 'metadata']);
  expect(r.stdout).toContain('note: the OSM and Istio CRDs declare only spec at the root');
  expect(r.stdout).toContain('=> 2 passed, 0 failed once the 3 message(s) above are set aside');
  expect(r.stdout).toContain('validate-examples: every example passed');
});

test('throws when an OSM object is wrong inside spec: that message counts and the script fails', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'egress.k8s.yaml'), EGRESS.replace('  hosts:', '  colour: blue\n  hosts:'));
  const r = run();
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/^ {2}FAIL .*egress\.k8s\.yaml#0: \/spec must NOT have additional properties \(colour\)$/m);
  expect(r.stdout).toContain('=> 0 passed, 1 failed once the 3 message(s) above are set aside');
  expect(r.stderr).toContain('validate-examples: FAILED');
});

test('throws when a core object fails: nothing is set aside', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'cm.k8s.yaml'), CONFIG_MAP.replace('a: "1"', 'a: 1'));
  const r = run();
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/FAIL .*cm\.k8s\.yaml#0: .*must be string/);
  expect(r.stdout).not.toContain('set aside');
});

test('throws when the root message names an object outside the OSM and Istio groups', () => {
  const file = join(dir, 'dist', 'demo', 'net.k8s.yaml');
  writeFileSync(file, 'apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\nmetadata:\n  name: x\n  namespace: y\nspec:\n  trafficPolicy: Deny\n');
  const validator = fakeValidator([`FAIL ${file}#0: / must NOT have additional properties (metadata)`, 'validated 1 objects', '0 passed, 1 failed'], 1);
  const r = run({ VALIDATE_MANIFESTS: validator });
  expect(r.status).toBe(1);
  expect(r.stdout).toContain(`  FAIL ${file}#0: / must NOT have additional properties (metadata)`);
  expect(r.stdout).not.toContain('set aside');
});

test('throws when an OSM object has another root property rejected (not apiVersion, kind or metadata)', () => {
  const file = join(dir, 'dist', 'demo', 'egress.k8s.yaml');
  writeFileSync(file, EGRESS);
  const validator = fakeValidator([
    `FAIL ${file}#0: / must NOT have additional properties (kind)`,
    `FAIL ${file}#0: / must NOT have additional properties (extra)`,
    'validated 1 objects', '0 passed, 1 failed',
  ], 1);
  const r = run({ VALIDATE_MANIFESTS: validator });
  expect(r.status).toBe(1);
  expect(r.stdout).toContain('set aside (known validator defect, policy.openservicemesh.io Egress)');
  expect(r.stdout).toContain(`  FAIL ${file}#0: / must NOT have additional properties (extra)`);
});

test('throws when the validator\'s summary does not match the FAIL lines it printed', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'cm.k8s.yaml'), CONFIG_MAP);
  const r = run({ VALIDATE_MANIFESTS: fakeValidator(['validated 1 objects', '0 passed, 1 failed'], 1) });
  expect(r.status).toBe(1);
  expect(r.stdout).toContain('reports 1 failed objects but printed FAIL lines for 0');
});

test('throws when the validator itself breaks (exit code above 1)', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'cm.k8s.yaml'), CONFIG_MAP);
  const r = run({ VALIDATE_MANIFESTS: fakeValidator(['validate-manifests: npm install failed'], 2) });
  expect(r.status).toBe(1);
  expect(r.stdout).toContain('validator exited with 2');
});

test('throws when an example was not synthesised', () => {
  rmSync(join(dir, 'dist', 'demo'), { recursive: true });
  const r = run();
  expect(r.status).toBe(1);
  expect(r.stdout).toContain('is missing: run `npm run synth` first');
});
