// Address vetting: the built-in refusals, allow/deny lists and parent networks as a table, then
// end to end: a name resolving to a refused address is never dialled.
import { rawRequest, sample, scrape, startHttpsUpstream, startTestProxy, testConfig, testService, viaProxy, type TestProxy } from './helpers';
import { formatIp, tryParseIp } from '../../src/proxy/cidr';
import { AddressVetter, embeddedIpv4 } from '../../src/proxy/vet';

describe('AddressVetter', () => {
  const strict = new AddressVetter({ allowCidrs: [], denyCidrs: [] }, []);

  test.each([
    ['127.0.0.1', 'built-in-refusal'],
    ['0.0.0.0', 'built-in-refusal'],
    ['10.0.0.1', 'built-in-refusal'],
    ['172.16.5.4', 'built-in-refusal'],
    ['192.168.1.1', 'built-in-refusal'],
    ['169.254.169.254', 'built-in-refusal'],
    ['100.64.0.1', 'built-in-refusal'],
    ['192.0.0.8', 'built-in-refusal'],
    ['224.0.0.1', 'built-in-refusal'],
    ['240.0.0.1', 'built-in-refusal'],
    ['255.255.255.255', 'built-in-refusal'],
    ['::1', 'built-in-refusal'],
    ['::', 'built-in-refusal'],
    ['fe80::1', 'built-in-refusal'],
    ['fd00::1', 'built-in-refusal'],
    ['ff02::1', 'built-in-refusal'],
    ['::ffff:10.0.0.1', 'built-in-refusal'],
    ['::ffff:169.254.169.254', 'built-in-refusal'],
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address a translator dials.
    ['64:ff9b::a00:1', 'built-in-refusal'], // 10.0.0.1
    ['64:ff9b::a9fe:a9fe', 'built-in-refusal'], // 169.254.169.254
    ['64:ff9b::7f00:1', 'built-in-refusal'], // 127.0.0.1
    ['2002:c0a8:101::1', 'built-in-refusal'], // 192.168.1.1
    ['2002:a9fe:a9fe::', 'built-in-refusal'], // 169.254.169.254
    // Teredo (2001::/32) is refused as a whole by default.
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'built-in-refusal'], // RFC 4380's example: server 65.54.227.120, client 192.0.2.45
    ['2001:0:808:808:0:ffff:f7f7:f7f7', 'built-in-refusal'], // server and client 8.8.8.8
    ['not-an-ip', 'invalid-address'],
  ])('refuses %s (%s)', (address, reason) => {
    const v = strict.vet(address);
    expect(v.ok).toBe(false);
    expect(!v.ok && v.reason).toBe(reason);
  });

  test.each([
    '93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '8.8.8.8',
    '64:ff9b::808:808', // NAT64 for 8.8.8.8: public, as IPv6-only clusters reach the internet
    '2002:808:808::1', // 6to4 for 8.8.8.8
  ])('accepts public %s', (address) => {
    expect(strict.vet(address).ok).toBe(true);
  });

  test('embeddedIpv4 finds the Teredo server in clear and the client with every bit inverted', () => {
    const teredo = tryParseIp('2001:0:4136:e378:8000:63bf:3fff:fdd2')!;
    expect(embeddedIpv4(teredo).map(formatIp)).toEqual(['65.54.227.120', '192.0.2.45']);
    expect(embeddedIpv4(tryParseIp('2002:c0a8:101::1')!).map(formatIp)).toEqual(['192.168.1.1']);
    expect(embeddedIpv4(tryParseIp('64:ff9b::a9fe:a9fe')!).map(formatIp)).toEqual(['169.254.169.254']);
    // 2001:db8::/32 and 2001:4860::/32 are not Teredo.
    expect(embeddedIpv4(tryParseIp('2001:4860:4860::8888')!)).toEqual([]);
    expect(embeddedIpv4(tryParseIp('8.8.8.8')!)).toEqual([]);
  });

  describe('Teredo allowed by allowCidrs: its IPv4 server and client are vetted like NAT64 and 6to4', () => {
    const v = new AddressVetter({ allowCidrs: ['2001::/32'], denyCidrs: ['203.0.113.0/24'] }, []);
    // The client part is the bitwise inverse: 10.0.0.1 → f5ff:fffe, 169.254.169.254 → 5601:5601.
    test.each([
      ['2001:0:808:808:0:ffff:f5ff:fffe', 'client 10.0.0.1', 'built-in-refusal', '10.0.0.0/8'],
      ['2001:0:808:808:0:ffff:5601:5601', 'client 169.254.169.254', 'built-in-refusal', '169.254.0.0/16'],
      ['2001:0:808:808:0:ffff:80ff:fffe', 'client 127.0.0.1', 'built-in-refusal', '127.0.0.0/8'],
      ['2001:0:a00:1:0:ffff:f7f7:f7f7', 'server 10.0.0.1', 'built-in-refusal', '10.0.0.0/8'],
      ['2001:0:808:808:0:ffff:34ff:8ef8', 'client 203.0.113.7 (denyCidrs)', 'deny-cidr', '203.0.113.0/24'],
    ])('%s (%s) is refused', (address, _what, reason, matched) => {
      expect(v.vet(address)).toMatchObject({ ok: false, reason, matched });
    });

    test('public server and client: allowed', () => {
      expect(v.vet('2001:0:808:808:0:ffff:f7f7:f7f7')).toEqual({ ok: true, address: '2001:0:808:808:0:ffff:f7f7:f7f7', family: 6 });
    });
  });

  test('an IPv4-mapped address is dialled as plain IPv4', () => {
    const v = new AddressVetter({ allowCidrs: ['10.20.0.0/16'], denyCidrs: [] }, []).vet('::ffff:10.20.1.1');
    expect(v).toEqual({ ok: true, address: '10.20.1.1', family: 4 });
  });

  test('denyCidrs and allowCidrs apply to the IPv4 address inside a NAT64 address too', () => {
    const v = new AddressVetter({ allowCidrs: ['10.20.0.0/16'], denyCidrs: ['8.8.8.0/24'] }, []);
    expect(v.vet('64:ff9b::a14:101')).toEqual({ ok: true, address: '64:ff9b::a14:101', family: 6 }); // 10.20.1.1
    expect(v.vet('64:ff9b::808:808')).toMatchObject({ ok: false, reason: 'deny-cidr', matched: '8.8.8.0/24' });
  });

  test('allowCidrs lift a built-in refusal; denyCidrs win over allowCidrs', () => {
    const v = new AddressVetter({ allowCidrs: ['10.20.0.0/16'], denyCidrs: ['10.20.9.0/24', '8.8.8.0/24'] }, []);
    expect(v.vet('10.20.1.1').ok).toBe(true);
    expect(v.vet('10.21.1.1')).toMatchObject({ ok: false, reason: 'built-in-refusal', matched: '10.0.0.0/8' });
    expect(v.vet('10.20.9.9')).toMatchObject({ ok: false, reason: 'deny-cidr', matched: '10.20.9.0/24' });
    expect(v.vet('8.8.8.8')).toMatchObject({ ok: false, reason: 'deny-cidr' });
  });

  test('ReportOnly networks: allowed but flagged; SSRF refusals still apply', () => {
    const v = new AddressVetter({ allowCidrs: [], denyCidrs: [] }, [{ cidr: '1.1.1.0/24', except: [] }], true);
    expect(v.vet('8.8.8.8')).toEqual({ ok: true, address: '8.8.8.8', family: 4, wouldRefuse: 'outside-networks' });
    expect(v.vet('10.0.0.1')).toMatchObject({ ok: false, reason: 'built-in-refusal' });
  });

  describe('parent networks, with the built-in refusals lifted for the ranges the table uses', () => {
    const networks = [
      { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] },
      { cidr: '10.20.0.0/16', except: [] },
      { cidr: '2001:db8::/32', except: ['2001:db8:dead::/48'] },
    ];
    const allowCidrs = ['10.0.0.0/8', '192.168.0.0/16', '203.0.113.0/24', '2001:db8::/32'];
    const v = new AddressVetter({ allowCidrs, denyCidrs: [] }, networks);
    const reportOnly = new AddressVetter({ allowCidrs, denyCidrs: [] }, networks, true);

    test.each([
      ['203.0.113.9', true, undefined],
      ['10.1.2.3', false, 'network-except'],
      ['10.20.1.1', true, undefined], // excepted by one network, admitted by another
      ['::ffff:192.168.1.1', false, 'network-except'],
      ['2001:db8::1', true, undefined],
      ['2001:db8:dead::1', false, 'network-except'],
      ['2001:4860::8888', false, 'outside-networks'],
      ['not-an-ip', false, 'invalid-address'],
    ])('%s → ok %s (%s)', (ip, ok, reason) => {
      const verdict = v.vet(ip);
      expect(verdict.ok).toBe(ok);
      if (!verdict.ok) expect(verdict.reason).toBe(reason);
      const flagged = reportOnly.vet(ip);
      if (reason === 'invalid-address') expect(flagged).toMatchObject({ ok: false, reason });
      else expect(flagged.ok && flagged.wouldRefuse).toBe(reason ?? undefined);
    });
  });

  test('parent networks: inside a network and not in its except, else refused', () => {
    const v = new AddressVetter({ allowCidrs: [], denyCidrs: [] }, [{ cidr: '203.0.0.0/8', except: ['203.0.113.0/24'] }, { cidr: '1.1.1.0/24', except: [] }]);
    expect(v.vet('1.1.1.1').ok).toBe(true);
    expect(v.vet('203.1.2.3').ok).toBe(true);
    expect(v.vet('203.0.113.5')).toMatchObject({ ok: false });
    expect(v.vet('8.8.8.8')).toMatchObject({ ok: false, reason: 'outside-networks' });
  });
});

describe('address refusal end to end', () => {
  let tp: TestProxy | undefined;
  afterEach(async () => {
    await tp?.proxy.close();
    tp = undefined;
  });

  test.each([
    ['10.0.0.1'], ['169.254.169.254'], ['100.64.0.1'], ['::ffff:10.0.0.1'], ['fe80::1'], ['127.0.0.1'], ['64:ff9b::a9fe:a9fe'],
    ['2001:0:808:808:0:ffff:f7f7:f7f7'], // Teredo, public server and client: refused as a whole
  ])('a name resolving to %s gets 403 ADDRESS_REFUSED and is never dialled', async (address) => {
    // No allowCidrs here: loopback is refused like any private range.
    tp = await startTestProxy(testConfig({ addressPolicy: { allowCidrs: [] } }), { 'evil.test.example': address });
    const r = await viaProxy(tp.proxy.ports.http, 'evil.test.example.egress.local', '/');
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-error']).toBe('ADDRESS_REFUSED');
    expect(tp.resolver.calls).toEqual(['evil.test.example']);
    expect(tp.dialer.calls).toEqual([]);
  });

  test('Teredo allowed by allowCidrs, leading to a metadata address: 403 ADDRESS_REFUSED, never dialled', async () => {
    tp = await startTestProxy(testConfig({ addressPolicy: { allowCidrs: ['2001::/32'] } }), { 'teredo.test.example': '2001:0:808:808:0:ffff:5601:5601' });
    const r = await viaProxy(tp.proxy.ports.http, 'teredo.test.example.egress.local', '/');
    expect(r.status).toBe(403);
    expect(r.headers['x-egress-error']).toBe('ADDRESS_REFUSED');
    expect(tp.dialer.calls).toEqual([]);
  });

  test('IP literals in absolute-form requests are vetted too', async () => {
    tp = await startTestProxy(testConfig({ addressPolicy: { allowCidrs: [] } }));
    const r = await rawRequest(tp.proxy.ports.http, { path: 'http://169.254.169.254/latest/meta-data/', headers: { host: '169.254.169.254' } });
    expect(r.status).toBe(403);
    expect(tp.dialer.calls).toEqual([]);
    expect(tp.resolver.calls).toEqual([]);
  });

  test('mixed answers: refused addresses are skipped, vetted ones dialled', async () => {
    tp = await startTestProxy(testConfig({ addressPolicy: { allowCidrs: ['127.0.0.0/8'] } }), { 'mixed.test.example': ['10.0.0.1', '127.0.0.1'] });
    await viaProxy(tp.proxy.ports.http, 'mixed.test.example.egress.local', '/');
    expect(tp.dialer.calls.map((c) => c.address)).toEqual(['127.0.0.1']);
    expect(tp.dialer.refused).toEqual([]);
  });

  test('ReportOnly parent: an address outside its networks is dialled and counted as a would-be refusal', async () => {
    const upstream = await startHttpsUpstream();
    try {
      tp = await startTestProxy(testConfig({
        parent: { name: 'p', namespace: 'n', trafficPolicy: 'Allow', mode: 'ReportOnly', networks: [{ cidr: '203.0.113.0/24', except: [] }] },
        externalServices: [testService('api', 'api.test.example', { ports: [{ port: 80, targetPort: upstream.port }] })],
      }), { 'api.test.example': '127.0.0.1' });
      const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/');
      expect(r.status).toBe(200);
      const m = await scrape(tp.proxy.ports.admin);
      expect(sample(m, 'egress_address_refusals_total', { reason: 'report-only:outside-networks' })).toBe(1);
    } finally {
      await upstream.close();
    }
  });

  test('an address outside the parent networks is refused', async () => {
    tp = await startTestProxy(testConfig({
      parent: { name: 'p', namespace: 'n', trafficPolicy: 'Allow', networks: [{ cidr: '203.0.113.0/24', except: [] }] },
    }), { 'api.test.example': '127.0.0.1' });
    const r = await viaProxy(tp.proxy.ports.http, 'api.test.example.egress.local', '/');
    expect(r.status).toBe(403);
    expect(tp.dialer.calls).toEqual([]);
  });
});
