// Test helper for the examples: synthesise an example app into a temporary folder, read its
// objects back, and check the folder with the shared strict validator.
import { mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { readManifests } from '../e2e/helpers';
import { validatePath } from '../mesh/validate';

export interface SynthesisedExample {
  /** The temporary folder the app was synthesised into; the caller removes it. */
  readonly outdir: string;
  /** Every object of every YAML file in `outdir`, sorted by file name. */
  readonly objects: any[];
}

/** Synthesise the app `build` returns for a fresh temporary folder named `<prefix>XXXXXX`. */
export function synthToTmp(prefix: string, build: (outdir: string) => { synth(): void }): SynthesisedExample {
  const outdir = mkdtempSync(join(tmpdir(), prefix));
  build(outdir).synth();
  return { outdir, objects: readManifests(outdir) };
}

/** `outdir` passes validate-manifests with nothing failed: one pass per object, no FAIL line. */
export function expectValidManifests(outdir: string, objects: readonly unknown[]): void {
  const result = validatePath(outdir);
  expect(result.messages).toEqual([]);
  expect(result.failed).toBe(0);
  expect(result.passed).toBe(objects.length);
}
