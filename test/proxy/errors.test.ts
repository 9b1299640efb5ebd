// The one code → response mapping, and translation of Node/undici errors by code only.
import { EgressError, errorResponse, statusOf, toEgressError, type EgressErrorCode } from '../../src/proxy/errors';

describe('errorResponse', () => {
  test.each<[EgressErrorCode, number]>([
    ['EGRESS_DENIED', 403], ['ADDRESS_REFUSED', 403], ['BAD_REQUEST', 400], ['UNKNOWN_NAME', 400], ['NO_BACKEND', 500],
    ['DNS_FAILED', 502], ['CONNECT_FAILED', 502], ['TLS_FAILED', 502], ['UPSTREAM_RESET', 502],
    ['DNS_TIMEOUT', 504], ['CONNECT_TIMEOUT', 504], ['TLS_TIMEOUT', 504], ['RESPONSE_TIMEOUT', 504], ['IDLE_TIMEOUT', 504], ['TOTAL_TIMEOUT', 504],
    ['DRAINING', 503], ['OVERLOADED', 503], ['CLIENT_CLOSED', 499], ['INTERNAL', 500],
  ])('%s → %i with x-egress-error and a short body', (code, status) => {
    const r = errorResponse(code);
    expect(r.status).toBe(status);
    expect(statusOf(code)).toBe(status);
    expect(r.headers['x-egress-error']).toBe(code);
    expect(r.body).toContain(`(${code})`);
    expect(Number(r.headers['content-length'])).toBe(Buffer.byteLength(r.body));
  });
});

describe('toEgressError', () => {
  test.each([
    ['UND_ERR_HEADERS_TIMEOUT', 'RESPONSE_TIMEOUT'], ['UND_ERR_BODY_TIMEOUT', 'IDLE_TIMEOUT'], ['UND_ERR_CONNECT_TIMEOUT', 'CONNECT_TIMEOUT'],
    ['ECONNRESET', 'UPSTREAM_RESET'], ['UND_ERR_SOCKET', 'UPSTREAM_RESET'], ['ECONNREFUSED', 'CONNECT_FAILED'], ['ENOTFOUND', 'DNS_FAILED'],
  ])('code %s → %s', (code, expected) => {
    expect(toEgressError(Object.assign(new Error('whatever the message says'), { code })).code).toBe(expected);
  });

  test('messages never decide: an unknown code falls back', () => {
    expect(toEgressError(new Error('ECONNREFUSED timeout TLS'), 'INTERNAL').code).toBe('INTERNAL');
  });

  test('a TLS alert, itself or as the cause of undici\'s "other side closed", → TLS_FAILED naming the alert', () => {
    const alert = Object.assign(new Error('tlsv13 alert certificate required'), { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', library: 'SSL routines' });
    const closed = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET', cause: alert });
    expect([toEgressError(alert).code, toEgressError(alert).detail]).toEqual(['TLS_FAILED', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED']);
    expect([toEgressError(closed).code, toEgressError(closed).detail]).toEqual(['TLS_FAILED', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED']);
    const bad = Object.assign(new Error('x'), { code: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' });
    expect(toEgressError(Object.assign(new Error('y'), { code: 'ECONNRESET', cause: bad })).code).toBe('TLS_FAILED');
    // A reset whose cause is not a TLS error stays a reset; a cyclic cause chain ends.
    const plain = Object.assign(new Error('z'), { code: 'UND_ERR_SOCKET' }) as Error & { cause?: unknown };
    plain.cause = plain;
    expect(toEgressError(plain).code).toBe('UPSTREAM_RESET');
  });

  test('an EgressError passes through untouched', () => {
    const e = new EgressError('TLS_FAILED', 'detail');
    expect(toEgressError(e)).toBe(e);
  });
});
