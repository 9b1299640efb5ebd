// Test helper: a complete ExternalServiceSpec with the model's defaults, overridable per test.
import { DEFAULT_POOL, DEFAULT_TLS } from '../../src/model/defaults';
import type { ExternalServiceSpec, TlsOriginationSpec } from '../../src/model/proxy-config';

export function serviceSpec(overrides: Partial<ExternalServiceSpec> = {}, tls: Partial<TlsOriginationSpec> = {}): ExternalServiceSpec {
  return {
    name: 'httpbin',
    host: 'httpbin.org',
    ports: [{ port: 80, protocol: 'http', targetPort: 443 }],
    endpoints: [],
    tls: { ...DEFAULT_TLS, ...tls },
    pool: { ...DEFAULT_POOL },
    injectHeaders: [],
    ...overrides,
  };
}

export const PLAINTEXT: Partial<TlsOriginationSpec> = { enabled: false };
