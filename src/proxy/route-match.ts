// Gateway API request matching and rule filters as pure functions: path, header, query and gRPC
// matchers (compiled once), RE2-style regexes, header modifiers and redirect Location building.
//
// API (stable):
//   compileRegex(pattern): RegExp                              full-match, RE2 subset (RE2 checks the syntax); throws RegexSyntaxError
//   class RegexSyntaxError extends Error { pattern }
//   pathMatchesPrefix(path, prefix): boolean                    by path element ('/get' ≠ '/getter')
//   pathMatchesExact(path, value): boolean
//   compilePathMatch(spec?): CompiledPathMatch                  undefined spec = PathPrefix '/'
//   pathMatches(m, path): boolean
//   compileValueMatches(specs, caseInsensitiveNames): CompiledValueMatch[]   first of equal names wins
//   valueMatches(m, actual): boolean
//   headerValue(headers, lowerName): string | undefined         joins repeated values with ', '
//   headersMatch(ms, headers): boolean
//   parseQuery(query): ReadonlyMap<string, string>              first value of a repeated name wins
//   queryMatches(ms, params): boolean
//   parseGrpcPath(path): { service, method } | undefined        '/pkg.Svc/Method'
//   compileGrpcMethodMatch(spec?): CompiledGrpcMethodMatch
//   grpcMethodMatches(m, service, method): boolean
//   normalizePath(path, encodedDots?): string | undefined       RFC 3986 dot-segment removal; undefined if it escapes '/'
//   ambiguousPath(path): AmbiguousPathKind | undefined          '%2F', '%5C', '\\', '%2e%2e', '..;' read differently by servers
//   unescapeAmbiguousPath(path): string                         those decoded, for normalizePath()
//   applyHeaderModifier(headers, spec): HeaderRecord            new record, lower-case names
//   redirectLocation(request, spec, matchedPrefix?): string     Location header value
//   replacePrefixMatch(path, prefix, replacement): string
// Bundled into the proxy by esbuild; the construct library never loads it.
// eslint-disable-next-line import/no-extraneous-dependencies
import { RE2JS } from 're2js';
import type { HeaderModifierSpec, RequestRedirectSpec, RouteMatchSpec, ValueMatchSpec } from '../model/proxy-config';

/** Header maps as Node and undici hand them over. */
export type HeaderRecord = Readonly<Record<string, string | readonly string[] | undefined>>;

/* ------------------------------------------------------------------------- regexes */

export class RegexSyntaxError extends Error {
  public readonly pattern: string;
  constructor(pattern: string, detail: string) {
    super(`regular expression ${JSON.stringify(pattern)} is not supported: ${detail}`);
    this.name = 'RegexSyntaxError';
    this.pattern = pattern;
  }
}

const KNOWN_ESCAPES = new Set(['f', 't', 'n', 'r', 'v', 'd', 'D', 's', 'S', 'w', 'W', 'b', 'B']);

/**
 * Compile a Gateway API regular expression (RE2 syntax, which Envoy and Linkerd use) into a JS
 * RegExp that must match the whole input. Accepted beyond JS syntax: a leading `(?i)` / `(?s)` /
 * `(?is)` flag group, `(?P<name>...)`, `\A` and `\z`. Refused with a clear error, because RE2 has no
 * such thing and accepting them would make the same route behave differently elsewhere:
 * backreferences, lookaround, `\Q...\E`, POSIX classes, `\p{..}`, other inline flags.
 *
 * RE2 guarantees linear time and V8's default engine does not: `(a+)+$` against 30 hostile
 * characters blocks the event loop for minutes. The refusals above are exactly what V8's linear
 * engine cannot run, and `(?i)` is compiled to explicit ASCII case classes ('a' → [aA]) instead
 * of the `i` flag, which that engine also lacks, so with the process flag
 * `--enable-experimental-regexp-engine-on-excessive-backtracks` (or
 * v8.setFlagsFromString with it, at startup) a runaway match falls back to linear time.
 * Case folding is ASCII only.
 */
export function compileRegex(pattern: string): RegExp {
  let body = pattern;
  let flags = '';
  let fold = false;
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(body);
  if (lead) {
    for (const f of lead[1]) {
      if (f === 'i') fold = true;
      else if (f === 's') flags = 's';
      else throw new RegexSyntaxError(pattern, `inline flag "${f}" is not supported (only i and s)`);
    }
    body = body.slice(lead[0].length);
  }
  let out = '';
  let i = 0;
  /** Read one escape at body[i] === '\\'; returns its JS text and advances i. */
  const escape = (inClass: boolean): string => {
    const n = body[i + 1];
    if (n === undefined) throw new RegexSyntaxError(pattern, 'trailing backslash');
    if (/[1-9]/.test(n)) throw new RegexSyntaxError(pattern, `backreference \\${n} (RE2 has none)`);
    if (n === 'k' && body[i + 2] === '<') throw new RegexSyntaxError(pattern, 'named backreference (RE2 has none)');
    if (n === 'Q') throw new RegexSyntaxError(pattern, '\\Q...\\E literals; escape the characters instead');
    if (n === 'p' || n === 'P') throw new RegexSyntaxError(pattern, 'Unicode classes \\p{...}');
    i += 2;
    if (!inClass && n === 'A') return '^';
    if (!inClass && n === 'z') return '$';
    if (n === 'a') return '\\x07';
    if (n === 'x') {
      const hex = body.slice(i, i + 2);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new RegexSyntaxError(pattern, '\\x needs two hex digits (\\x{...} is not supported)');
      i += 2;
      return `\\x${hex}`;
    }
    if (/[0-9a-zA-Z]/.test(n) && !KNOWN_ESCAPES.has(n)) {
      // JS would read an unknown letter escape as the letter itself; RE2 rejects it.
      throw new RegexSyntaxError(pattern, `unknown escape \\${n}`);
    }
    return `\\${n}`;
  };
  while (i < body.length) {
    const c = body[i];
    if (c === '\\') {
      out += escape(false);
    } else if (c === '[') {
      out += readClass();
    } else if (c === '(' && body[i + 1] === '?') {
      const rest = body.slice(i + 2);
      if (rest.startsWith('=') || rest.startsWith('!') || rest.startsWith('<=') || rest.startsWith('<!')) {
        throw new RegexSyntaxError(pattern, 'lookaround assertions (RE2 has none)');
      }
      if (rest.startsWith(':')) {
        out += '(?:';
        i += 3;
      } else if (rest.startsWith('<') || rest.startsWith('P<')) {
        // Named group: the name is copied as written, never case-folded.
        const nameStart = i + 2 + (rest.startsWith('P') ? 2 : 1);
        const close = body.indexOf('>', nameStart);
        if (close === -1) throw new RegexSyntaxError(pattern, 'unterminated group name');
        out += `(?<${body.slice(nameStart, close)}>`;
        i = close + 1;
      } else {
        throw new RegexSyntaxError(pattern, 'inline flags are only supported at the start, as (?i) or (?s)');
      }
    } else {
      out += fold && /[a-zA-Z]/.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c;
      i++;
    }
  }
  let compiled: RegExp;
  try {
    compiled = new RegExp(`^(?:${out})$`, flags);
  } catch (e) {
    throw new RegexSyntaxError(pattern, (e as Error).message.replace(/^Invalid regular expression: /, ''));
  }
  // RE2 itself is the last word on syntax: a pattern the translation above lets through but RE2
  // refuses (a repeat over 1000, a class range ending in \d, \b in a class) would be refused by
  // Linkerd and Envoy, so it is refused here too (about 15 µs per pattern, at config load).
  // Matching stays on the RegExp: 7.7 times faster than re2js on the route tables, with the same
  // verdicts there (bench/regex-engines.ts).
  try {
    RE2JS.compile(pattern);
  } catch (e) {
    throw new RegexSyntaxError(pattern, `RE2 refuses it (${(e as Error).message})`);
  }
  return compiled;

  /** Read a character class at body[i] === '['; with (?i), add the other case of every letter. */
  function readClass(): string {
    i++;
    let text = '[';
    if (body[i] === '^') {
      text += '^';
      i++;
    }
    const extra: string[] = [];
    let first = true;
    for (;;) {
      if (i >= body.length) throw new RegexSyntaxError(pattern, 'unterminated character class');
      const c = body[i];
      // A ']' first in the class is a literal in RE2; in JS it would close the class.
      if (c === ']' && !first) {
        i++;
        return `${text}${extra.join('')}]`;
      }
      first = false;
      if (c === '[' && body[i + 1] === ':') throw new RegexSyntaxError(pattern, 'POSIX classes like [[:alpha:]]; use a range such as [a-zA-Z]');
      if (c === '\\') {
        text += escape(true);
        continue;
      }
      let lo = c.charCodeAt(0);
      let hi = lo;
      text += c === ']' || c === '[' ? `\\${c}` : c;
      i++;
      if (body[i] === '-' && body[i + 1] !== undefined && body[i + 1] !== ']' && body[i + 1] !== '\\') {
        hi = body.charCodeAt(i + 1);
        text += `-${body[i + 1] === '[' ? '\\[' : body[i + 1]}`;
        i += 2;
      }
      if (fold) extra.push(...otherCase(lo, hi));
    }
  }
}

/** The ASCII letters of lo..hi in the other case, as class items. */
function otherCase(lo: number, hi: number): string[] {
  const out: string[] = [];
  const add = (from: number, to: number, shift: number) => {
    const a = Math.max(lo, from);
    const b = Math.min(hi, to);
    if (a > b) return;
    out.push(a === b ? String.fromCharCode(a + shift) : `${String.fromCharCode(a + shift)}-${String.fromCharCode(b + shift)}`);
  };
  add(65, 90, 32); // A-Z → a-z
  add(97, 122, -32); // a-z → A-Z
  return out;
}

/* ------------------------------------------------------------------------- paths */

/**
 * Gateway API PathPrefix: matches whole path elements, and a trailing '/' on the prefix is
 * ignored, so '/abc' matches '/abc', '/abc/' and '/abc/def' but not '/abcd'.
 */
export function pathMatchesPrefix(path: string, prefix: string): boolean {
  const p = trimTrailingSlash(prefix);
  if (p === '') return path.startsWith('/');
  if (!path.startsWith(p)) return false;
  return path.length === p.length || path.charCodeAt(p.length) === 47; /* '/' */
}

export function pathMatchesExact(path: string, value: string): boolean {
  return path === value;
}

function trimTrailingSlash(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 47) end--;
  return end === s.length ? s : s.slice(0, end);
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';

export interface CompiledPathMatch {
  readonly type: PathMatchType;
  /** The value as written (used for precedence by length). */
  readonly value: string;
  /** PathPrefix: the value without trailing slashes ('' for '/'). */
  readonly prefix: string;
  readonly regex?: RegExp;
}

/** Compile a path match; an absent one is Gateway API's default PathPrefix '/'. Throws RegexSyntaxError. */
export function compilePathMatch(spec?: RouteMatchSpec['path']): CompiledPathMatch {
  const type = spec?.type ?? 'PathPrefix';
  const value = spec?.value ?? '/';
  return {
    type,
    value,
    prefix: type === 'PathPrefix' ? trimTrailingSlash(value) : value,
    regex: type === 'RegularExpression' ? compileRegex(value) : undefined,
  };
}

export function pathMatches(m: CompiledPathMatch, path: string): boolean {
  switch (m.type) {
    case 'Exact': return path === m.value;
    case 'PathPrefix':
      if (m.prefix === '') return true;
      return path.startsWith(m.prefix) && (path.length === m.prefix.length || path.charCodeAt(m.prefix.length) === 47);
    case 'RegularExpression': return m.regex!.test(path);
  }
}

/**
 * Remove '.' and '..' segments (RFC 3986 §5.2.4) so that '/get/../admin' cannot pass a '/get'
 * prefix rule and then reach '/admin' upstream. Listeners should match AND forward the result.
 * Returns undefined when '..' would climb above the root, or the path does not start with '/'.
 * '%2e' counts as a dot, as WHATWG URL parsing (and so many servers) treat it; an encoded slash
 * ('%2f') is data, not structure, and is left alone.
 */
export function normalizePath(path: string, encodedDots = true): string | undefined {
  if (!path.startsWith('/')) return undefined;
  if (!path.includes('/.') && (!encodedDots || !/\/%2e/i.test(path))) return path; // fast path: nothing to resolve
  const out: string[] = [];
  const segs = path.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    const dots = encodedDots ? dotSegment(s) : s === '.' ? 1 : s === '..' ? 2 : 0;
    if (dots === 1) {
      if (last) out.push('');
    } else if (dots === 2) {
      if (out.length === 0) return undefined;
      out.pop();
      if (last) out.push('');
    } else {
      out.push(s);
    }
  }
  return '/' + out.join('/');
}

/**
 * What makes a path ambiguous: servers disagree on whether it is a separator or a dot segment.
 * - 'encoded-slash' / 'encoded-backslash': `%2F` / `%5C` (any case), decoded into separators by some
 * - 'backslash': a raw `\`, a separator to Windows servers
 * - 'encoded-dot-segment': `%2e%2e`, `.%2e`, `%2e` as a whole segment
 * - 'dot-segment-parameter': a `;` parameter on a dot segment (`..;`, `.;x`), a dot segment to Tomcat
 */
export type AmbiguousPathKind = 'encoded-slash' | 'encoded-backslash' | 'backslash' | 'encoded-dot-segment' | 'dot-segment-parameter';

const MAYBE_AMBIGUOUS = /[%;\\]/;

/** The first thing that makes `path` ambiguous (see AmbiguousPathKind), or undefined. One regex test for ordinary paths. */
export function ambiguousPath(path: string): AmbiguousPathKind | undefined {
  if (!MAYBE_AMBIGUOUS.test(path)) return undefined;
  if (/%2f/i.test(path)) return 'encoded-slash';
  if (/%5c/i.test(path)) return 'encoded-backslash';
  if (path.includes('\\')) return 'backslash';
  for (const seg of path.split('/')) {
    const semi = seg.indexOf(';');
    const bare = semi < 0 ? seg : seg.slice(0, semi);
    if (dotSegment(bare) === 0) continue;
    if (semi >= 0) return 'dot-segment-parameter';
    if (bare.includes('%')) return 'encoded-dot-segment';
  }
  return undefined;
}

/**
 * The reading of an ambiguous path that treats every candidate as structure: `%2F`, `%5C` and
 * `\` become '/', a dot segment loses its `;` parameters and its `%2e` escapes. Pass the result
 * to normalizePath(). Other escapes and parameters are data and stay as they are.
 */
export function unescapeAmbiguousPath(path: string): string {
  const unslashed = path.replace(/%2f|%5c|\\/gi, '/');
  const segs = unslashed.split('/');
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const semi = seg.indexOf(';');
    const dots = dotSegment(semi < 0 ? seg : seg.slice(0, semi));
    if (dots > 0) segs[i] = dots === 1 ? '.' : '..';
  }
  return segs.join('/');
}

/** 1 for '.', 2 for '..' (either possibly written '%2e'), else 0. */
function dotSegment(s: string): number {
  if (s.length === 0 || s.length > 6) return 0;
  const t = s.toLowerCase().replace(/%2e/g, '.');
  return t === '.' ? 1 : t === '..' ? 2 : 0;
}

/* ------------------------------------------------------------------------- headers and query */

export interface CompiledValueMatch {
  /** Header names are lower case; query names as written. */
  readonly name: string;
  readonly exact?: string;
  readonly regex?: RegExp;
}

/**
 * Compile header or query matches. When two entries name the same header (case-insensitively for
 * headers, exactly for query params) only the first counts, as Gateway API requires.
 * Throws RegexSyntaxError.
 */
export function compileValueMatches(specs: readonly ValueMatchSpec[], caseInsensitiveNames: boolean): CompiledValueMatch[] {
  const seen = new Set<string>();
  const out: CompiledValueMatch[] = [];
  for (const s of specs) {
    const name = caseInsensitiveNames ? s.name.toLowerCase() : s.name;
    if (seen.has(name)) continue;
    seen.add(name);
    out.push(s.type === 'RegularExpression' ? { name, regex: compileRegex(s.value) } : { name, exact: s.value });
  }
  return out;
}

export function valueMatches(m: CompiledValueMatch, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  return m.regex ? m.regex.test(actual) : actual === m.exact;
}

/** A header's value; repeated headers are combined with ', ' as RFC 9110 §5.3 allows. */
export function headerValue(headers: HeaderRecord | undefined, lowerName: string): string | undefined {
  const v = headers?.[lowerName];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(', ');
}

export function headersMatch(ms: readonly CompiledValueMatch[], headers: HeaderRecord | undefined): boolean {
  for (const m of ms) if (!valueMatches(m, headerValue(headers, m.name))) return false;
  return true;
}

function decodeComponent(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // malformed escapes are kept verbatim rather than failing the request
  }
}

/**
 * Parse a raw query string (without '?'). Percent-escapes are decoded; '+' stays '+' (RFC 3986
 * query, not form encoding). A repeated name keeps its first value, as Envoy does. A name without
 * '=' has the empty value.
 */
export function parseQuery(query: string | undefined): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  if (!query) return out;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeComponent(eq === -1 ? part : part.slice(0, eq));
    if (out.has(name)) continue;
    out.set(name, eq === -1 ? '' : decodeComponent(part.slice(eq + 1)));
  }
  return out;
}

export function queryMatches(ms: readonly CompiledValueMatch[], params: ReadonlyMap<string, string>): boolean {
  for (const m of ms) if (!valueMatches(m, params.get(m.name))) return false;
  return true;
}

/* ------------------------------------------------------------------------- gRPC */

/** '/pkg.Service/Method' → { service: 'pkg.Service', method: 'Method' }; undefined otherwise. */
export function parseGrpcPath(path: string | undefined): { service: string; method: string } | undefined {
  if (!path || path.charCodeAt(0) !== 47) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash <= 1 || slash === path.length - 1 || path.indexOf('/', slash + 1) !== -1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}

export interface CompiledGrpcMethodMatch {
  readonly type: 'Exact' | 'RegularExpression';
  readonly service?: string;
  readonly method?: string;
  readonly serviceRegex?: RegExp;
  readonly methodRegex?: RegExp;
}

/** An absent spec matches every service and method. Throws RegexSyntaxError. */
export function compileGrpcMethodMatch(spec?: RouteMatchSpec['grpcMethod']): CompiledGrpcMethodMatch {
  if (!spec) return { type: 'Exact' };
  const type = spec.type ?? 'Exact';
  if (type === 'Exact') return { type, service: spec.service || undefined, method: spec.method || undefined };
  return {
    type,
    service: spec.service || undefined,
    method: spec.method || undefined,
    serviceRegex: spec.service ? compileRegex(spec.service) : undefined,
    methodRegex: spec.method ? compileRegex(spec.method) : undefined,
  };
}

export function grpcMethodMatches(m: CompiledGrpcMethodMatch, service: string, method: string): boolean {
  if (m.type === 'Exact') {
    return (m.service === undefined || m.service === service) && (m.method === undefined || m.method === method);
  }
  return (!m.serviceRegex || m.serviceRegex.test(service)) && (!m.methodRegex || m.methodRegex.test(method));
}

/* ------------------------------------------------------------------------- filters */

/**
 * Apply a RequestHeaderModifier or ResponseHeaderModifier: returns a new record with lower-case
 * names (input names of any case are folded). Order, as Envoy applies it: remove, then set
 * (replaces every value), then add (appends: 'a' + 'b' gives 'a,b'; arrays such as set-cookie
 * get an element).
 */
export function applyHeaderModifier(headers: HeaderRecord, spec: HeaderModifierSpec): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of Object.keys(headers)) {
    const v = headers[key];
    if (v === undefined) continue;
    const name = key.toLowerCase();
    const prev = out[name];
    const value = typeof v === 'string' ? v : [...v];
    if (prev === undefined) out[name] = value;
    else out[name] = [...(typeof prev === 'string' ? [prev] : prev), ...(typeof value === 'string' ? [value] : value)];
  }
  for (const name of spec.remove) delete out[name.toLowerCase()];
  for (const { name, value } of spec.set) out[name.toLowerCase()] = value;
  for (const { name, value } of spec.add) {
    const key = name.toLowerCase();
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (typeof prev === 'string') out[key] = `${prev},${value}`;
    else out[key] = [...prev, value];
  }
  return out;
}

/**
 * ReplacePrefixMatch by path element: '/foo/bar' with prefix '/foo' and replacement '/xyz'
 * becomes '/xyz/bar'; trailing slashes on prefix and replacement are ignored; an empty result is '/'.
 */
export function replacePrefixMatch(path: string, prefix: string, replacement: string): string {
  const p = trimTrailingSlash(prefix);
  const rest = pathMatchesPrefix(path, p === '' ? '/' : p) ? path.slice(p.length) : path;
  let result = trimTrailingSlash(replacement) + rest;
  if (result === '') result = '/';
  if (!result.startsWith('/')) result = '/' + result;
  return result;
}

/** What redirectLocation needs to know about the request. A decide() Target fits. */
export interface RedirectRequest {
  /** Host the client asked for (the Host header without port); pass the name the client used. */
  readonly host: string;
  /** The listener (parent) port the client addressed. */
  readonly port: number;
  readonly path?: string;
  /** Raw query without '?'; kept in the Location. */
  readonly query?: string;
  /** Scheme the client used. @default 'http' */
  readonly scheme?: 'http' | 'https';
}

const WELL_KNOWN_PORT: Record<'http' | 'https', number> = { http: 80, https: 443 };

/**
 * The Location for a RequestRedirect filter, per Gateway API: scheme defaults to the request's;
 * port is the filter's, else the new scheme's well-known port when the filter sets a scheme, else
 * the listener port; the port is left out when it is the scheme's well-known one. Path:
 * ReplaceFullPath replaces it, ReplacePrefixMatch replaces `matchedPrefix` (default '/'). The
 * query is kept. The status code is spec.statusCode (the caller sends it).
 */
export function redirectLocation(request: RedirectRequest, spec: RequestRedirectSpec, matchedPrefix?: string): string {
  const scheme = spec.scheme ?? request.scheme ?? 'http';
  const port = spec.port ?? (spec.scheme ? WELL_KNOWN_PORT[spec.scheme] : request.port);
  const host = spec.hostname ?? request.host;
  const hostText = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const authority = port === WELL_KNOWN_PORT[scheme] ? hostText : `${hostText}:${port}`;
  let path = request.path ?? '/';
  if (spec.path?.type === 'ReplaceFullPath') path = spec.path.value;
  else if (spec.path?.type === 'ReplacePrefixMatch') path = replacePrefixMatch(path, matchedPrefix ?? '/', spec.path.value);
  if (!path.startsWith('/')) path = '/' + path;
  return `${scheme}://${authority}${path}${request.query ? `?${request.query}` : ''}`;
}
