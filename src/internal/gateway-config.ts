// The egress gateway's proxy config: the document it renders from what the gateway serves, and
// the ConfigMaps that carry it (one, or a main one and shards when it outgrows one ConfigMap).
import { ApiObjectMetadata, Lazy } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { ConfigFile, shardFileName, splitConfig, SplitResult } from './config-files';
import { Problems } from './problems';
import type { EgressGatewayProps } from '../egress-gateway-props';
import type { ExternalService } from '../external-service';
import { DEFAULT_AMBIGUOUS_PATHS, DEFAULT_CONNECT_SNI, DEFAULT_LIMITS } from '../model/defaults';
import {
  PROXY_CONFIG_API_VERSION, PROXY_CONFIG_FILE, PROXY_CONFIG_KIND,
  CallersSpec, ParentSpec, ProxyConfig, TcpListenerSpec, TimeoutsSpec,
} from '../model/proxy-config';
import type { IRouteParent } from '../route-parent';
import type { TlsOrigination } from '../tls';
import { EnforcementMode, TrafficPolicy } from '../traffic-policy';

/** What the proxy config is rendered from: the gateway's props and its state at synth time. */
export interface GatewayConfigInput {
  readonly props: EgressGatewayProps;
  readonly name: string;
  readonly namespaceName: string;
  readonly suffixes: readonly string[];
  readonly forwardProxy: boolean;
  readonly httpPort: number;
  readonly servicePort: number;
  readonly tlsPort?: number;
  readonly tlsServicePort?: number;
  readonly adminPort: number;
  readonly tcpListeners: readonly TcpListenerSpec[];
  readonly parent?: IRouteParent;
  readonly services: readonly ExternalService[];
  readonly allowedCidrs: readonly string[];
  readonly clusterCidrs: readonly string[];
  readonly timeouts: TimeoutsSpec;
  readonly workers: number;
  readonly defaultTls: TlsOrigination;
  /** Who is calling and what unknown callers may use; undefined: no caller identity. */
  readonly callers?: CallersSpec;
}

/** The complete proxy config, as the ConfigMap carries it. */
export function renderProxyConfig(g: GatewayConfigInput): ProxyConfig {
  const props = g.props;
  const parent: ParentSpec = g.parent
    ? { ...g.parent._renderParent(), ...(props.enforcement ? { mode: props.enforcement } : {}) }
    : {
      group: 'policy.linkerd.io',
      kind: 'EgressNetwork',
      name: g.name,
      namespace: g.namespaceName,
      trafficPolicy: props.trafficPolicy ?? TrafficPolicy.ALLOW,
      networks: [],
      mode: props.enforcement ?? EnforcementMode.ENFORCE,
      // Deny on a gateway without a network means: only the services declared on it.
      allowDeclaredServices: true,
    };
  return {
    apiVersion: PROXY_CONFIG_API_VERSION,
    kind: PROXY_CONFIG_KIND,
    gateway: { name: g.name, namespace: g.namespaceName },
    listeners: {
      bindAddress: '0.0.0.0',
      http: {
        port: g.httpPort,
        suffixes: [...g.suffixes],
        forwardProxy: g.forwardProxy,
        parentPort: g.servicePort,
        ambiguousPaths: props.ambiguousPaths ?? DEFAULT_AMBIGUOUS_PATHS,
        connectSni: props.connectSni ?? DEFAULT_CONNECT_SNI,
      },
      tls: g.tlsPort && g.tlsServicePort ? { port: g.tlsPort, parentPort: g.tlsServicePort } : undefined,
      tcp: g.tcpListeners.map((l) => ({ ...l })),
      admin: { port: g.adminPort },
    },
    parent,
    externalServices: g.services.map((s) => s._toSpec()),
    routes: g.parent ? g.parent._renderRoutes() : [],
    addressPolicy: { allowCidrs: [...g.allowedCidrs], denyCidrs: [...g.clusterCidrs] },
    timeouts: { ...g.timeouts },
    limits: {
      maxConcurrent: props.maxConcurrentRequests ?? DEFAULT_LIMITS.maxConcurrent,
      maxHeaderBytes: props.maxHeaderBytes ?? DEFAULT_LIMITS.maxHeaderBytes,
      maxClientConnections: props.maxClientConnections ?? DEFAULT_LIMITS.maxClientConnections,
    },
    workers: g.workers,
    defaultTls: g.defaultTls._toSpec(),
    ...(g.callers ? { callers: { ...g.callers } } : {}),
  };
}

/** What the ConfigMaps need of their gateway. */
export interface GatewayConfigSource {
  /** The gateway, parent of the ConfigMaps, and its name in messages. */
  readonly scope: Construct;
  /** `<scope> "<path>"`, how the gateway names itself in errors. */
  readonly subject: string;
  /** Name prefix of the ConfigMaps. */
  readonly name: string;
  readonly metadata: (name: string) => ApiObjectMetadata;
  readonly render: () => ProxyConfig;
  /** Construct paths of the external services and routes, in config order, for messages. */
  readonly owners: () => { readonly externalServices: string[]; readonly routes: string[] };
}

/**
 * The ConfigMaps carrying the proxy config: `main`, then the shards a large config needs. The
 * shards are created when the app is validated (the tree still takes new constructs then), once
 * every service and route is known.
 */
export class GatewayConfigMaps {
  /** The ConfigMap holding `config.json`. */
  public readonly main: kplus.ConfigMap;
  private readonly shards: kplus.ConfigMap[] = [];
  /**
   * The split made when the app was last validated, which starts every synthesis. Cleared by
   * the gateway's own mutators; a route added to the attached network afterwards shows up at the
   * next synthesis, which validates again.
   */
  private splitCache?: SplitResult;

  constructor(private readonly source: GatewayConfigSource) {
    this.main = new kplus.ConfigMap(source.scope, 'ConfigMap', { metadata: source.metadata(`${source.name}-config`) });
    // Lazy: services and networks added after construction must land in the rendered config.
    this.main.addData(PROXY_CONFIG_FILE, Lazy.any({ produce: () => this.files()[0].text }) as unknown as string);
  }

  /** The main ConfigMap and the shards. */
  public get all(): kplus.ConfigMap[] {
    return [this.main, ...this.shards];
  }

  /** The shard ConfigMaps (none while the config fits one). */
  public get shardConfigMaps(): readonly kplus.ConfigMap[] {
    return this.shards;
  }

  /** Forget the split: the gateway's config changed. */
  public invalidate(): void {
    this.splitCache = undefined;
  }

  /** The config's files (`config.json` first); throws when they cannot fit the limits. */
  public files(): readonly ConfigFile[] {
    // Every object of the config (main, shards, checksum, volume) asks during one synthesis;
    // the split made at validation serves them all.
    const split = this.splitCache ?? this.split();
    if (!split.ok) {
      const problems = new Problems(this.source.subject);
      for (const p of split.problems) problems.add(p.prop, p.value, p.rule, p.fix);
      problems.throwIfAny();
    }
    const files = (split as { files: readonly ConfigFile[] }).files;
    if (files.length - 1 !== this.shards.length) {
      throw new Error(`${this.source.subject}: the proxy config needs ${files.length - 1} shard ConfigMaps but ${this.shards.length} exist; synthesise through App.synth() or Chart.toJson(), which create them`);
    }
    return files;
  }

  /**
   * Validation time: split the config and create the shard ConfigMaps it needs, so every file is
   * an object of the synthesised app. Problems that rendering itself reports are left to the
   * render, which states them in full.
   */
  public prepare(): string[] {
    let split: SplitResult;
    this.splitCache = undefined;
    try {
      split = this.split();
    } catch {
      return [];
    }
    this.splitCache = split;
    if (!split.ok) {
      const problems = new Problems(this.source.subject);
      for (const p of split.problems) problems.add(p.prop, p.value, p.rule, p.fix);
      try {
        problems.throwIfAny();
      } catch (e) {
        return [(e as Error).message];
      }
    }
    const files = (split as { files: readonly ConfigFile[] }).files;
    const scope = this.source.scope;
    for (let n = this.shards.length + 1; n < files.length; n++) {
      const cm = new kplus.ConfigMap(scope, `ConfigShard${n}`, { metadata: this.source.metadata(`${this.source.name}-config-${n}`) });
      const file = shardFileName(n);
      cm.addData(file, Lazy.any({ produce: () => this.files().find((f) => f.file === file)!.text }) as unknown as string);
      this.shards.push(cm);
    }
    // Fewer shards than an earlier synth of the same app needed: drop the surplus.
    while (this.shards.length > files.length - 1) {
      const cm = this.shards.pop()!;
      scope.node.tryRemoveChild(cm.node.id);
    }
    return [];
  }

  private split(): SplitResult {
    return splitConfig(this.source.render(), this.source.owners());
  }
}
