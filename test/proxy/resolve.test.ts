// Resolution and vetting: IP literals skip the resolver, the DNS timeout is enforced, refusals and
// the Service-backend exemption.
import { EgressError } from '../../src/proxy/errors';
import { cachingResolver, resolveAndVet, type Resolver } from '../../src/proxy/resolve';
import { AddressVetter } from '../../src/proxy/vet';

const vetter = new AddressVetter({ allowCidrs: ['127.0.0.0/8'], denyCidrs: [] }, []);

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return e instanceof EgressError ? e.code : 'other';
  }
  return undefined;
}

test('IP literals are not resolved', async () => {
  const calls: string[] = [];
  const resolver: Resolver = async (h) => {
    calls.push(h);
    return [];
  };
  const r = await resolveAndVet(resolver, '127.0.0.5', 1000, vetter);
  expect(r.addresses).toEqual(['127.0.0.5']);
  expect(calls).toEqual([]);
});

test('a resolver that never answers hits DNS_TIMEOUT', async () => {
  const never: Resolver = () => new Promise(() => undefined);
  expect(await codeOf(resolveAndVet(never, 'slow.example', 30, vetter))).toBe('DNS_TIMEOUT');
});

test('resolver errors become DNS_FAILED; no answers too', async () => {
  const failing: Resolver = async () => {
    throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
  };
  expect(await codeOf(resolveAndVet(failing, 'x.example', 1000, vetter))).toBe('DNS_FAILED');
  expect(await codeOf(resolveAndVet(async () => [], 'x.example', 1000, vetter))).toBe('DNS_FAILED');
});

test('only refused answers → ADDRESS_REFUSED; duplicates collapse; refusals are reported', async () => {
  const r: Resolver = async () => [{ address: '10.0.0.1', family: 4 }];
  expect(await codeOf(resolveAndVet(r, 'x.example', 1000, vetter))).toBe('ADDRESS_REFUSED');
  const mixed: Resolver = async () => [{ address: '127.0.0.1', family: 4 }, { address: '::ffff:127.0.0.1', family: 6 }, { address: '169.254.169.254', family: 4 }];
  const v = await resolveAndVet(mixed, 'x.example', 1000, vetter);
  expect(v.addresses).toEqual(['127.0.0.1']);
  expect(v.refused).toEqual([{ ok: false, address: '169.254.169.254', reason: 'built-in-refusal', matched: '169.254.0.0/16' }]);
});

test('exempt (Service backends): cluster IPs are accepted without vetting', async () => {
  const r: Resolver = async () => [{ address: '10.96.0.10', family: 4 }];
  expect((await resolveAndVet(r, 'svc.ns.svc.cluster.local', 1000, vetter, true)).addresses).toEqual(['10.96.0.10']);
});

describe('cachingResolver', () => {
  test('concurrent and repeated lookups share one answer within the TTL; failures are not cached', async () => {
    const calls: string[] = [];
    let fail = true;
    const inner: Resolver = async (h) => {
      calls.push(h);
      if (h === 'flaky.example' && fail) {
        fail = false;
        throw Object.assign(new Error('x'), { code: 'EAI_AGAIN' });
      }
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const r = cachingResolver(inner, 60_000);
    await Promise.all([r('a.example'), r('a.example'), r('a.example')]);
    await r('a.example');
    expect(calls).toEqual(['a.example']);
    await expect(r('flaky.example')).rejects.toMatchObject({ code: 'EAI_AGAIN' });
    await expect(r('flaky.example')).resolves.toEqual([{ address: '127.0.0.1', family: 4 }]);
    expect(calls).toEqual(['a.example', 'flaky.example', 'flaky.example']);
  });

  test('a zero TTL always asks again; the cache is bounded', async () => {
    const calls: string[] = [];
    const inner: Resolver = async (h) => {
      calls.push(h);
      return [];
    };
    const r = cachingResolver(inner, 0, 2);
    await r('x');
    await r('x');
    expect(calls).toEqual(['x', 'x']);
    const bounded = cachingResolver(inner, 60_000, 2);
    await bounded('a');
    await bounded('b');
    await bounded('c');
    await bounded('a');
    expect(calls.slice(2)).toEqual(['a', 'b', 'c', 'a']);
  });
});
