// Names: the Kubernetes name rules (RFC 1123 label and subdomain) with their one wording, and the
// host names the proxy matches (which also take '_').
import {
  dnsLabelProblem, dnsSubdomainProblem, isDnsLabel, isDnsLabelAt, isDnsSubdomain, isDnsSubdomainAt, isHostName, isHostPattern,
  suggestDnsLabel, suggestDnsSubdomain,
} from '../../src/model/names';

describe('Kubernetes names', () => {
  test.each([
    ['egress', true], ['a', true], ['a-1', true], ['x'.repeat(63), true],
    ['x'.repeat(64), false], ['-a', false], ['a-', false], ['A', false], ['a.b', false], ['a_b', false], ['', false],
  ])('isDnsLabel(%p) = %p', (value, ok) => {
    expect(isDnsLabel(value)).toBe(ok);
    expect(dnsLabelProblem(value) === undefined).toBe(ok);
  });

  test.each([
    ['egress', true], ['a.b-c.d', true], [`${'x'.repeat(63)}.${'y'.repeat(63)}`, true], [Array(127).fill('a').join('.'), true],
    ['x'.repeat(80), true], // Kubernetes bounds the whole name, not each part
    [Array(128).fill('a').join('.'), false], ['a..b', false], ['.a', false], ['a.', false], ['My_Secret', false], ['', false],
  ])('isDnsSubdomain(%p) = %p', (value, ok) => {
    expect(isDnsSubdomain(value)).toBe(ok);
    expect(dnsSubdomainProblem(value) === undefined).toBe(ok);
  });

  test('the range forms check a part of a string in place (identity parsing)', () => {
    const identity = 'billing.payments.serviceaccount.identity.linkerd.cluster.local';
    expect(isDnsSubdomainAt(identity, 0, 7)).toBe(true);
    expect(isDnsLabelAt(identity, 8, 16)).toBe(true);
    expect(isDnsLabelAt(identity, 7, 16)).toBe(false); // starts at the '.'
    expect(isDnsLabelAt(identity, 8, 8)).toBe(false); // empty
    expect(isDnsSubdomainAt('a..b', 0, 4)).toBe(false);
  });

  test('non-strings are neither', () => {
    expect(isDnsLabel(3)).toBe(false);
    expect(isDnsSubdomain(undefined)).toBe(false);
    expect(dnsLabelProblem(undefined)?.fix).toBe('use e.g. "egress"');
  });

  test('one wording: the rule names what the value is for, the fix a repaired name', () => {
    expect(dnsLabelProblem('Egress.Test', { what: 'a namespace' })).toEqual({
      rule: 'is not a DNS label (a namespace: lower-case letters, digits and "-", at most 63 characters)',
      fix: 'use e.g. "egress-test"',
    });
    expect(dnsLabelProblem('My Service')).toEqual({
      rule: 'is not a DNS label (lower-case letters, digits and "-", at most 63 characters)',
      fix: 'use e.g. "my-service"',
    });
    expect(dnsSubdomainProblem('All_Egress..Net', { what: 'a Kubernetes object name' })).toEqual({
      rule: 'is not a DNS subdomain (a Kubernetes object name: lower-case letters, digits, "-" and ".", at most 253 characters)',
      fix: 'use e.g. "all-egress.net"',
    });
    expect(dnsLabelProblem('x', { fix: 'use "monitoring"' })).toBeUndefined();
    expect(dnsLabelProblem('X', { fix: 'use "monitoring"' })?.fix).toBe('use "monitoring"');
  });

  test('suggestions are valid names', () => {
    for (const s of ['Proxy.Svc', '--A__b--', 'x'.repeat(80), 'Api_Config', '...a...b...']) {
      expect(isDnsLabel(suggestDnsLabel(s))).toBe(true);
      expect(isDnsSubdomain(suggestDnsSubdomain(s))).toBe(true);
    }
    expect(suggestDnsLabel('Proxy.Svc')).toBe('proxy-svc');
    expect(suggestDnsSubdomain('Proxy.Svc')).toBe('proxy.svc');
  });
});

describe('host names the proxy matches', () => {
  test.each([
    ['api.github.com', true], ['a', true], ['xn--bcher-kva.example', true], ['-bad.example', false], ['bad-.example', false],
    ['a..b', false], ['under_score.example', true], ['_dmarc.example', true], ['a_.example', true],
    ['bücher.example', false], ['a b.example', false], ['a!b.example', false], ['', false], [`${'a'.repeat(64)}.example`, false], ['UPPER.example', false],
  ])('isHostName(%s) = %s', (name, ok) => {
    expect(isHostName(name)).toBe(ok);
  });

  test.each([
    ['*.example.com', true], ['api.example.com', true], ['*.under_score.example', true],
    ['*', false], ['a.*.example.com', false], ['**.example.com', false], ['*example.com', false],
  ])('isHostPattern(%s) = %s', (pattern, ok) => {
    expect(isHostPattern(pattern)).toBe(ok);
  });
});
