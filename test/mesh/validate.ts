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
}

/** Validates a folder (or file) of YAML; reads the "N passed, N failed" summary line. */
export function validatePath(path: string): ValidationResult {
  const r = spawnSync(VALIDATOR, [path], { encoding: 'utf8', timeout: 120_000 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const m = /(\d+) passed, (\d+) failed/.exec(output);
  return { status: r.status, output, passed: m ? Number(m[1]) : -1, failed: m ? Number(m[2]) : -1 };
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
