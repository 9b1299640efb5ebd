// CertManagerCertificate: a cert-manager Certificate for the gateway's mTLS client certificate,
// whose Secret (tls.crt, tls.key, ca.crt) the gateway mounts like any other; renewals are picked up
// by the proxy without a restart.
import { ApiObject, Duration } from 'cdk8s';
import { Construct } from 'constructs';
import { dnsNameProblem } from './internal/dns';
import { durationMs } from './internal/duration';
import { Problems } from './internal/problems';
import { dnsSubdomainProblem, isDnsSubdomain } from './model/names';
import { CertificateSource } from './tls';

/**
 * The cert-manager issuer that signs a certificate (`spec.issuerRef`).
 * @see https://cert-manager.io/docs/usage/certificate/
 */
export class CertificateIssuer {
  /** An `Issuer` in the gateway's namespace. */
  public static issuer(name: string): CertificateIssuer {
    return new CertificateIssuer(checkIssuerName('issuer', name), 'Issuer', 'cert-manager.io');
  }

  /** A cluster-wide `ClusterIssuer`. */
  public static clusterIssuer(name: string): CertificateIssuer {
    return new CertificateIssuer(checkIssuerName('clusterIssuer', name), 'ClusterIssuer', 'cert-manager.io');
  }

  /**
   * An external issuer (e.g. `AWSPCAClusterIssuer` of `awspca.cert-manager.io`).
   * @param group API group of the issuer kind
   * @param kind the issuer's kind
   * @param name the issuer's name
   */
  public static external(group: string, kind: string, name: string): CertificateIssuer {
    const problems = new Problems('CertificateIssuer.external()');
    if (!isDnsSubdomain(group) || !group.includes('.')) problems.add('group', group, 'is not an API group (a DNS subdomain such as "awspca.cert-manager.io")', 'pass the group of the issuer\'s CRD');
    if (!/^[A-Z][A-Za-z0-9]*$/.test(kind)) problems.add('kind', kind, 'is not a Kubernetes kind (UpperCamelCase)', 'pass e.g. "AWSPCAClusterIssuer"');
    problems.throwIfAny();
    return new CertificateIssuer(checkIssuerName('external', name), kind, group);
  }

  private constructor(
    /** Name of the issuer. */
    public readonly name: string,
    /** Kind of the issuer. */
    public readonly kind: string,
    /** API group of the issuer. */
    public readonly group: string,
  ) {}
}

function checkIssuerName(factory: string, name: string): string {
  const p = dnsSubdomainProblem(name, { what: 'a Kubernetes object name', fix: 'pass the issuer\'s metadata.name' });
  if (p) throw new Error(`CertificateIssuer.${factory}(): 'name' ${JSON.stringify(name)} ${p.rule}; ${p.fix}`);
  return name;
}

/** Options of a client certificate issued by cert-manager (`EgressGateway.addClientCertificate()`). */
export interface CertManagerCertificateOptions {
  /** The issuer that signs the certificate. */
  readonly issuer: CertificateIssuer;

  /**
   * Name of the Certificate and of the Secret it writes (keys `tls.crt`, `tls.key`, `ca.crt`).
   * @default - "<gateway name>-<construct id in lower case>"
   */
  readonly secretName?: string;

  /**
   * Subject common name, which many upstreams read as the client's identity.
   * @default - the gateway's name
   */
  readonly commonName?: string;

  /**
   * DNS subject alternative names.
   * @default - none
   */
  readonly dnsNames?: string[];

  /**
   * URI subject alternative names (e.g. a SPIFFE ID).
   * @default - none
   */
  readonly uris?: string[];

  /**
   * Lifetime of each issued certificate. At least one hour.
   * @default Duration.days(90) (cert-manager's default)
   */
  readonly duration?: Duration;

  /**
   * How long before expiry cert-manager renews it; shorter than `duration`.
   * @default - a third of duration (cert-manager's default)
   */
  readonly renewBefore?: Duration;
}

/** Props of `CertManagerCertificate`. */
export interface CertManagerCertificateProps extends CertManagerCertificateOptions {
  /** Namespace of the Certificate and its Secret (the gateway's, where the Secret is mounted). */
  readonly namespace: string;
  /** The `secretName` when it is not set. */
  readonly defaultName: string;
  /** The `commonName` when it is not set. */
  readonly defaultCommonName: string;
  /** Labels every object of the gateway carries. */
  readonly commonLabels?: { [key: string]: string };
}

const MIN_DURATION_MS = 3_600_000;

/**
 * A client certificate for mutual TLS origination, issued and renewed by cert-manager
 * (`cert-manager.io/v1` Certificate; the cert-manager CRDs must be installed). Hand
 * `certificate`, `privateKey` and, when the upstream's server certificate comes from the same
 * CA, `caBundle` to `TlsOrigination.originate()`; the gateway then mounts the Secret and the proxy
 * reloads the files when cert-manager renews them (a new private key each time), without a restart.
 */
export class CertManagerCertificate extends Construct {
  /** Name of the Certificate and its Secret. */
  public readonly secretName: string;
  /** The certificate chain (`tls.crt` of the Secret), for `clientCertificate`. */
  public readonly certificate: CertificateSource;
  /** The private key (`tls.key`), for `clientKey`. */
  public readonly privateKey: CertificateSource;
  /**
   * The issuing CA (`ca.crt`, written by CA and Vault issuers), for `caCertificate` when the
   * upstream's server certificate is signed by the same CA.
   */
  public readonly caBundle: CertificateSource;
  /** The Certificate object. */
  public readonly apiObject: ApiObject;

  public constructor(scope: Construct, id: string, props: CertManagerCertificateProps) {
    super(scope, id);
    const problems = new Problems(`CertManagerCertificate "${this.node.path}"`);
    this.secretName = props.secretName ?? props.defaultName;
    const secretNameProblem = dnsSubdomainProblem(this.secretName, { what: 'a Kubernetes object name', fix: 'use e.g. "partner-client-cert"' });
    if (secretNameProblem) problems.add('secretName', this.secretName, secretNameProblem.rule, secretNameProblem.fix);
    if (!(props.issuer instanceof CertificateIssuer)) {
      problems.add('issuer', props.issuer, 'is not a CertificateIssuer', 'use CertificateIssuer.issuer(name) or CertificateIssuer.clusterIssuer(name)');
    }
    const commonName = props.commonName ?? props.defaultCommonName;
    if (typeof commonName !== 'string' || commonName.length === 0 || commonName.length > 64) {
      problems.add('commonName', commonName, 'must be 1 to 64 characters (X.509 upper bound)', 'use the identity the upstream expects, e.g. "egress-gateway"');
    }
    (props.dnsNames ?? []).forEach((n, i) => {
      const p = dnsNameProblem(n.replace(/^\*\./, ''));
      if (p) problems.add(`dnsNames[${i}]`, n, p.rule, p.fix);
    });
    (props.uris ?? []).forEach((u, i) => {
      if (!/^[a-z][a-z0-9+.-]*:\S+$/i.test(u)) problems.add(`uris[${i}]`, u, 'is not an absolute URI', 'use e.g. "spiffe://cluster.local/ns/egress/sa/egress-gateway"');
    });
    const durMs = durationMs(problems, 'duration', props.duration);
    const renewMs = durationMs(problems, 'renewBefore', props.renewBefore);
    if (durMs !== undefined && (durMs < MIN_DURATION_MS || durMs % 1000 !== 0)) {
      problems.add('duration', props.duration!.toHumanString(), 'must be whole seconds and at least one hour (cert-manager\'s minimum)', 'use e.g. Duration.days(30)');
    }
    if (renewMs !== undefined && (renewMs < 60_000 || renewMs % 1000 !== 0 || renewMs >= (durMs ?? 90 * 86_400_000))) {
      problems.add('renewBefore', props.renewBefore!.toHumanString(), 'must be whole seconds, at least a minute, and shorter than \'duration\'',
        'leave it unset for a third of duration');
    }
    problems.throwIfAny();

    this.certificate = CertificateSource.fromSecret(this.secretName, 'tls.crt');
    this.privateKey = CertificateSource.fromSecret(this.secretName, 'tls.key');
    this.caBundle = CertificateSource.fromSecret(this.secretName, 'ca.crt');
    const goDuration = (ms: number) => `${ms / 1000}s`;
    this.apiObject = new ApiObject(this, 'Resource', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: this.secretName, namespace: props.namespace, ...(props.commonLabels ? { labels: { ...props.commonLabels } } : {}) },
      spec: {
        secretName: this.secretName,
        issuerRef: { group: props.issuer.group, kind: props.issuer.kind, name: props.issuer.name },
        commonName,
        ...(props.dnsNames?.length ? { dnsNames: [...props.dnsNames] } : {}),
        ...(props.uris?.length ? { uris: [...props.uris] } : {}),
        ...(durMs !== undefined ? { duration: goDuration(durMs) } : {}),
        ...(renewMs !== undefined ? { renewBefore: goDuration(renewMs) } : {}),
        usages: ['client auth', 'digital signature'],
        // A fresh key at every renewal: a leaked key is only good until the next one.
        privateKey: { algorithm: 'ECDSA', size: 256, encoding: 'PKCS8', rotationPolicy: 'Always' },
      },
    });
  }
}
