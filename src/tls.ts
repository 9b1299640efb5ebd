// TLS origination settings for external services, modelled on Kuma's MeshExternalService `tls`:
// versions, verification modes, CA and client certificate sources, SNI and SAN matching.
import { dnsNameProblem } from './internal/dns';
import { MountRef, mountedFile } from './internal/mounts';
import { Problems } from './internal/problems';
import { dnsSubdomainProblem } from './model/names';
import type { SubjectAltNameSpec, TlsOriginationSpec } from './model/proxy-config';

/**
 * TLS protocol version bound, spelt as Kuma spells it.
 *
 * @see https://kuma.io/docs/latest/networking/meshexternalservice/
 */
export enum TlsVersion {
  /** Let the proxy choose: at least TLS 1.2 as a minimum, up to TLS 1.3 as a maximum. */
  AUTO = 'TLSAuto',
  /** TLS 1.0. Deprecated by RFC 8996; only for legacy servers that offer nothing newer. */
  TLS10 = 'TLS10',
  /** TLS 1.1. Deprecated by RFC 8996; only for legacy servers that offer nothing newer. */
  TLS11 = 'TLS11',
  /** TLS 1.2. */
  TLS12 = 'TLS12',
  /** TLS 1.3. */
  TLS13 = 'TLS13',
}

/** Orders versions; AUTO means 1.2 as a lower bound and 1.3 as an upper bound. */
function versionRank(v: TlsVersion, bound: 'min' | 'max'): number {
  switch (v) {
    case TlsVersion.TLS10: return 10;
    case TlsVersion.TLS11: return 11;
    case TlsVersion.TLS12: return 12;
    case TlsVersion.TLS13: return 13;
    case TlsVersion.AUTO: return bound === 'min' ? 12 : 13;
    default: return -1;
  }
}

/** Which parts of the upstream certificate the proxy checks (Kuma's verification modes). */
export enum TlsVerificationMode {
  /** Check the chain against the trusted CAs and the name against SNI or subjectAltNames. */
  SECURED = 'Secured',
  /** Check the chain, skip the name check. */
  SKIP_SAN = 'SkipSAN',
  /** Check the name, skip the chain check. */
  SKIP_CA = 'SkipCA',
  /** Check nothing: encryption without authentication. */
  SKIP_ALL = 'SkipAll',
}

/**
 * How strictly the proxy verifies the upstream's certificate.
 *
 * Anything but `secured()` lets an attacker on the path impersonate the upstream; use the skip
 * modes only for servers you cannot fix, and prefer adding their CA with `caCertificate`.
 */
export class TlsVerification {
  /** Verify the chain and the name (the default). */
  public static secured(): TlsVerification {
    return new TlsVerification(TlsVerificationMode.SECURED);
  }

  /** Verify the chain but not the name. */
  public static skipSan(): TlsVerification {
    return new TlsVerification(TlsVerificationMode.SKIP_SAN);
  }

  /** Verify the name but not the chain (self-signed upstreams). */
  public static skipCa(): TlsVerification {
    return new TlsVerification(TlsVerificationMode.SKIP_CA);
  }

  /** Verify nothing. The connection is encrypted but not authenticated. */
  public static skipAll(): TlsVerification {
    return new TlsVerification(TlsVerificationMode.SKIP_ALL);
  }

  private constructor(
    /** The verification mode. */
    public readonly mode: TlsVerificationMode,
  ) {}
}

/** Where a certificate (or key) comes from. */
export enum CertificateSourceType {
  /** A key of a Kubernetes Secret, mounted into the gateway pods. */
  SECRET = 'Secret',
  /** A key of a Kubernetes ConfigMap, mounted into the gateway pods (public material only). */
  CONFIG_MAP = 'ConfigMap',
  /** PEM text in the proxy config itself (CA certificates only). */
  INLINE = 'Inline',
}

const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

/**
 * A CA certificate, client certificate or client key for TLS origination.
 *
 * Secrets and ConfigMaps are mounted read-only into the gateway pods; the proxy config names the
 * mounted file, never the content. Private keys can only come from a Secret.
 */
export class CertificateSource {
  /**
   * A key of a Secret in the gateway's namespace.
   * @param secretName name of the Secret
   * @param key key inside the Secret, e.g. `tls.crt`, `tls.key` or `ca.crt`
   */
  public static fromSecret(secretName: string, key: string): CertificateSource {
    checkObjectRef('CertificateSource.fromSecret()', 'secretName', secretName, key);
    return new CertificateSource(CertificateSourceType.SECRET, secretName, key, undefined);
  }

  /**
   * A key of a ConfigMap in the gateway's namespace. For CA bundles and client certificates,
   * which are public; never for private keys.
   * @param configMapName name of the ConfigMap
   * @param key key inside the ConfigMap, e.g. `ca.crt`
   */
  public static fromConfigMap(configMapName: string, key: string): CertificateSource {
    checkObjectRef('CertificateSource.fromConfigMap()', 'configMapName', configMapName, key);
    return new CertificateSource(CertificateSourceType.CONFIG_MAP, configMapName, key, undefined);
  }

  /**
   * PEM text of one or more CA certificates, written into the proxy config.
   * Accepted only for `caCertificate`: private keys never go inline.
   */
  public static fromInline(pem: string): CertificateSource {
    const problems = new Problems('CertificateSource.fromInline()');
    if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----') || !pem.includes('-----END CERTIFICATE-----')) {
      problems.add('pem', typeof pem === 'string' ? `${pem.slice(0, 30)}...` : pem,
        'is not PEM certificate text', 'pass the text between and including "-----BEGIN CERTIFICATE-----" and "-----END CERTIFICATE-----"');
    } else if (/PRIVATE KEY/.test(pem)) {
      problems.add('pem', `${pem.slice(0, 30)}...`, 'holds a private key; private keys never go inline, where anyone who can read the ConfigMap reads them',
        'store the key in a Secret and use CertificateSource.fromSecret()');
    }
    problems.throwIfAny();
    return new CertificateSource(CertificateSourceType.INLINE, undefined, undefined, pem);
  }

  private constructor(
    /** Where the material comes from. */
    public readonly type: CertificateSourceType,
    /** Name of the Secret or ConfigMap; undefined for inline. */
    public readonly name: string | undefined,
    /** Key inside the Secret or ConfigMap; undefined for inline. */
    public readonly key: string | undefined,
    /** PEM text when inline. */
    public readonly pem: string | undefined,
  ) {}

  /** @internal the object the gateway must mount for this source, if any. */
  public _mount(): MountRef | undefined {
    if (this.type === CertificateSourceType.INLINE) return undefined;
    return { kind: this.type === CertificateSourceType.SECRET ? 'secret' : 'configmap', name: this.name! };
  }

  /** @internal the file the proxy reads inside the gateway pods, if mounted. */
  public _file(): string | undefined {
    const mount = this._mount();
    return mount ? mountedFile(mount.kind, mount.name, this.key!) : undefined;
  }
}

function checkObjectRef(subject: string, nameProp: string, name: string, key: string): void {
  const problems = new Problems(subject);
  const nameProblem = dnsSubdomainProblem(name, { what: 'a Kubernetes object name' });
  if (nameProblem) problems.add(nameProp, name, nameProblem.rule, nameProblem.fix);
  if (typeof key !== 'string' || !SECRET_KEY.test(key) || key.length > 253) {
    problems.add('key', key, 'is not a valid data key (letters, digits, "-", "_" and "." only)', 'use the key as it appears under data:, e.g. "ca.crt"');
  }
  problems.throwIfAny();
}

/** How a subject alternative name is compared. */
export enum SubjectAltNameMatch {
  /** The certificate carries exactly this name. */
  EXACT = 'Exact',
  /** The certificate carries a name that starts with this value. */
  PREFIX = 'Prefix',
}

/** A name the upstream certificate must carry; any one of the listed names is enough. */
export class SubjectAltName {
  /** The certificate must carry exactly `value`. */
  public static exact(value: string): SubjectAltName {
    return new SubjectAltName(SubjectAltNameMatch.EXACT, checkSan('exact', value));
  }

  /** The certificate must carry a name starting with `value`. */
  public static prefix(value: string): SubjectAltName {
    return new SubjectAltName(SubjectAltNameMatch.PREFIX, checkSan('prefix', value));
  }

  private constructor(
    /** How `value` is compared. */
    public readonly match: SubjectAltNameMatch,
    /** The name or prefix. */
    public readonly value: string,
  ) {}
}

function checkSan(factory: string, value: string): string {
  if (typeof value !== 'string' || value.length === 0 || /\s/.test(value)) {
    throw new Error(`SubjectAltName.${factory}(): 'value' ${JSON.stringify(value)} must be a non-empty name without whitespace; pass the DNS name, IP or URI the certificate carries`);
  }
  return value;
}

/** Options for `TlsOrigination.originate()`. */
export interface TlsOriginationOptions {
  /**
   * Lowest TLS version offered.
   * @default TlsVersion.TLS12
   */
  readonly minVersion?: TlsVersion;

  /**
   * Highest TLS version offered.
   * @default TlsVersion.AUTO (TLS 1.3)
   */
  readonly maxVersion?: TlsVersion;

  /**
   * How the upstream certificate is verified.
   * @default TlsVerification.secured()
   */
  readonly verification?: TlsVerification;

  /**
   * Extra trusted CA certificates, added to the system roots.
   * @default - system roots only
   */
  readonly caCertificate?: CertificateSource;

  /**
   * Client certificate for mutual TLS with the upstream. Needs `clientKey` too.
   * From a Secret or ConfigMap.
   * @default - no client certificate
   */
  readonly clientCertificate?: CertificateSource;

  /**
   * Client private key for mutual TLS with the upstream. Needs `clientCertificate` too.
   * From a Secret only.
   * @default - no client key
   */
  readonly clientKey?: CertificateSource;

  /**
   * SNI to send and name to verify instead of the requested host.
   * @default - the requested host
   */
  readonly serverName?: string;

  /**
   * Names the upstream certificate must carry (any one matches).
   * @default - the SNI name
   */
  readonly subjectAltNames?: SubjectAltName[];

  /**
   * Allow TLS renegotiation. Not recommended: renegotiation has a history of attacks.
   * @default false
   */
  readonly allowRenegotiation?: boolean;
}

/**
 * Whether and how the gateway originates TLS to an external service.
 *
 * @see https://kuma.io/docs/latest/networking/meshexternalservice/
 */
export class TlsOrigination {
  /** Originate TLS with the given settings; with no options: verified TLS 1.2+ against system roots. */
  public static originate(options: TlsOriginationOptions = {}): TlsOrigination {
    const problems = new Problems('TlsOrigination.originate()');
    const minVersion = options.minVersion ?? TlsVersion.TLS12;
    const maxVersion = options.maxVersion ?? TlsVersion.AUTO;
    const known = Object.values(TlsVersion) as string[];
    if (!known.includes(minVersion)) problems.add('minVersion', minVersion, `is not one of ${known.join(', ')}`, 'use a TlsVersion member');
    if (!known.includes(maxVersion)) problems.add('maxVersion', maxVersion, `is not one of ${known.join(', ')}`, 'use a TlsVersion member');
    if (known.includes(minVersion) && known.includes(maxVersion) && versionRank(minVersion, 'min') > versionRank(maxVersion, 'max')) {
      problems.add('minVersion', minVersion, `is above 'maxVersion' ${JSON.stringify(maxVersion)} (TLSAuto means TLS12 as a minimum and TLS13 as a maximum)`,
        'lower minVersion or raise maxVersion');
    }
    if (options.clientCertificate && !options.clientKey) {
      problems.add('clientKey', undefined, "is required when 'clientCertificate' is set (mutual TLS needs both)", 'add clientKey: CertificateSource.fromSecret(secretName, key)');
    }
    if (options.clientKey && !options.clientCertificate) {
      problems.add('clientCertificate', undefined, "is required when 'clientKey' is set (mutual TLS needs both)", 'add clientCertificate: CertificateSource.fromSecret(secretName, key)');
    }
    if (options.clientKey && options.clientKey.type !== CertificateSourceType.SECRET) {
      problems.add('clientKey', options.clientKey.type, 'is not a Secret; private keys are read only from Secrets', 'use CertificateSource.fromSecret(secretName, key)');
    }
    if (options.clientCertificate && options.clientCertificate.type === CertificateSourceType.INLINE) {
      problems.add('clientCertificate', 'Inline', 'is not supported; the proxy reads client certificates from mounted files', 'use CertificateSource.fromSecret() or fromConfigMap()');
    }
    if (options.serverName !== undefined) {
      const p = dnsNameProblem(options.serverName);
      if (p) problems.add('serverName', options.serverName, p.rule, p.fix);
    }
    const verification = options.verification ?? TlsVerification.secured();
    const sans = options.subjectAltNames ?? [];
    if (sans.length > 0 && (verification.mode === TlsVerificationMode.SKIP_SAN || verification.mode === TlsVerificationMode.SKIP_ALL)) {
      problems.add('subjectAltNames', sans.map((s) => s.value), `would be ignored because verification is ${verification.mode}`,
        'remove subjectAltNames or use TlsVerification.secured() / skipCa()');
    }
    problems.throwIfAny();
    return new TlsOrigination(true, minVersion, maxVersion, verification, options.caCertificate, options.clientCertificate,
      options.clientKey, options.serverName, [...sans], options.allowRenegotiation ?? false);
  }

  /**
   * No TLS: the gateway forwards the request in plaintext to the upstream.
   *
   * Only for upstreams that speak nothing else (or that sit on a network you trust): anything on
   * the path can read and change the traffic, including headers injected from Secrets.
   */
  public static disabled(): TlsOrigination {
    return new TlsOrigination(false, TlsVersion.AUTO, TlsVersion.AUTO, TlsVerification.secured(), undefined, undefined,
      undefined, undefined, [], false);
  }

  private constructor(
    /** Whether TLS is originated at all. */
    public readonly enabled: boolean,
    /** Lowest TLS version offered. */
    public readonly minVersion: TlsVersion,
    /** Highest TLS version offered. */
    public readonly maxVersion: TlsVersion,
    /** How the upstream certificate is verified. */
    public readonly verification: TlsVerification,
    /** Extra trusted CA certificates. */
    public readonly caCertificate: CertificateSource | undefined,
    /** Client certificate for mutual TLS. */
    public readonly clientCertificate: CertificateSource | undefined,
    /** Client private key for mutual TLS. */
    public readonly clientKey: CertificateSource | undefined,
    /** SNI override. */
    public readonly serverName: string | undefined,
    /** Names the upstream certificate must carry (any one). */
    public readonly subjectAltNames: SubjectAltName[],
    /** Whether renegotiation is allowed. */
    public readonly allowRenegotiation: boolean,
  ) {}

  /** @internal the Secrets and ConfigMaps the gateway must mount for these settings. */
  public _mounts(): MountRef[] {
    return [this.caCertificate, this.clientCertificate, this.clientKey]
      .map((s) => s?._mount())
      .filter((m): m is MountRef => m !== undefined);
  }

  /** @internal the proxy config form: file paths, never secret material. */
  public _toSpec(): TlsOriginationSpec {
    const subjectAltNames: SubjectAltNameSpec[] = this.subjectAltNames.map((s) => ({ type: s.match === SubjectAltNameMatch.PREFIX ? 'Prefix' : 'Exact', value: s.value }));
    return {
      enabled: this.enabled,
      minVersion: this.minVersion,
      maxVersion: this.maxVersion,
      mode: this.verification.mode,
      caFile: this.caCertificate?._file(),
      caPem: this.caCertificate?.type === CertificateSourceType.INLINE ? this.caCertificate.pem : undefined,
      clientCertFile: this.clientCertificate?._file(),
      clientKeyFile: this.clientKey?._file(),
      serverName: this.serverName,
      subjectAltNames,
      allowRenegotiation: this.allowRenegotiation,
    };
  }
}
