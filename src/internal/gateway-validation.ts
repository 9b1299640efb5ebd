// EgressGateway's props as a table of rules (prop, when it is broken, the value, the rule, the
// fix), walked once after the props are read, so every problem is reported in one error; and the
// settings the construct builds from once they are known good.
import { callersToSpec } from './caller-props';
import { cidrReason, dnsNameProblem } from './dns';
import { durationMs } from './duration';
import { Problems } from './problems';
import { timeoutsToSpec } from './timeouts';
import { resolveWorkers } from './workers';
import {
  AmbiguousPathAction, ConfigReload, ConnectSniPolicy, EgressGatewayProps, GatewayDeployment, LogLevel,
} from '../egress-gateway-props';
import { GatewayAutoscaling } from '../gateway-autoscaling';
import { IDLE_RECLAIM_BOUNDS, IntRange, LIMIT_BOUNDS, TIMEOUT_BOUNDS } from '../model/bounds';
import { DEFAULT_EGRESS_SUFFIX, DEFAULT_IDLE_RECLAIM_MS, DEFAULT_LIMITS, DEFAULT_TIMEOUTS } from '../model/defaults';
import { dnsLabelProblem } from '../model/names';
import type { CallersSpec, TimeoutsSpec } from '../model/proxy-config';
import { TlsOrigination } from '../tls';
import { EnforcementMode, TrafficPolicy } from '../traffic-policy';

// Kubernetes must not SIGKILL a pod that is still draining; 10 s covers the Linkerd sidecar's own stop.
const TERMINATION_MARGIN_S = 10;
// Host ports a node-local proxy must not take: below 1024 (system services), the kubelet and
// kube-proxy (10248-10259), and the default NodePort range, where kube-proxy owns the ports.
const HOST_PORT_MIN = 1024;
const NODE_COMPONENT_PORTS = [10248, 10259];
const NODE_PORT_RANGE = [30000, 32767];
/** Linkerd 1's http_proxy port, suggested in errors. */
const SUGGESTED_HOST_PORT = 4140;
const DEFAULT_REPLICAS = 2;

/** What the gateway is built from, once its props are known good. */
export interface GatewaySettings {
  readonly name: string;
  readonly namespaceName: string;
  readonly serviceName: string;
  readonly clusterDomain: string;
  /** Every suffix the gateway accepts, the main one first. */
  readonly suffixes: string[];
  readonly nodeLocal: boolean;
  readonly replicas: number;
  /** The fewest pods the gateway runs with: what the disruption budget is measured against. */
  readonly minPods: number;
  /** The pods' terminationGracePeriodSeconds. */
  readonly terminationSeconds: number;
  /** Seconds the proxy may run after SIGTERM: drain delay plus shutdown grace, rounded up. */
  readonly drainSeconds: number;
  readonly timeouts: TimeoutsSpec;
  readonly allowedCidrs: string[];
  readonly clusterCidrs: string[];
  readonly defaultTls: TlsOrigination;
  readonly workers: number;
  /** Who is calling (callerIdentity and the props that go with it); undefined: no caller identity. */
  readonly callers?: CallersSpec;
  /** idleMemoryReclaim in ms; undefined: the proxy's default (EGRESS_IDLE_RECLAIM_MS unset). */
  readonly idleReclaimMs?: number;
}

/** The props with the values read from them, which the rules look at. */
interface Facts {
  readonly props: EgressGatewayProps;
  readonly name: string;
  readonly namespaceName: string;
  readonly serviceName: string;
  readonly clusterDomain: string;
  readonly suffix: string;
  readonly nodeLocal: boolean;
  readonly replicas: number;
  readonly minPods: number;
  /** drainDelay as given; `drainDelayMs` falls back to the default when this is out of bounds. */
  readonly drainDelayGivenMs: number;
  readonly drainDelayMs: number;
  readonly shutdownGraceMs: number;
  readonly terminationMs?: number;
  readonly clientKeepAliveMs?: number;
  readonly idleReclaimMs?: number;
}

type Text = string | ((f: Facts) => string);

/** One rule of the table. */
interface Rule {
  readonly prop: string;
  /** Whether the props break the rule. */
  readonly broken: (f: Facts) => boolean;
  /** The offending value, as quoted in the message. */
  readonly value: (f: Facts) => unknown;
  /** What is required, phrased to follow the quoted value. */
  readonly rule: Text;
  /** What to do instead. */
  readonly fix: Text;
}

/** Rules of which only the first broken one is reported (they are read as "else if"). */
interface FirstOf {
  readonly firstOf: readonly Rule[];
}

const text = (t: Text, f: Facts): string => (typeof t === 'string' ? t : t(f));

function dnsLabelRule(prop: 'name' | 'namespace' | 'serviceName', get: (f: Facts) => string): Rule {
  return {
    prop,
    broken: (f) => dnsLabelProblem(get(f)) !== undefined,
    value: get,
    rule: (f) => dnsLabelProblem(get(f))!.rule,
    fix: (f) => dnsLabelProblem(get(f))!.fix,
  };
}

function dnsNameRule(prop: string, get: (f: Facts) => string): Rule {
  return {
    prop,
    broken: (f) => dnsNameProblem(get(f)) !== undefined,
    value: get,
    rule: (f) => dnsNameProblem(get(f))!.rule,
    fix: (f) => dnsNameProblem(get(f))!.fix,
  };
}

function enumRule(prop: keyof EgressGatewayProps, e: Record<string, string>, name: string): Rule {
  const values = Object.values(e);
  const get = (f: Facts) => f.props[prop] as string | undefined;
  return {
    prop,
    broken: (f) => get(f) !== undefined && !values.includes(get(f)!),
    value: get,
    rule: `is not one of ${values.map((v) => JSON.stringify(v)).join(', ')}`,
    fix: `use a ${name} member`,
  };
}

/** A whole number inside a range shared with the proxy's config validation (src/model/bounds.ts). */
function rangeRule(prop: keyof EgressGatewayProps, range: IntRange, example: number): Rule {
  const get = (f: Facts) => f.props[prop] as number | undefined;
  return {
    prop,
    broken: (f) => get(f) !== undefined && (!Number.isInteger(get(f)) || get(f)! < range.min || get(f)! > range.max),
    value: get,
    rule: `must be a whole number from ${range.min} to ${range.max}`,
    fix: `use e.g. ${example}`,
  };
}

const isWhole = (n: number | undefined, min: number): boolean => Number.isInteger(n) && n! >= min;
const human = (f: Facts, prop: 'drainDelay' | 'terminationGracePeriod' | 'clientKeepAliveTimeout' | 'idleMemoryReclaim') => f.props[prop]!.toHumanString();
const NODE_LOCAL_ONLY_ONE = "cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL, which runs exactly one proxy per node";

/** The rules, in the order their problems are listed. */
const GATEWAY_RULES: readonly (Rule | FirstOf)[] = [
  dnsLabelRule('name', (f) => f.name),
  dnsLabelRule('namespace', (f) => f.namespaceName),
  dnsLabelRule('serviceName', (f) => f.serviceName),
  dnsNameRule('clusterDomain', (f) => f.clusterDomain),
  dnsNameRule('suffix', (f) => f.suffix),
  enumRule('deployment', GatewayDeployment, 'GatewayDeployment'),
  {
    firstOf: [{
      prop: 'replicas',
      broken: (f) => f.nodeLocal && f.props.replicas !== undefined,
      value: (f) => f.props.replicas,
      rule: NODE_LOCAL_ONLY_ONE,
      fix: 'remove replicas (choose the nodes with the DaemonSet\'s scheduling instead), or use GatewayDeployment.DEPLOYMENT',
    }, {
      prop: 'replicas',
      broken: (f) => !isWhole(f.replicas, 1),
      value: (f) => f.replicas,
      rule: 'must be a whole number of at least 1',
      fix: 'use 2 or more so a node failure or rollout never stops egress',
    }],
  },
  {
    firstOf: [{
      prop: 'autoscaling',
      broken: (f) => f.props.autoscaling !== undefined && f.nodeLocal,
      value: (f) => f.props.autoscaling,
      rule: NODE_LOCAL_ONLY_ONE,
      fix: 'remove autoscaling, or use GatewayDeployment.DEPLOYMENT',
    }, {
      prop: 'replicas',
      broken: (f) => f.props.autoscaling !== undefined && f.props.replicas !== undefined,
      value: (f) => f.props.replicas,
      rule: "cannot be set with 'autoscaling', which decides the number of pods (a fixed replicas would reset the autoscaler at every apply)",
      fix: (f) => `remove replicas and set autoscaling.minReplicas: ${f.props.replicas}`,
    }],
  },
  {
    prop: 'resources',
    broken: (f) => f.props.autoscaling !== undefined && f.props.resources !== undefined && !f.props.resources.cpu?.request,
    value: () => 'no cpu.request',
    rule: "must request CPU when 'autoscaling' scales on CPU utilization (a percentage of the request)",
    fix: 'add cpu: { request: Cpu.millis(100) } to resources',
  },
  {
    firstOf: [{
      prop: 'minAvailable',
      broken: (f) => f.props.minAvailable !== undefined && f.nodeLocal,
      value: (f) => f.props.minAvailable,
      rule: "cannot be set with 'deployment' GatewayDeployment.NODE_LOCAL: a node-local pod serves only its own node, so it has no disruption budget",
      fix: 'remove minAvailable',
    }, {
      prop: 'minAvailable',
      broken: (f) => f.props.minAvailable !== undefined && !isWhole(f.props.minAvailable, 1),
      value: (f) => f.props.minAvailable,
      rule: 'must be a whole number of at least 1',
      fix: 'leave it unset for maxUnavailable 1',
    }, {
      prop: 'minAvailable',
      broken: (f) => f.props.minAvailable !== undefined && f.props.minAvailable >= f.minPods,
      value: (f) => f.props.minAvailable,
      rule: (f) => {
        const of = f.props.autoscaling !== undefined ? `'autoscaling.minReplicas' (${f.minPods})` : `'replicas' (${f.minPods})`;
        return `must be below ${of}: with ${f.props.minAvailable} of ${f.minPods} pods required, no pod may ever be evicted and every node drain blocks`;
      },
      fix: (f) => `use at most ${Math.max(1, f.minPods - 1)}, or raise ${f.props.autoscaling !== undefined ? 'autoscaling.minReplicas' : 'replicas'} to ${f.props.minAvailable! + 1}`,
    }],
  },
  {
    firstOf: [{
      prop: 'hostPort',
      broken: (f) => f.props.hostPort !== undefined && !f.nodeLocal,
      value: (f) => f.props.hostPort,
      rule: "needs 'deployment' GatewayDeployment.NODE_LOCAL: a host port only means \"the proxy on my node\" when every node runs one",
      fix: 'set deployment: GatewayDeployment.NODE_LOCAL, or remove hostPort and let clients use the Service',
    }, {
      prop: 'hostPort',
      broken: (f) => f.props.hostPort !== undefined && (!isWhole(f.props.hostPort, HOST_PORT_MIN) || f.props.hostPort > 65535),
      value: (f) => f.props.hostPort,
      rule: `must be a whole number from ${HOST_PORT_MIN} to 65535 (lower ports belong to the node's system services)`,
      fix: `use e.g. ${SUGGESTED_HOST_PORT}`,
    }, {
      prop: 'hostPort',
      broken: (f) => f.props.hostPort !== undefined && f.props.hostPort >= NODE_COMPONENT_PORTS[0] && f.props.hostPort <= NODE_COMPONENT_PORTS[1],
      value: (f) => f.props.hostPort,
      rule: `is in ${NODE_COMPONENT_PORTS.join('-')}, where the kubelet and kube-proxy listen on every node`,
      fix: `use e.g. ${SUGGESTED_HOST_PORT}`,
    }, {
      prop: 'hostPort',
      broken: (f) => f.props.hostPort !== undefined && f.props.hostPort >= NODE_PORT_RANGE[0] && f.props.hostPort <= NODE_PORT_RANGE[1],
      value: (f) => f.props.hostPort,
      rule: `is in the NodePort range ${NODE_PORT_RANGE.join('-')}, where kube-proxy may bind it for any Service`,
      fix: `use e.g. ${SUGGESTED_HOST_PORT}`,
    }],
  },
  {
    prop: 'forwardProxy',
    broken: (f) => f.props.hostPort !== undefined && f.props.forwardProxy === false,
    value: () => false,
    rule: (f) => `cannot be combined with 'hostPort' ${f.props.hostPort}: clients of a host port reach the proxy only through http_proxy, which needs the forward proxy`,
    fix: 'leave forwardProxy unset (on for node-local gateways), or remove hostPort',
  },
  enumRule('trafficPolicy', TrafficPolicy, 'TrafficPolicy'),
  enumRule('enforcement', EnforcementMode, 'EnforcementMode'),
  enumRule('configReload', ConfigReload, 'ConfigReload'),
  enumRule('logLevel', LogLevel, 'LogLevel'),
  enumRule('ambiguousPaths', AmbiguousPathAction, 'AmbiguousPathAction'),
  enumRule('connectSni', ConnectSniPolicy, 'ConnectSniPolicy'),
  {
    prop: 'drainDelay',
    broken: (f) => f.drainDelayGivenMs > TIMEOUT_BOUNDS.drainDelayMs.max,
    value: (f) => human(f, 'drainDelay'),
    rule: `must be at most ${TIMEOUT_BOUNDS.drainDelayMs.max / 1000} s: endpoint removal does not take longer`,
    fix: `use e.g. Duration.seconds(${DEFAULT_TIMEOUTS.drainDelayMs / 1000}), or Duration.seconds(0) to stop listening at once`,
  },
  {
    prop: 'terminationGracePeriod',
    broken: (f) => f.terminationMs !== undefined
      && (!Number.isInteger(f.terminationMs / 1000) || f.terminationMs <= f.drainDelayMs + f.shutdownGraceMs),
    value: (f) => human(f, 'terminationGracePeriod'),
    rule: (f) => `must be whole seconds and longer than 'drainDelay' plus 'shutdownGrace' (${f.drainDelayMs / 1000} s + ${f.shutdownGraceMs / 1000} s), or Kubernetes kills the proxy while it drains`,
    fix: (f) => `use at least Duration.seconds(${Math.floor((f.drainDelayMs + f.shutdownGraceMs) / 1000) + 1}), or leave it unset for drainDelay + shutdownGrace + ${TERMINATION_MARGIN_S} s`,
  },
  {
    prop: 'defaultTls',
    broken: (f) => f.props.defaultTls !== undefined && !f.props.defaultTls.enabled,
    value: () => 'TlsOrigination.disabled()',
    rule: 'would send every undeclared host plaintext over the internet',
    fix: 'keep TLS on here and declare the plaintext upstreams as ExternalServices with tls: TlsOrigination.disabled()',
  },
  {
    prop: 'maxConcurrentRequests',
    broken: (f) => f.props.maxConcurrentRequests !== undefined && !isWhole(f.props.maxConcurrentRequests, 1),
    value: (f) => f.props.maxConcurrentRequests,
    rule: 'must be a whole number of at least 1',
    fix: `use e.g. ${DEFAULT_LIMITS.maxConcurrent}`,
  },
  rangeRule('maxHeaderBytes', LIMIT_BOUNDS.maxHeaderBytes, DEFAULT_LIMITS.maxHeaderBytes),
  rangeRule('maxClientConnections', LIMIT_BOUNDS.maxClientConnections, DEFAULT_LIMITS.maxClientConnections),
  {
    prop: 'clientKeepAliveTimeout',
    broken: (f) => f.clientKeepAliveMs !== undefined && !inRange(f.clientKeepAliveMs, TIMEOUT_BOUNDS.clientKeepAliveMs),
    value: (f) => human(f, 'clientKeepAliveTimeout'),
    rule: `must be from ${TIMEOUT_BOUNDS.clientKeepAliveMs.min} ms to ${TIMEOUT_BOUNDS.clientKeepAliveMs.max / 1000} s`,
    fix: `use e.g. Duration.seconds(${DEFAULT_TIMEOUTS.clientKeepAliveMs / 1000})`,
  },
  {
    prop: 'idleMemoryReclaim',
    broken: (f) => f.idleReclaimMs !== undefined && !inRange(f.idleReclaimMs, IDLE_RECLAIM_BOUNDS),
    value: (f) => human(f, 'idleMemoryReclaim'),
    rule: `must be zero (off) or up to ${IDLE_RECLAIM_BOUNDS.max / 60_000} minutes`,
    fix: `use e.g. Duration.minutes(${DEFAULT_IDLE_RECLAIM_MS / 60_000}), or Duration.seconds(0) to turn it off`,
  },
];

function inRange(v: number, range: { readonly min: number; readonly max: number }): boolean {
  return v >= range.min && v <= range.max;
}

/** Walks the table, adding a problem per broken rule (the first broken one of a FirstOf). */
function applyRules(rules: readonly (Rule | FirstOf)[], f: Facts, problems: Problems): void {
  for (const entry of rules) {
    const broken = 'firstOf' in entry ? entry.firstOf.find((r) => r.broken(f)) : entry.broken(f) ? entry : undefined;
    if (broken) problems.add(broken.prop, broken.value(f), text(broken.rule, f), text(broken.fix, f));
  }
}

/** Each CIDR of a list prop that parses; a problem for each one that does not. */
function readCidrs(problems: Problems, prop: string, cidrs: string[] | undefined): string[] {
  const out: string[] = [];
  (cidrs ?? []).forEach((c, i) => {
    const reason = cidrReason(c);
    if (reason) problems.add(`${prop}[${i}]`, c, `is not a CIDR: ${reason}`, 'write it as "10.20.0.0/16" or "fd00::/8"');
    else out.push(c);
  });
  return out;
}

/**
 * Reads and checks EgressGateway's props: the values that need reading first (durations,
 * suffixes, CIDRs, autoscaling options, timeouts, workers) report what cannot be read, then the
 * rule table runs over them. Throws one error with every problem; returns the settings.
 */
export function resolveGatewaySettings(subject: string, props: EgressGatewayProps): GatewaySettings {
  const problems = new Problems(subject);
  const nodeLocal = props.deployment === GatewayDeployment.NODE_LOCAL;
  const replicas = props.replicas ?? DEFAULT_REPLICAS;

  const suffix = props.suffix ?? DEFAULT_EGRESS_SUFFIX;
  const suffixes = [suffix];
  (props.additionalSuffixes ?? []).forEach((s, i) => {
    const p = dnsNameProblem(s);
    if (p) problems.add(`additionalSuffixes[${i}]`, s, p.rule, p.fix);
    else if (suffixes.includes(s)) problems.add(`additionalSuffixes[${i}]`, s, 'is already accepted', 'list each suffix once and leave the main one out');
    else suffixes.push(s);
  });
  // The autoscaler's own checks run when it can be created at all (the table reports why not).
  const autoscaled = props.autoscaling !== undefined && !nodeLocal && props.replicas === undefined;
  const minPods = autoscaled ? GatewayAutoscaling._checkOptions(problems, 'autoscaling.', props.autoscaling!)[0] : replicas;

  const shutdownGraceMs = durationMs(problems, 'shutdownGrace', props.shutdownGrace) ?? DEFAULT_TIMEOUTS.shutdownGraceMs;
  const drainDelayGivenMs = durationMs(problems, 'drainDelay', props.drainDelay) ?? DEFAULT_TIMEOUTS.drainDelayMs;
  const drainDelayMs = drainDelayGivenMs > TIMEOUT_BOUNDS.drainDelayMs.max ? DEFAULT_TIMEOUTS.drainDelayMs : drainDelayGivenMs;
  const terminationMs = durationMs(problems, 'terminationGracePeriod', props.terminationGracePeriod);
  const timeouts = timeoutsToSpec(problems, 'timeouts', props.timeouts ?? {});
  const clientKeepAliveMs = durationMs(problems, 'clientKeepAliveTimeout', props.clientKeepAliveTimeout);
  const idleReclaimMs = durationMs(problems, 'idleMemoryReclaim', props.idleMemoryReclaim);
  const allowedCidrs = readCidrs(problems, 'allowedCidrs', props.allowedCidrs);
  const clusterCidrs = readCidrs(problems, 'clusterCidrs', props.clusterCidrs);
  const workers = resolveWorkers(problems, props.workers, props.resources);
  const callers = callersToSpec(problems, props);

  const facts: Facts = {
    props,
    name: props.name ?? 'egress-gateway',
    namespaceName: props.namespace ?? 'egress',
    serviceName: props.serviceName ?? 'proxy',
    clusterDomain: props.clusterDomain ?? 'cluster.local',
    suffix,
    nodeLocal,
    replicas,
    minPods,
    drainDelayGivenMs,
    drainDelayMs,
    shutdownGraceMs,
    terminationMs,
    clientKeepAliveMs,
    idleReclaimMs,
  };
  applyRules(GATEWAY_RULES, facts, problems);
  problems.throwIfAny();

  // The proxy runs for at most the delay plus the grace after SIGTERM.
  const drainMs = drainDelayMs + shutdownGraceMs;
  const keepAlive = clientKeepAliveMs !== undefined ? { clientKeepAliveMs } : {};
  return {
    name: facts.name,
    namespaceName: facts.namespaceName,
    serviceName: facts.serviceName,
    clusterDomain: facts.clusterDomain,
    suffixes,
    nodeLocal,
    replicas,
    minPods,
    terminationSeconds: terminationMs !== undefined ? terminationMs / 1000 : Math.ceil(drainMs / 1000) + TERMINATION_MARGIN_S,
    drainSeconds: Math.ceil(drainMs / 1000),
    timeouts: { ...DEFAULT_TIMEOUTS, ...timeouts, shutdownGraceMs, drainDelayMs, ...keepAlive },
    allowedCidrs,
    clusterCidrs,
    defaultTls: props.defaultTls ?? TlsOrigination.originate(),
    workers,
    callers,
    idleReclaimMs,
  };
}
