// TLS origination: compile a TlsOriginationSpec once (secure context, verification mode, names)
// and run a verified, bounded handshake over an already-dialled socket. Never falls back.
import { constants as cryptoConstants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { EgressError, isTlsLayerError } from './errors';
import type { SubjectAltNameSpec, TlsOriginationSpec, TlsVersionSpec } from '../model/proxy-config';

const MIN_VERSION: Record<TlsVersionSpec, tls.SecureVersion> = {
  TLSAuto: 'TLSv1.2', TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3',
};
const MAX_VERSION: Record<TlsVersionSpec, tls.SecureVersion> = {
  TLSAuto: 'TLSv1.3', TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3',
};

/** A spec compiled for dialling: one secure context shared by every connection that uses it. */
export interface TlsProfile {
  readonly spec: TlsOriginationSpec;
  /** Distinguishes pools: two profiles with equal keys behave identically. */
  readonly key: string;
  readonly secureContext: tls.SecureContext;
  /** Checks chain (rejectUnauthorized) in Secured and SkipSAN. */
  readonly verifyChain: boolean;
  /** Checks the name (SNI or subjectAltNames) in Secured and SkipCA. */
  readonly verifyName: boolean;
}

/** Reads caFile / client cert / key now (load or reload time), so a bad file fails the load. */
export function compileTlsProfile(spec: TlsOriginationSpec, keyPrefix: string): TlsProfile {
  const minVersion = MIN_VERSION[spec.minVersion];
  const maxVersion = MAX_VERSION[spec.maxVersion];
  const ca: string[] = [];
  if (spec.caFile || spec.caPem) {
    // Node's `ca` replaces the default roots; the spec says "added to system roots".
    ca.push(...tls.rootCertificates);
    if (spec.caFile) ca.push(readFileSync(spec.caFile, 'utf8'));
    if (spec.caPem) ca.push(spec.caPem);
  }
  const legacy = minVersion === 'TLSv1' || minVersion === 'TLSv1.1';
  // OpenSSL refuses server-initiated renegotiation with this option (the only one we set).
  const secureOptions = spec.allowRenegotiation ? 0 : cryptoConstants.SSL_OP_NO_RENEGOTIATION;
  const secureContext = tls.createSecureContext({
    ca: ca.length > 0 ? ca : undefined,
    cert: spec.clientCertFile ? readFileSync(spec.clientCertFile) : undefined,
    key: spec.clientKeyFile ? readFileSync(spec.clientKeyFile) : undefined,
    minVersion,
    maxVersion,
    // OpenSSL 3 refuses TLS 1.0/1.1 at the default security level; the user asked for them.
    ciphers: legacy ? 'DEFAULT:@SECLEVEL=0' : undefined,
    secureOptions,
  });
  return {
    spec,
    key: keyPrefix,
    secureContext,
    verifyChain: spec.mode === 'Secured' || spec.mode === 'SkipSAN',
    verifyName: spec.mode === 'Secured' || spec.mode === 'SkipCA',
  };
}

/** SNI for a connection: the configured serverName, else the host the client asked for. */
export function serverNameFor(profile: TlsProfile, requestedHost: string): string {
  return profile.spec.serverName ?? requestedHost;
}

function dnsSans(cert: tls.PeerCertificate): string[] {
  const out: string[] = [];
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const t = part.trim();
    if (t.startsWith('DNS:')) out.push(t.slice(4).toLowerCase());
    else if (t.startsWith('IP Address:')) out.push(t.slice(11).toLowerCase());
  }
  return out;
}

/** Kuma's subjectAltNames: any one entry matching any SAN of the certificate is enough. */
export function matchesSubjectAltNames(cert: tls.PeerCertificate, wanted: readonly SubjectAltNameSpec[]): boolean {
  const sans = dnsSans(cert);
  return wanted.some((w) => {
    const v = w.value.toLowerCase();
    return sans.some((s) => (w.type === 'Exact' ? s === v : s.startsWith(v)));
  });
}

/** undefined when the certificate is acceptable for `servername` under the profile. */
export function checkIdentity(profile: TlsProfile, servername: string, cert: tls.PeerCertificate): Error | undefined {
  if (!profile.verifyName) return undefined;
  if (profile.spec.subjectAltNames.length > 0) {
    return matchesSubjectAltNames(cert, profile.spec.subjectAltNames)
      ? undefined
      : Object.assign(new Error('certificate matches none of the configured subjectAltNames'), { code: 'ERR_TLS_SAN_MISMATCH' });
  }
  return tls.checkServerIdentity(servername, cert);
}

/** The first TLS-layer error (an alert from the peer) each established socket saw. */
const tlsAlerts = new WeakMap<tls.TLSSocket, Error>();

/** The TLS alert (or other TLS-layer error) `sock` received after its handshake, if any. */
export function tlsErrorAfterHandshake(sock: tls.TLSSocket): Error | undefined {
  return tlsAlerts.get(sock);
}

/**
 * Over TLS 1.3 a server checks the client certificate after the client's handshake completed,
 * so its refusal (certificate_required, bad_certificate) arrives as an alert on an established
 * socket. HTTP clients then close it and report a generic "other side closed" error, emitted on
 * this same socket: the alert is attached to it as `cause`, so errors.ts can name a TLS failure.
 */
function noteErrorAfterHandshake(sock: tls.TLSSocket, err: Error): void {
  const alert = tlsAlerts.get(sock);
  if (!alert) {
    if (isTlsLayerError(err)) tlsAlerts.set(sock, err);
    return;
  }
  if (err !== alert && (err as { cause?: unknown }).cause === undefined) {
    Object.defineProperty(err, 'cause', { value: alert, configurable: true, writable: true, enumerable: false });
  }
}

export interface TlsHandshakeResult {
  readonly socket: tls.TLSSocket;
  readonly tlsMs: number;
}

/**
 * TLS sessions to resume, for connections that share a profile, server name and address (a pool's
 * connections). A resumed session was established by a handshake verified under the same profile
 * and name; the server proves it holds that session's secret, and Node still reports and checks
 * the certificate the session carries.
 */
export class TlsSessionCache {
  private session: Buffer | undefined;
  public get(): Buffer | undefined {
    return this.session;
  }
  public set(session: Buffer): void {
    this.session = session;
  }
  /** A session the server refused to resume, or that belongs to a failed connection. */
  public forget(session: Buffer | undefined): void {
    if (session !== undefined && this.session === session) this.session = undefined;
  }
}

/** Decrypted bytes an upstream TLS socket buffers before it stops reading. */
const UPSTREAM_READ_BUFFER_BYTES = 64 * 1024;

/**
 * Handshake over `raw` within `timeoutMs`. Rejects with TLS_TIMEOUT or TLS_FAILED and destroys
 * the socket; the caller never gets an unverified socket unless the mode says to skip checks.
 * With `sessions`, the handshake offers the last session to resume (no certificate exchange and one
 * round trip less) and keeps the tickets the server sends.
 */
export function originateTls(
  raw: Socket, profile: TlsProfile, servername: string, timeoutMs: number, alpn: readonly string[] = ['http/1.1'],
  sessions?: TlsSessionCache,
): Promise<TlsHandshakeResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let done = false;
    const offered = sessions?.get();
    const sock = tls.connect({
      socket: raw,
      secureContext: profile.secureContext,
      servername,
      rejectUnauthorized: profile.verifyChain,
      // Node runs this only when the chain verified; SkipCA is checked below instead.
      checkServerIdentity: (host, cert) => (profile.verifyChain ? checkIdentity(profile, host, cert) : undefined),
      ALPNProtocols: [...alpn],
      session: offered,
      // undici reads in paused mode: at node's 16 KiB mark, every response body of a TLS record
      // (16 KiB) stops and restarts reading the socket (two epoll_ctl calls and a loop turn).
      // node passes it on to the socket; @types/node leaves it out of ConnectionOptions.
      ...({ highWaterMark: UPSTREAM_READ_BUFFER_BYTES } as tls.ConnectionOptions),
    });
    if (sessions) sock.on('session', (session: Buffer) => sessions.set(session));
    const fail = (err: EgressError) => {
      if (done) return;
      done = true;
      sessions?.forget(offered);
      clearTimeout(timer);
      sock.destroy();
      raw.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new EgressError('TLS_TIMEOUT')), timeoutMs);
    const onError = (err: NodeJS.ErrnoException) => fail(new EgressError('TLS_FAILED', err.code, { cause: err }));
    const onClose = () => fail(new EgressError('TLS_FAILED', 'closed during handshake'));
    sock.once('error', onError);
    sock.once('close', onClose);
    sock.once('secureConnect', () => {
      if (!profile.verifyChain && profile.verifyName) {
        const err = checkIdentity(profile, servername, sock.getPeerCertificate());
        if (err) return fail(new EgressError('TLS_FAILED', (err as NodeJS.ErrnoException).code, { cause: err }));
      }
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off('close', onClose);
      sock.off('error', onError);
      // Until the caller attaches its own handler, a stray error must not crash the process; and
      // a TLS alert arriving now must stay visible to whoever reports the connection's end.
      sock.on('error', (err: Error) => noteErrorAfterHandshake(sock, err));
      resolve({ socket: sock, tlsMs: performance.now() - started });
    });
  });
}
