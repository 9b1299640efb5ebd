// Micro-benchmark: the proxy's route regexes (compileRegex, a JS RegExp) against re2js (a
// JavaScript port of RE2) on the route-match tables: both must agree on every case, then each
// engine's matching and compiling time per call is printed with the ratio. No I/O, bounded loops.
// Usage: npx projen bench:regex [iterations]   (default 100000)
// eslint-disable-next-line import/no-extraneous-dependencies
import { RE2JS } from 're2js';
import { compileRegex } from '../src/proxy/route-match';

/** Pattern, inputs: the compileRegex table of test/proxy/route-match.test.ts and route-shaped cases. */
const CASES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['/api/v[0-9]+', ['/api/v12', '/api/v12/users', 'x/api/v1']],
  ['.*\\.json', ['/a/b.json', '/a/bjson']],
  ['(?i)/Users/.*', ['/users/7', '/USERS/7']],
  ['(?s)a.b', ['a\nb', 'a\n\nb']],
  ['(?P<id>[0-9]+)', ['123', '12a']],
  ['\\A/x\\z', ['/x', '/xy']],
  ['[]a]+', [']a]', 'b']],
  ['[^]a]+', ['bcd', 'b]d']],
  ['a|b', ['a', 'ab']],
  ['\\d{3}', ['123', '12']],
  ['v1\\.0', ['v1.0', 'v1x0']],
  ['(?i)/Users/[a-f0-9]+', ['/users/ab12', '/USERS/AB12', '/users/xyz']],
  ['(?i)[^a-c]+', ['xyz', 'XYZ', 'abc']],
  // Route-shaped: paths, header values and gRPC names a real route matches.
  ['/repos/[^/]+/[^/]+/(issues|pulls)/[0-9]+', ['/repos/octo/hello-world/issues/1347', '/repos/octo/hello-world/commits/1']],
  ['/v1/(charges|customers|payment_intents)(/[A-Za-z0-9_]+)?', ['/v1/charges/ch_3MmlLrLkdIwHu7ix0snN0B15', '/v1/refunds/re_1']],
  ['application/(json|[a-z.+-]+\\+json)(;.*)?', ['application/json; charset=utf-8', 'text/html']],
  ['Bearer [A-Za-z0-9._~+/-]+=*', ['Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc', 'Basic dXNlcjpwYXNz']],
  ['pkg\\.v[0-9]+\\..*Service', ['pkg.v1.payments.PaymentService', 'other.v1.Service']],
  ['(Get|List)[A-Z][A-Za-z]*', ['GetUser', 'DeleteUser']],
];

function perCall(iterations: number, calls: number, run: () => void): number {
  const start = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - start) / (iterations * calls);
}

function main(): void {
  const iterations = Number(process.argv[2] ?? 100_000);
  const js = CASES.map(([p]) => compileRegex(p));
  const re2 = CASES.map(([p]) => RE2JS.compile(p));
  let disagreements = 0;
  CASES.forEach(([p, inputs], i) => {
    for (const s of inputs) {
      const a = js[i].test(s);
      const b = re2[i].matches(s);
      if (a !== b) {
        disagreements++;
        console.log(`disagree: ${JSON.stringify(p)} on ${JSON.stringify(s)}: RegExp ${a}, re2js ${b}`);
      }
    }
  });
  const calls = CASES.reduce((n, [, inputs]) => n + inputs.length, 0);
  let sink = 0;
  const rows: { engine: string; matchNs: number; compileNs: number }[] = [];
  for (let round = 0; round < 3; round++) {
    const jsNs = perCall(iterations, calls, () => {
      for (let k = 0; k < iterations; k++) CASES.forEach(([, inputs], i) => { for (const s of inputs) if (js[i].test(s)) sink++; });
    });
    const re2Ns = perCall(iterations, calls, () => {
      for (let k = 0; k < iterations; k++) CASES.forEach(([, inputs], i) => { for (const s of inputs) if (re2[i].matches(s)) sink++; });
    });
    const compileRounds = Math.max(1, Math.floor(iterations / 100));
    const jsCompileNs = perCall(compileRounds, CASES.length, () => {
      for (let k = 0; k < compileRounds; k++) for (const [p] of CASES) sink += compileRegex(p).source.length;
    });
    const re2CompileNs = perCall(compileRounds, CASES.length, () => {
      for (let k = 0; k < compileRounds; k++) for (const [p] of CASES) sink += RE2JS.compile(p).groupCount();
    });
    if (round > 0) { // the first round warms both engines up
      rows.push({ engine: 'RegExp (compileRegex)', matchNs: jsNs, compileNs: jsCompileNs });
      rows.push({ engine: 're2js', matchNs: re2Ns, compileNs: re2CompileNs });
    }
  }
  console.log(`${CASES.length} patterns, ${calls} inputs, ${iterations} iterations per round; disagreements: ${disagreements}`);
  for (const r of rows) console.log(`${r.engine.padEnd(22)} match ${r.matchNs.toFixed(0).padStart(6)} ns/call   compile ${r.compileNs.toFixed(0).padStart(7)} ns/pattern`);
  const avg = (engine: string, key: 'matchNs' | 'compileNs') => {
    const xs = rows.filter((r) => r.engine.startsWith(engine)).map((r) => r[key]);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  console.log(`re2js / RegExp: match ${(avg('re2js', 'matchNs') / avg('RegExp', 'matchNs')).toFixed(1)}x, compile ${(avg('re2js', 'compileNs') / avg('RegExp', 'compileNs')).toFixed(1)}x`);
  // A hostile input for a nested quantifier: re2js stays linear (RegExp is not run on it).
  const hostile = `${'a'.repeat(28)}!`;
  const t = process.hrtime.bigint();
  const nested = RE2JS.compile('(a+)+$').matches(hostile);
  console.log(`re2js on (a+)+$ with 28 a's and '!': ${nested}, ${(Number(process.hrtime.bigint() - t) / 1e3).toFixed(0)} µs`);
  if (sink < 0) console.log(sink);
  process.exitCode = disagreements === 0 ? 0 : 1;
}

main();
