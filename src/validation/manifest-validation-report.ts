/**
 * One problem found in a set of Kubernetes objects: which object, which field, which rule.
 */
export interface ManifestProblem {
  /**
   * Where the object was read: `<file>#<document>` for files (documents numbered from 0,
   * `#<document>.<item>` inside a `List`), `chart:<chart path>#<index>` for a chart validated in memory.
   */
  readonly source: string;

  /**
   * The object's `apiVersion`.
   * @default - the object has none
   */
  readonly apiVersion?: string;

  /**
   * The object's `kind`.
   * @default - the object has none
   */
  readonly kind?: string;

  /**
   * The object's `metadata.namespace`.
   * @default - the object has none (cluster-scoped, or left to the namespace it is applied to)
   */
  readonly namespace?: string;

  /**
   * The object's `metadata.name`.
   * @default - the object has none
   */
  readonly name?: string;

  /**
   * The field, as a JSON pointer into the object (RFC 6901), e.g. `/spec/rules/0/backendRefs`;
   * `/` for the object as a whole.
   */
  readonly field: string;

  /**
   * The rule broken, a stable identifier: a JSON Schema keyword for schema problems
   * (`unknown-field`, `required`, `enum`, `type`, `pattern`, ...) or a reference check
   * (`duplicate-object`, `service-selector`, `parent-ref`, ...).
   */
  readonly rule: string;

  /** What is wrong, in words. */
  readonly message: string;
}

/**
 * The result of validating a set of Kubernetes objects with `ManifestValidator`.
 *
 * @example
 * const report = new ManifestValidator().validateApp(app);
 * report.assertValid(); // throws, listing every problem, when there is any
 */
export class ManifestValidationReport {
  /**
   * One line naming the object, the field and the rule, e.g.
   * `EgressNetwork egress/default (dist/app.k8s.yaml#3) /spec/trafficPolicy: must be one of "Allow", "Deny" [enum]`.
   */
  public static formatProblem(problem: ManifestProblem): string {
    const ns = problem.namespace !== undefined ? `${problem.namespace}/` : '';
    const object = problem.kind !== undefined ? `${problem.kind} ${ns}${problem.name ?? '(no name)'}` : '(object without kind)';
    return `${object} (${problem.source}) ${problem.field}: ${problem.message} [${problem.rule}]`;
  }

  /** Every problem found, in the order of the objects. */
  public readonly problems: ManifestProblem[];

  /** How many objects were validated. */
  public readonly objectCount: number;

  /** How many objects have at least one problem. */
  public readonly failedObjectCount: number;

  /**
   * @param objectCount how many objects were validated
   * @param problems every problem found
   */
  constructor(objectCount: number, problems: ManifestProblem[]) {
    this.objectCount = objectCount;
    this.problems = [...problems];
    this.failedObjectCount = new Set(problems.map((p) => p.source)).size;
  }

  /** True when no problem was found. */
  public get valid(): boolean {
    return this.problems.length === 0;
  }

  /** Every problem as one line (see `formatProblem`). */
  public get messages(): string[] {
    return this.problems.map((p) => ManifestValidationReport.formatProblem(p));
  }

  /**
   * Throws an Error listing every problem, or does nothing when there is none.
   */
  public assertValid(): void {
    if (this.valid) return;
    throw new Error(`${this.problems.length} problem(s) in ${this.failedObjectCount} of ${this.objectCount} Kubernetes objects:\n${this.messages.map((m) => `  - ${m}`).join('\n')}`);
  }

  /** The problems, one per line, and a summary line `N passed, N failed` (objects). */
  public toString(): string {
    return [...this.messages.map((m) => `FAIL ${m}`), `${this.objectCount - this.failedObjectCount} passed, ${this.failedObjectCount} failed`].join('\n');
  }
}
