// Cross-references inside one set of objects (one app): what an API server cannot see but a
// broken deployment shows at run time — a Service that selects no pod, a route whose parent is missing.

/** A parsed object and where it came from. */
export interface SourcedObject {
  readonly object: KubeObject;
  /** `file#doc` or `file#doc.item` (items of a List), numbered from 0. */
  readonly source: string;
}

/** The fields of an object the checks read; everything else is opaque. */
export interface KubeObject {
  readonly apiVersion?: unknown;
  readonly kind?: unknown;
  readonly metadata?: { readonly name?: unknown; readonly namespace?: unknown; readonly [k: string]: unknown };
  readonly spec?: any;
  readonly [k: string]: unknown;
}

/** A problem found by a reference check, on the object at `at` (index in the set). */
export interface ReferenceFinding {
  readonly at: number;
  readonly field: string;
  readonly rule: string;
  readonly message: string;
}

const WORKLOAD_KINDS = new Set(['Deployment', 'DaemonSet', 'StatefulSet', 'ReplicaSet', 'Job']);

/** The API group of an apiVersion (`''` for the core group). */
export function groupOf(apiVersion: unknown): string {
  if (typeof apiVersion !== 'string') return '';
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

function nameOf(o: KubeObject): string | undefined {
  return typeof o.metadata?.name === 'string' ? o.metadata.name : undefined;
}

function namespaceOf(o: KubeObject): string {
  return typeof o.metadata?.namespace === 'string' ? o.metadata.namespace : '';
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function selects(selector: Record<string, unknown>, labels: unknown): boolean {
  const l = isRecord(labels) ? labels : {};
  return Object.entries(selector).every(([k, v]) => l[k] === v);
}

/** The pod template spec of a workload, or a Pod's spec, with its JSON pointer. */
function podSpecOf(o: KubeObject): { spec: Record<string, unknown>; pointer: string } | undefined {
  const spec: any = o.spec;
  if (!isRecord(spec)) return undefined;
  if (o.kind === 'Pod') return { spec, pointer: '/spec' };
  const s: unknown = o.kind === 'CronJob' ? (o.spec as any).jobTemplate?.spec?.template?.spec : (o.spec as any).template?.spec;
  if (!isRecord(s)) return undefined;
  return { spec: s, pointer: o.kind === 'CronJob' ? '/spec/jobTemplate/spec/template/spec' : '/spec/template/spec' };
}

function label(o: KubeObject): string {
  const ns = namespaceOf(o);
  return `${String(o.kind)} ${ns === '' ? '' : `${ns}/`}${nameOf(o) ?? '(no name)'}`;
}

/**
 * Checks the references between objects of one set:
 * - no two objects share group, kind, namespace and name (the second would replace the first);
 * - a Service's selector matches the pod template of a workload in its namespace, and each named
 *   targetPort names a container port of those pods;
 * - an HorizontalPodAutoscaler's scaleTargetRef and a PodDisruptionBudget's selector find a workload;
 * - a route's parentRefs to a Linkerd EgressNetwork find that EgressNetwork;
 * - a pod's ConfigMap volumes (not optional) find the ConfigMap in its namespace.
 */
export function checkReferences(objects: readonly SourcedObject[]): ReferenceFinding[] {
  const findings: ReferenceFinding[] = [];
  const add = (at: number, field: string, rule: string, message: string) => findings.push({ at, field, rule, message });
  const all = objects.map((x) => x.object);

  const seen = new Map<string, number>();
  all.forEach((o, i) => {
    const name = nameOf(o);
    if (name === undefined || typeof o.kind !== 'string') return;
    const key = `${groupOf(o.apiVersion)}/${o.kind}/${namespaceOf(o)}/${name}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else add(i, '/metadata/name', 'duplicate-object', `${label(o)} is defined twice (also at ${objects[first].source}); the second replaces the first when applied`);
  });

  const workloads = all.filter((o) => typeof o.kind === 'string' && WORKLOAD_KINDS.has(o.kind));
  const podLabels = (w: KubeObject): unknown => w.spec?.template?.metadata?.labels;

  all.forEach((o, i) => {
    const ns = namespaceOf(o);
    const spec = isRecord(o.spec) ? o.spec : {};

    if (o.kind === 'Service' && isRecord(spec.selector) && Object.keys(spec.selector).length > 0) {
      const selector = spec.selector;
      const targets = workloads.filter((w) => namespaceOf(w) === ns && selects(selector, podLabels(w)));
      if (targets.length === 0) {
        add(i, '/spec/selector', 'service-selector', `selector ${JSON.stringify(selector)} matches the pods of no workload in namespace "${ns}" of this set`);
      } else if (Array.isArray(spec.ports)) {
        spec.ports.forEach((p: unknown, j: number) => {
          if (!isRecord(p) || typeof p.targetPort !== 'string') return;
          const named = targets.some((w) => {
            const containers = podSpecOf(w)?.spec.containers;
            if (!Array.isArray(containers)) return false;
            return containers.some((c) => Array.isArray(c?.ports) && c.ports.some((cp: unknown) => isRecord(cp) && cp.name === p.targetPort));
          });
          if (!named) add(i, `/spec/ports/${j}/targetPort`, 'service-target-port', `targetPort "${p.targetPort}" names no container port of the selected pods`);
        });
      }
    }

    if (o.kind === 'HorizontalPodAutoscaler' && isRecord(spec.scaleTargetRef)) {
      const t = spec.scaleTargetRef;
      if (!all.some((y) => y.kind === t.kind && nameOf(y) === t.name && namespaceOf(y) === ns)) {
        add(i, '/spec/scaleTargetRef', 'hpa-target', `scaleTargetRef ${String(t.kind)}/${String(t.name)} is not in this set (namespace "${ns}")`);
      }
    }

    if (o.kind === 'PodDisruptionBudget' && isRecord(spec.selector) && isRecord(spec.selector.matchLabels) && Object.keys(spec.selector.matchLabels).length > 0) {
      const sel = spec.selector.matchLabels;
      if (!workloads.some((w) => namespaceOf(w) === ns && selects(sel, podLabels(w)))) {
        add(i, '/spec/selector/matchLabels', 'pdb-selector', `selector ${JSON.stringify(sel)} matches the pods of no workload in namespace "${ns}" of this set`);
      }
    }

    if (Array.isArray(spec.parentRefs)) {
      spec.parentRefs.forEach((ref: unknown, j: number) => {
        if (!isRecord(ref) || ref.kind !== 'EgressNetwork') return;
        const pns = typeof ref.namespace === 'string' ? ref.namespace : ns;
        const found = all.some((y) => y.kind === 'EgressNetwork' && groupOf(y.apiVersion) === 'policy.linkerd.io' && nameOf(y) === ref.name && namespaceOf(y) === pns);
        if (!found) add(i, `/spec/parentRefs/${j}`, 'parent-ref', `parentRef EgressNetwork "${pns}/${String(ref.name)}" is not in this set`);
      });
    }

    const pod = podSpecOf(o);
    if (pod !== undefined && Array.isArray(pod.spec.volumes)) {
      pod.spec.volumes.forEach((v: unknown, j: number) => {
        if (!isRecord(v) || !isRecord(v.configMap) || v.configMap.optional === true) return;
        const cm = v.configMap.name;
        if (!all.some((y) => y.kind === 'ConfigMap' && groupOf(y.apiVersion) === '' && nameOf(y) === cm && namespaceOf(y) === ns)) {
          add(i, `${pod.pointer}/volumes/${j}/configMap/name`, 'configmap-volume', `volume "${String(v.name)}" mounts ConfigMap "${String(cm)}", which is not in this set (namespace "${ns}")`);
        }
      });
    }
  });
  return findings;
}
