// The gateway-side checks of caller props: a `clients` list into the config's ClientSpecs, and
// the gateway's caller identity props into the config's CallersSpec.
import { DEFAULT_TRUST_DOMAIN } from './caller-identity';
import { dnsNameProblem } from './dns';
import type { Problems } from './problems';
import { CallerIdentitySource, Client, UnknownCallerPolicy } from '../callers';
import type { CallersSpec, ClientSpec } from '../model/proxy-config';

/**
 * Checks a `clients` prop: a list of Client values, at least one, each once. Returns the specs,
 * or undefined when the prop is unset (open to every caller).
 */
export function clientsToSpec(problems: Problems, prop: string, clients: readonly Client[] | undefined): ClientSpec[] | undefined {
  if (clients === undefined) return undefined;
  if (!Array.isArray(clients)) {
    problems.add(prop, clients, 'is not a list of Client values', 'write e.g. clients: [Client.namespace("payments")]');
    return undefined;
  }
  if (clients.length === 0) {
    problems.add(prop, [], 'is empty, which would let nobody use it',
      'list the callers, e.g. [Client.namespace("payments")], or leave clients unset to allow every caller');
    return undefined;
  }
  const seen = new Set<string>();
  const out: ClientSpec[] = [];
  clients.forEach((c, i) => {
    if (!(c instanceof Client)) {
      problems.add(`${prop}[${i}]`, c, 'is not a Client', 'create it with Client.serviceAccount(), Client.namespace(), Client.linkerdIdentity() or Client.spiffe()');
    } else if (seen.has(c.key)) {
      problems.add(`${prop}[${i}]`, c.key, 'is listed twice', 'list each client once');
    } else {
      seen.add(c.key);
      out.push(c._toSpec());
    }
  });
  return out;
}

/** The caller identity props of EgressGateway. */
export interface CallerIdentityProps {
  readonly callerIdentity?: CallerIdentitySource;
  readonly unknownCallers?: UnknownCallerPolicy;
  readonly callerMetrics?: boolean;
  readonly trustDomain?: string;
  readonly linkerdInject?: boolean;
}

/**
 * Checks the gateway's caller identity props and returns the config's `callers`, or undefined
 * when `callerIdentity` is unset (the config then carries no `callers`: source None).
 */
export function callersToSpec(problems: Problems, props: CallerIdentityProps): CallersSpec | undefined {
  const source = props.callerIdentity;
  const sources = Object.values(CallerIdentitySource) as string[];
  const unknowns = Object.values(UnknownCallerPolicy) as string[];
  if (source !== undefined && !sources.includes(source)) {
    problems.add('callerIdentity', source, `is not one of ${sources.map((v) => JSON.stringify(v)).join(', ')}`, 'use a CallerIdentitySource member');
  }
  if (props.unknownCallers !== undefined && !unknowns.includes(props.unknownCallers)) {
    problems.add('unknownCallers', props.unknownCallers, `is not one of ${unknowns.map((v) => JSON.stringify(v)).join(', ')}`, 'use an UnknownCallerPolicy member');
  }
  const trustDomain = props.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  if (props.trustDomain !== undefined) {
    const p = dnsNameProblem(props.trustDomain);
    if (p) problems.add('trustDomain', props.trustDomain, `is not a trust domain: ${p.rule.replace(/^is /, '')}`, p.fix);
  }
  if (source === undefined || source === CallerIdentitySource.NONE) {
    const identifies = 'has no effect unless the gateway identifies its callers';
    const fix = 'set callerIdentity: CallerIdentitySource.LINKERD (or ISTIO), or remove it';
    if (props.unknownCallers !== undefined) problems.add('unknownCallers', props.unknownCallers, `${identifies}: with callerIdentity ${source ?? 'unset'} every caller is unknown`, fix);
    if (props.callerMetrics !== undefined) problems.add('callerMetrics', props.callerMetrics, `${identifies}: with callerIdentity ${source ?? 'unset'} every caller is "unknown"`, fix);
    if (props.trustDomain !== undefined) problems.add('trustDomain', props.trustDomain, `${identifies}: no identity is read with callerIdentity ${source ?? 'unset'}`, fix);
  }
  if (source === CallerIdentitySource.LINKERD && props.linkerdInject === false) {
    problems.add('callerIdentity', source, "needs the Linkerd sidecar, which sets l5d-client-id, but 'linkerdInject' is false",
      'remove linkerdInject: false, or choose the identity source of the mesh the gateway is in');
  }
  if (source === undefined) return undefined;
  return {
    source: source,
    trustDomain,
    unknown: props.unknownCallers ?? UnknownCallerPolicy.ALLOW_UNRESTRICTED,
    metricsLabel: props.callerMetrics ?? false,
  };
}

