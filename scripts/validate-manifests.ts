// Validates synthesised manifests with the project's own validator (src/validation/): each
// argument (a folder or file of YAML/JSON) is one set, validated on its own, since each example
// is its own app. Prints every problem and "N passed, N failed" per set.
// Usage: ts-node scripts/validate-manifests.ts [--allow-unknown-kinds] PATH...
// Exit status: 0 when every set passed, 1 when a problem was found, 2 on a usage error.
import { ManifestValidator } from '../src/validation/manifest-validator';

function main(args: readonly string[]): number {
  const paths = args.filter((a) => !a.startsWith('--'));
  const unknownFlags = args.filter((a) => a.startsWith('--') && a !== '--allow-unknown-kinds');
  if (paths.length === 0 || unknownFlags.length > 0) {
    console.error('usage: validate-manifests [--allow-unknown-kinds] PATH...  (each PATH is validated as one set)');
    return 2;
  }
  const validator = new ManifestValidator({ allowUnknownKinds: args.includes('--allow-unknown-kinds') });
  let failed = 0;
  for (const p of paths) {
    const report = validator.validateFiles([p]);
    console.log(`== ${p}`);
    console.log(report.toString().split('\n').map((l) => `  ${l}`).join('\n'));
    if (!report.valid) failed++;
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
