// scripts/validate-examples.sh: validates each synthesised example with the project's validator,
// failing with messages that name object, field and rule; runs the independent second validator
// only when it exists, and fails when either fails.
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

const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: curl
spec:
  selector:
    app: api
  ports:
    - port: 80
      targetPort: http
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'validate-examples-'));
  mkdirSync(join(dir, 'examples', 'demo'), { recursive: true });
  writeFileSync(join(dir, 'examples', 'demo', 'main.ts'), '// placeholder\n');
  mkdirSync(join(dir, 'dist', 'demo'), { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the script; the second validator is absent unless `second` names one. */
function run(second?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', [SCRIPT], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      EXAMPLES_DIR: join(dir, 'examples'),
      DIST_DIR: join(dir, 'dist'),
      VALIDATE_MANIFESTS: second ?? join(dir, 'no-second-validator'),
    },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A stand-in for the independent second validator: prints `lines` and exits with `rc`. */
function secondValidator(lines: string[], rc: number): string {
  const file = join(dir, 'second-validator');
  writeFileSync(file, `#!/usr/bin/env bash\necho "checked $1"\ncat <<'EOF'\n${lines.join('\n')}\nEOF\nexit ${rc}\n`);
  chmodSync(file, 0o755);
  return file;
}

test('a valid OSM Egress and ConfigMap pass with the project\'s validator alone; nothing is set aside', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'egress.k8s.yaml'), `${EGRESS}---\n${CONFIG_MAP}`);
  const r = run();
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toContain(`== ${join(dir, 'dist', 'demo')}\n  2 passed, 0 failed`);
  expect(r.stdout).toMatch(/second check skipped: .*no-second-validator not found/);
  expect(r.stdout).not.toMatch(/FAIL|set aside/);
  expect(r.stdout).toContain('validate-examples: every example passed');
});

test('throws when an OSM object has an unknown field in spec: the message names object, field and rule', () => {
  const file = join(dir, 'dist', 'demo', 'egress.k8s.yaml');
  writeFileSync(file, `${CONFIG_MAP}---\n${EGRESS.replace('  hosts:', '  colour: blue\n  hosts:')}`);
  const r = run();
  expect(r.status).toBe(1);
  const fails = r.stdout.split('\n').filter((l) => l.includes('FAIL'));
  expect(fails).toEqual([`  FAIL Egress curl/httpbin (${file}#1) /spec/colour: unknown field "colour": the schema does not declare it (an API server would drop it) [unknown-field]`]);
  expect(r.stdout).toContain('1 passed, 1 failed');
  expect(r.stderr).toContain('validate-examples: FAILED');
});

test('throws when a built-in object breaks the Kubernetes schema', () => {
  const file = join(dir, 'dist', 'demo', 'cm.k8s.yaml');
  writeFileSync(file, CONFIG_MAP.replace('a: "1"', 'a: 1'));
  const r = run();
  expect(r.status).toBe(1);
  expect(r.stdout).toContain(`FAIL ConfigMap curl/settings (${file}#0) /data/a: must be string [type]`);
});

test('throws when a reference inside the example is broken: a Service that selects no pod', () => {
  const file = join(dir, 'dist', 'demo', 'svc.k8s.yaml');
  writeFileSync(file, SERVICE);
  const r = run();
  expect(r.status).toBe(1);
  expect(r.stdout).toContain(`FAIL Service curl/api (${file}#0) /spec/selector: selector {"app":"api"} matches the pods of no workload in namespace "curl" of this set [service-selector]`);
});

test('runs the second validator when it exists, on each example, and shows its output', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'cm.k8s.yaml'), CONFIG_MAP);
  const r = run(secondValidator(['1 passed, 0 failed'], 0));
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('==== second check: ');
  expect(r.stdout).toContain(`  checked ${join(dir, 'dist', 'demo')}\n  1 passed, 0 failed`);
});

test('throws when the second validator fails, though the project\'s validator passed', () => {
  writeFileSync(join(dir, 'dist', 'demo', 'cm.k8s.yaml'), CONFIG_MAP);
  const r = run(secondValidator(['FAIL cm.k8s.yaml#0: something it knows', '0 passed, 1 failed'], 1));
  expect(r.status).toBe(1);
  expect(r.stdout).toContain('  FAIL cm.k8s.yaml#0: something it knows');
  expect(r.stdout).toMatch(/second-validator exited with 1/);
  expect(r.stderr).toContain('validate-examples: FAILED');
});

test('throws when an example was not synthesised', () => {
  rmSync(join(dir, 'dist', 'demo'), { recursive: true });
  const r = run();
  expect(r.status).toBe(1);
  expect(r.stdout).toContain('is missing: run `npm run synth` first');
});
