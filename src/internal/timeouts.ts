// Per-phase timeouts (cdk8s Durations) to the proxy config's millisecond fields.
import { durationMs } from './duration';
import type { Problems } from './problems';
import type { TimeoutsSpec } from '../model/proxy-config';
import type { ProxyTimeouts } from '../proxy-timeouts';

/** ProxyTimeouts to the model's millisecond fields; unset phases stay unset. */
export function timeoutsToSpec(problems: Problems, prefix: string, t: ProxyTimeouts): Partial<TimeoutsSpec> {
  const out: Record<string, number> = {};
  const put = (field: keyof TimeoutsSpec, prop: keyof ProxyTimeouts) => {
    const ms = durationMs(problems, `${prefix}.${prop}`, t[prop]);
    if (ms !== undefined) out[field] = ms;
  };
  put('dnsMs', 'dns');
  put('connectMs', 'connect');
  put('tlsHandshakeMs', 'tlsHandshake');
  put('requestHeadersMs', 'requestHeaders');
  put('responseHeadersMs', 'responseHeaders');
  put('idleMs', 'idle');
  put('totalMs', 'total');
  put('tunnelIdleMs', 'tunnelIdle');
  return out as Partial<TimeoutsSpec>;
}

