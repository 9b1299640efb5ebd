import { ManifestProblem, ManifestValidationReport } from './manifest-validation-report';
import { ManifestValidator } from './manifest-validator';

/**
 * A resource the cdk8s CLI lists under a violation.
 */
export interface Cdk8sViolatingResource {
  /** `metadata.name` of the object; the CLI uses it to find the construct path. */
  readonly resourceName: string;
  /** One line per problem: object, field (JSON pointer), message and rule. */
  readonly locations: string[];
  /** The manifest file the object is in. */
  readonly manifestPath: string;
}

/**
 * A violation as the cdk8s CLI reports it: one rule, the resources breaking it.
 */
export interface Cdk8sValidationViolation {
  /** The rule, e.g. `cdk8s-egress/unknown-field`. */
  readonly ruleName: string;
  /** What the rule asks for. */
  readonly recommendation: string;
  /** How to fix a violation. */
  readonly fix: string;
  /** The objects breaking the rule. */
  readonly violatingResources: Cdk8sViolatingResource[];
}

/**
 * The report of a cdk8s CLI validation (the CLI's `context.report`).
 */
export interface ICdk8sValidationReport {
  /** Adds a violation to the report. */
  addViolation(violation: Cdk8sValidationViolation): void;
  /**
   * Completes the report.
   * @param status `success` or `failure`
   * @param metadata shown in the report's summary
   */
  submit(status: string, metadata?: { [key: string]: string }): void;
}

/**
 * What the cdk8s CLI hands a validation plugin (the CLI's `ValidationContext`), as far as this
 * plugin uses it.
 */
export interface ICdk8sValidationContext {
  /** Paths of the synthesised manifest files. */
  readonly manifests: string[];
  /** The report to fill and submit. */
  readonly report: ICdk8sValidationReport;
}

/**
 * Properties of `ManifestValidationPlugin`, given under `properties:` of its entry in `cdk8s.yaml`.
 */
export interface ManifestValidationPluginProps {
  /**
   * More CustomResourceDefinition files or folders (relative to the app's folder) to validate
   * custom resources against.
   * @default - only the CRDs bundled in cdk8s-egress
   */
  readonly crdPaths?: string[];

  /**
   * Accept objects of kinds that are neither built in nor defined by a known CRD, unvalidated.
   * @default false
   */
  readonly allowUnknownKinds?: boolean;

  /**
   * Check references between the app's objects (Service selectors, parentRefs, ConfigMap volumes, ...).
   * @default true
   */
  readonly checkReferences?: boolean;
}

/** What each rule asks and how to fix it, for the CLI's report. Unlisted rules get the fallback. */
const RULES: Record<string, { readonly recommendation: string; readonly fix: string }> = {
  'unknown-field': {
    recommendation: 'Every field must be declared by the schema of the object\'s kind; an API server drops (prunes) unknown fields of custom resources, and refuses them with strict field validation.',
    fix: 'Remove the field, or correct its spelling or position (see the JSON pointer).',
  },
  'required': { recommendation: 'Required fields must be set.', fix: 'Set the field named in the location.' },
  'enum': { recommendation: 'The field only takes the listed values.', fix: 'Use one of the values listed in the location.' },
  'type': { recommendation: 'The field must have the type its schema declares.', fix: 'Change the value to the type named in the location.' },
  'pattern': { recommendation: 'The value must match the pattern of its schema.', fix: 'Change the value to match the pattern in the location.' },
  'served-version': { recommendation: 'The apiVersion must be one the CRD serves.', fix: 'Use one of the served versions listed in the location.' },
  'unknown-kind': {
    recommendation: 'Every object must be a built-in kind or a kind whose CRD is known, so that it can be validated.',
    fix: 'Add the CRD with the plugin property crdPaths, or set allowUnknownKinds: true.',
  },
  'name-format': { recommendation: 'Names and namespaces must be valid DNS names, as the API server requires.', fix: 'Rename the object or its namespace.' },
  'duplicate-object': { recommendation: 'An object must be defined once; the second definition replaces the first when applied.', fix: 'Remove one of the definitions, or rename one.' },
  'service-selector': { recommendation: 'A Service must select the pods of a workload in the app.', fix: 'Correct the selector or the pod labels.' },
  'service-target-port': { recommendation: 'A named targetPort must name a container port of the selected pods.', fix: 'Correct the targetPort or name the container port.' },
  'hpa-target': { recommendation: 'An HorizontalPodAutoscaler must target a workload in the app.', fix: 'Correct scaleTargetRef.' },
  'pdb-selector': { recommendation: 'A PodDisruptionBudget must select the pods of a workload in the app.', fix: 'Correct the selector or the pod labels.' },
  'parent-ref': { recommendation: 'A route\'s parentRef to an EgressNetwork must name an EgressNetwork of the app.', fix: 'Add the EgressNetwork or correct the parentRef.' },
  'configmap-volume': { recommendation: 'A ConfigMap a pod mounts must be in the app, or the volume must be optional.', fix: 'Add the ConfigMap, correct its name, or mark the volume optional.' },
};
const FALLBACK = { recommendation: 'The object must satisfy the schema of its kind.', fix: 'Correct the field named in the location.' };

/**
 * A cdk8s CLI validation plugin: validates the synthesised manifests strictly against the CRD
 * schemas bundled in cdk8s-egress and the Kubernetes schemas, and checks the references between
 * them (see `ManifestValidator`). Each violation names the object, the field and the rule.
 *
 * In `cdk8s.yaml` (with cdk8s-egress installed in the app):
 *
 * ```yaml
 * validations:
 *   - package: ./node_modules/cdk8s-egress
 *     version: 1.2.3            # the installed version
 *     class: ManifestValidationPlugin
 *     properties:               # optional, see ManifestValidationPluginProps
 *       allowUnknownKinds: true
 * ```
 *
 * `cdk8s synth` then fails (exit status 2) when a problem is found.
 */
export class ManifestValidationPlugin {
  /** The problems of a report grouped as the cdk8s CLI reports them: by rule, then by object. */
  private static violations(report: ManifestValidationReport): Cdk8sValidationViolation[] {
    const byRule = new Map<string, Map<string, ManifestProblem[]>>();
    for (const p of report.problems) {
      const objects = byRule.get(p.rule) ?? new Map<string, ManifestProblem[]>();
      byRule.set(p.rule, objects);
      objects.set(p.source, [...(objects.get(p.source) ?? []), p]);
    }
    return [...byRule].map(([rule, objects]) => ({
      ruleName: `cdk8s-egress/${rule}`,
      ...(RULES[rule] ?? FALLBACK),
      violatingResources: [...objects].map(([source, problems]) => ({
        resourceName: problems[0].name ?? '(no name)',
        manifestPath: source.replace(/#[0-9.]+$/, ''),
        locations: problems.map((p) => ManifestValidationReport.formatProblem(p)),
      })),
    }));
  }

  private readonly props: ManifestValidationPluginProps;

  constructor(props: ManifestValidationPluginProps = {}) {
    this.props = props;
  }

  /**
   * Validates `context.manifests` as one set and fills `context.report`, one violation per rule.
   */
  public async validate(context: ICdk8sValidationContext): Promise<void> {
    const validator = new ManifestValidator(this.props);
    const report = validator.validateFiles([...context.manifests]);
    for (const violation of ManifestValidationPlugin.violations(report)) context.report.addViolation(violation);
    context.report.submit(report.valid ? 'success' : 'failure', {
      objects: String(report.objectCount),
      failed: String(report.failedObjectCount),
      problems: String(report.problems.length),
    });
  }
}
