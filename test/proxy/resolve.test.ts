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

describe('resolveAndVet on a cached answer', () => {
  const answer = [{ address: '127.0.0.9', family: 4 }, { address: '10.1.2.3', family: 4 }];

  test('an answer in hand arms no DNS timeout and is vetted once per vetter', async () => {
    let lookups = 0;
    const resolver = cachingResolver(async () => {
      lookups++;
      return answer;
    }, 60_000);
    let vets = 0;
    const counting = new AddressVetter({ allowCidrs: ['127.0.0.0/8'], denyCidrs: [] }, []);
    const vet = counting.vet.bind(counting);
    counting.vet = (a: string) => {
      vets++;
      return vet(a);
    };
    expect(resolver.settled!('api.example.test')).toBeUndefined();
    const first = await resolveAndVet(resolver, 'api.example.test', 1000, counting);
    expect(first.addresses).toEqual(['127.0.0.9']);
    expect(first.refused.map((r) => r.address)).toEqual(['10.1.2.3']);
    expect(vets).toBe(2);
    expect(resolver.settled!('api.example.test')).toBe(answer);

    const timers = jest.spyOn(global, 'setTimeout');
    try {
      for (let i = 0; i < 5; i++) {
        const again = await resolveAndVet(resolver, 'api.example.test', 1000, counting);
        expect(again.addresses).toEqual(['127.0.0.9']);
        // Refusals are still reported on every request (they are counted per request).
        expect(again.refused.map((r) => r.address)).toEqual(['10.1.2.3']);
      }
      expect(timers).not.toHaveBeenCalled();
    } finally {
      timers.mockRestore();
    }
    expect(lookups).toBe(1);
    expect(vets).toBe(2);

    // Another vetter (a reload) vets afresh, by its own rules.
    const strict = new AddressVetter({ allowCidrs: ['127.0.0.10/32'], denyCidrs: [] }, []);
    const refusal = await resolveAndVet(resolver, 'api.example.test', 1000, strict).catch((e: unknown) => e as EgressError);
    expect(refusal).toBeInstanceOf(EgressError);
    expect((refusal as EgressError).code).toBe('ADDRESS_REFUSED');
    // A refusal remembered is thrown again, the same, as a fresh error each time.
    const errors = await Promise.all([1, 2].map(() => resolveAndVet(resolver, 'api.example.test', 1000, strict).catch((e: unknown) => e)));
    expect(errors[0]).toBeInstanceOf(EgressError);
    expect(errors[0]).not.toBe(errors[1]);
    expect(errors.map((e) => (e as EgressError).message)).toEqual([(refusal as EgressError).message, (refusal as EgressError).message]);
    expect((refusal as EgressError).message).toMatch(/^ADDRESS_REFUSED: api\.example\.test → 127\.0\.0\.9: /);
    // The exemption is part of the verdict too.
    expect((await resolveAndVet(resolver, 'api.example.test', 1000, strict, true)).addresses).toEqual(['127.0.0.9', '10.1.2.3']);
  });

  test('an IP literal: never resolved, vetted once per vetter, by that vetter\'s rules', async () => {
    const refuse: Resolver = async () => {
      throw new Error('an IP literal must not be resolved');
    };
    let vets = 0;
    const counting = (policy: { allowCidrs: string[]; denyCidrs: string[] }) => {
      const v = new AddressVetter(policy, []);
      const vet = v.vet.bind(v);
      v.vet = (a: string) => {
        vets++;
        return vet(a);
      };
      return v;
    };
    const loose = counting({ allowCidrs: ['127.0.0.0/8'], denyCidrs: [] });
    for (let i = 0; i < 3; i++) expect((await resolveAndVet(refuse, '127.0.0.77', 1000, loose)).addresses).toEqual(['127.0.0.77']);
    expect((await resolveAndVet(refuse, '::1', 1000, loose).catch((e: unknown) => e as EgressError) as EgressError).code).toBe('ADDRESS_REFUSED');
    expect(vets).toBe(2);
    // A reload's vetter judges the same literal afresh; the first one's verdict still holds for it.
    const strict = counting({ allowCidrs: ['127.0.0.10/32'], denyCidrs: [] });
    expect(await codeOf(resolveAndVet(refuse, '127.0.0.77', 1000, strict))).toBe('ADDRESS_REFUSED');
    expect(await codeOf(resolveAndVet(refuse, '127.0.0.77', 1000, strict))).toBe('ADDRESS_REFUSED');
    expect((await resolveAndVet(refuse, '127.0.0.77', 1000, loose)).addresses).toEqual(['127.0.0.77']);
    expect(vets).toBe(4);
    // The exemption skips the vetter.
    expect((await resolveAndVet(refuse, '127.0.0.77', 1000, strict, true)).addresses).toEqual(['127.0.0.77']);
  });

  test('one answer array shared by two names: each refusal names its own host', async () => {
    const shared = [{ address: '10.9.9.9', family: 4 }];
    const resolver: Resolver = async () => shared;
    for (const host of ['a.example.test', 'b.example.test', 'a.example.test']) {
      const e = await resolveAndVet(resolver, host, 1000, vetter).catch((err: unknown) => err as EgressError);
      expect((e as EgressError).message).toMatch(new RegExp(`^ADDRESS_REFUSED: ${host.replace(/\./g, '\\.')} → 10\\.9\\.9\\.9: `));
    }
  });

  test('an expired or pending answer goes through the resolver within the DNS timeout', async () => {
    let release: (() => void) | undefined;
    const resolver = cachingResolver(() => new Promise((r) => {
      release = () => r(answer);
    }), 0);
    // Pending: nothing settled yet, and the timeout applies.
    expect(await codeOf(resolveAndVet(resolver, 'slow.example.test', 20, vetter))).toBe('DNS_TIMEOUT');
    release!();
    // A zero TTL: the answer is never "in hand".
    expect(resolver.settled!('slow.example.test')).toBeUndefined();
  });
});
