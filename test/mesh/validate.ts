// Test helper: validates synthesised objects or folders with the project's own validator
// (src/validation/), strictly against the bundled CRDs and the Kubernetes schemas.
import { stringify } from 'yaml';
import { ManifestValidationReport } from '../../src/validation/manifest-validation-report';
import { ManifestValidator } from '../../src/validation/manifest-validator';

export interface ValidationResult {
  readonly report: ManifestValidationReport;
  /** The report as the command line prints it: FAIL lines and "N passed, N failed". */
  readonly output: string;
  readonly passed: number;
  readonly failed: number;
  /** Every problem, one line each, naming object, field and rule. */
  readonly messages: string[];
}

const validator = new ManifestValidator();

function result(report: ManifestValidationReport): ValidationResult {
  return {
    report,
    output: report.toString(),
    passed: report.objectCount - report.failedObjectCount,
    failed: report.failedObjectCount,
    messages: report.messages,
  };
}

/** Validates a folder (or file) of YAML as one set. */
export function validatePath(path: string): ValidationResult {
  return result(validator.validateFiles([path]));
}

/** Validates plain objects as one set (one multi-document YAML text). */
export function validateObjects(objects: readonly object[]): ValidationResult {
  return result(validator.validateYaml(objects.map((o) => stringify(o)).join('---\n'), 'objects.yaml'));
}
