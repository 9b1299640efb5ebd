// Test helper: writes manifests to a temporary folder and runs the shared strict validator on it.
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { stringify } from 'yaml';

export const VALIDATOR = '/work/shared/tools/validate-manifests';

export interface ValidationResult {
  readonly status: number | null;
  readonly output: string;
  readonly passed: number;
  readonly failed: number;
  /** FAIL lines other than the validator's known root-field defect (below). */
  readonly unexpected: string[];
}

/**
 * Known defect of the shared validator: the OSM and Istio CRDs declare only `spec` (and
 * `status`) at the root of their schema, and the validator closes every object schema, so it
 * rejects `apiVersion`, `kind` and `metadata` on every OSM and Istio object, which any API server
 * accepts. Those three messages are set apart; every other message (all of `spec`) still counts.
 */
const ROOT_TYPE_META = /: \/ must NOT have additional properties \((apiVersion|kind|metadata)\)$/;

/** Validates a folder (or file) of YAML; reads the "N passed, N failed" summary line. */
export function validatePath(path: string): ValidationResult {
  const r = spawnSync(VALIDATOR, [path], { encoding: 'utf8', timeout: 120_000 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const m = /(\d+) passed, (\d+) failed/.exec(output);
  const unexpected = output.split('\n').filter((l) => l.startsWith('FAIL') && !ROOT_TYPE_META.test(l));
  return { status: r.status, output, passed: m ? Number(m[1]) : -1, failed: m ? Number(m[2]) : -1, unexpected };
}

/** Validates plain objects as one multi-document YAML file. */
export function validateObjects(objects: readonly object[]): ValidationResult {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-validate-'));
  try {
    writeFileSync(join(dir, 'manifests.yaml'), objects.map((o) => stringify(o)).join('---\n'));
    return validatePath(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
