// Corefile text: a tokenizer and parser for the subset CoreDNS accepts (server blocks, plugin
// lines, nested blocks, imports), insertion of plugin lines into the root server block, and the
// rewrite rules DnsRewrite renders. Internal: not exported from the package.

/* ------------------------------------------------------------------ lexing and parsing */

export interface CorefileToken {
  readonly text: string;
  /** 1-based line the token starts on. */
  readonly line: number;
  /** Quoted tokens are never structural, even when their text is '{' or '}'. */
  readonly quoted: boolean;
}

/** A plugin line (`forward . /etc/resolv.conf`) with its nested block, if it has one. */
export interface CorefileDirective {
  readonly name: string;
  readonly args: readonly string[];
  /** Lines inside `{ ... }` after the directive; undefined when it has no block. */
  readonly block?: readonly CorefileDirective[];
  readonly line: number;
  /** Line of the closing brace of its block, or its own line. */
  readonly endLine: number;
  /** True when the directive's name is the first token of its line (line-based edits need it). */
  readonly firstOnLine: boolean;
}

export interface CorefileServerBlock {
  /** Keys as written: '.:53', 'dns://.:53', 'example.com', '(snippet)'. */
  readonly keys: readonly string[];
  readonly directives: readonly CorefileDirective[];
  readonly line: number;
  readonly endLine: number;
}

export interface Corefile {
  readonly serverBlocks: readonly CorefileServerBlock[];
  /** Top-level `import` lines (k3s: `import /etc/coredns/custom/*.server`). */
  readonly imports: readonly CorefileDirective[];
}

export class CorefileSyntaxError extends Error {
  public readonly line: number;
  constructor(line: number, detail: string) {
    super(`Corefile line ${line}: ${detail}`);
    this.name = 'CorefileSyntaxError';
    this.line = line;
  }
}

/**
 * Splits Corefile text into tokens the way CoreDNS's lexer does: whitespace separates tokens,
 * `#` outside quotes starts a comment to the end of the line, double quotes group text (a
 * backslash escapes only a quote inside them), and backslashes outside quotes are literal, so
 * regexes such as `\.egress\.local` survive unquoted.
 */
export function tokenizeCorefile(text: string): CorefileToken[] {
  const tokens: CorefileToken[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\n') { line++; i++; continue; }
    if (/\s/.test(ch)) { i++; continue; }
    if (ch === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    const startLine = line;
    if (ch === '"') {
      let value = '';
      i++;
      let closed = false;
      while (i < text.length) {
        const c = text[i];
        if (c === '\\' && text[i + 1] === '"') { value += '"'; i += 2; continue; }
        if (c === '"') { closed = true; i++; break; }
        if (c === '\n') line++;
        value += c;
        i++;
      }
      if (!closed) throw new CorefileSyntaxError(startLine, 'unterminated quoted string');
      tokens.push({ text: value, line: startLine, quoted: true });
      continue;
    }
    let value = '';
    while (i < text.length && !/\s/.test(text[i]) && text[i] !== '#') {
      value += text[i];
      i++;
    }
    tokens.push({ text: value, line: startLine, quoted: false });
  }
  return tokens;
}

const isOpen = (t: CorefileToken | undefined): boolean => !!t && !t.quoted && t.text === '{';
const isClose = (t: CorefileToken | undefined): boolean => !!t && !t.quoted && t.text === '}';

/** Parses a Corefile into server blocks and top-level imports. Throws CorefileSyntaxError. */
export function parseCorefile(text: string): Corefile {
  const tokens = tokenizeCorefile(text);
  const serverBlocks: CorefileServerBlock[] = [];
  const imports: CorefileDirective[] = [];
  let pos = 0;

  // Reads directives until the '}' that closes the current block; returns them and that brace.
  const parseBody = (openLine: number): { directives: CorefileDirective[]; endLine: number } => {
    const directives: CorefileDirective[] = [];
    while (pos < tokens.length) {
      const head = tokens[pos];
      if (isClose(head)) { pos++; return { directives, endLine: head.line }; }
      if (isOpen(head)) throw new CorefileSyntaxError(head.line, "unexpected '{' without a plugin name before it");
      const prev = tokens[pos - 1];
      const firstOnLine = !prev || prev.line !== head.line;
      pos++;
      const args: string[] = [];
      let block: CorefileDirective[] | undefined;
      let endLine = head.line;
      while (pos < tokens.length && tokens[pos].line === head.line && !isClose(tokens[pos])) {
        const t = tokens[pos];
        if (isOpen(t)) {
          pos++;
          const inner = parseBody(t.line);
          block = inner.directives;
          endLine = inner.endLine;
          break;
        }
        args.push(t.text);
        pos++;
      }
      directives.push({ name: head.text, args, block, line: head.line, endLine, firstOnLine });
    }
    throw new CorefileSyntaxError(openLine, "block opened here is never closed (missing '}')");
  };

  while (pos < tokens.length) {
    const head = tokens[pos];
    if (isClose(head)) throw new CorefileSyntaxError(head.line, "unexpected '}' with no open block");
    if (!head.quoted && head.text === 'import') {
      pos++;
      const args: string[] = [];
      while (pos < tokens.length && tokens[pos].line === head.line) args.push(tokens[pos++].text);
      imports.push({ name: 'import', args, line: head.line, endLine: head.line, firstOnLine: true });
      continue;
    }
    const keys: string[] = [];
    while (pos < tokens.length && !isOpen(tokens[pos])) {
      if (isClose(tokens[pos])) throw new CorefileSyntaxError(tokens[pos].line, "unexpected '}' in server block keys");
      // Keys may be separated by commas, spaces or both.
      for (const k of tokens[pos].text.split(',')) if (k) keys.push(k);
      pos++;
    }
    if (pos >= tokens.length) {
      throw new CorefileSyntaxError(head.line, `server block "${keys.join(' ')}" has no '{ ... }' body`);
    }
    pos++; // '{'
    const body = parseBody(head.line);
    serverBlocks.push({ keys, directives: body.directives, line: head.line, endLine: body.endLine });
  }
  return { serverBlocks, imports };
}

/* ------------------------------------------------------------------ server block keys */

export interface ServerKey {
  readonly scheme: string;
  /** Zone with a trailing dot ('.' is the root). */
  readonly zone: string;
  /** Undefined when the key names no port (CoreDNS then listens on 53). */
  readonly port?: number;
}

/** Parses 'dns://.:53', '.:53', '.', 'example.com:1053'. */
export function parseServerKey(key: string): ServerKey {
  let rest = key;
  let scheme = 'dns';
  const m = /^([a-z+]+):\/\//.exec(rest);
  if (m) { scheme = m[1]; rest = rest.slice(m[0].length); }
  let port: number | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && /^\d+$/.test(rest.slice(colon + 1))) {
    port = Number(rest.slice(colon + 1));
    rest = rest.slice(0, colon);
  }
  let zone = rest.toLowerCase();
  if (!zone.endsWith('.')) zone += '.';
  return { scheme, zone, port };
}

/** The server block answering the root zone on port 53, where cluster names are resolved. */
export function findRootServerBlock(corefile: Corefile, port = 53): CorefileServerBlock | undefined {
  return corefile.serverBlocks.find(b => b.keys.some(k => {
    const key = parseServerKey(k);
    return key.scheme === 'dns' && key.zone === '.' && (key.port ?? 53) === port;
  }));
}

/* ------------------------------------------------------------------ insertion */

/** Plugin lines whose position the rewrite lines are inserted before (first one found wins). */
export const INSERT_BEFORE_PLUGINS: readonly string[] = ['rewrite', 'kubernetes', 'forward'];

export interface InsertResult {
  readonly text: string;
  /** 1-based line of the first inserted line in the result. */
  readonly insertedAtLine: number;
}

/**
 * Inserts `lines` into the root server block of `text`, before its first `rewrite`,
 * `kubernetes` or `forward` line (or before the closing brace when it has none), indented like
 * its neighbours. The rest of the text, comments included, is kept byte for byte.
 *
 * CoreDNS runs plugins in its compiled-in order, not in the order they are written, so the
 * position matters only among `rewrite` lines (evaluated top to bottom) and for readers.
 * Throws a plain Error describing the problem when there is no root block or the target line
 * is shared with other tokens.
 */
export function insertIntoRootBlock(text: string, lines: readonly string[]): InsertResult {
  const corefile = parseCorefile(text);
  const root = findRootServerBlock(corefile);
  if (!root) {
    const keys = corefile.serverBlocks.map(b => b.keys.join(' ')).join('; ') || 'none';
    throw new Error(`the Corefile has no root server block ('.:53 { ... }'); server blocks found: ${keys}`);
  }
  const sourceLines = text.split('\n');
  const target = root.directives.find(d => INSERT_BEFORE_PLUGINS.includes(d.name));
  let at: number; // 0-based index in sourceLines to insert before
  let indent: string;
  if (target) {
    if (!target.firstOnLine) {
      throw new Error(`the '${target.name}' plugin on Corefile line ${target.line} shares its line with other tokens; put each plugin on its own line`);
    }
    at = target.line - 1;
    indent = /^\s*/.exec(sourceLines[at])![0];
  } else {
    const closing = sourceLines[root.endLine - 1];
    if (closing.trim() !== '}') {
      throw new Error(`the root server block's closing '}' on Corefile line ${root.endLine} shares its line with other tokens; put it on its own line`);
    }
    at = root.endLine - 1;
    const sibling = root.directives[0];
    indent = sibling && sibling.firstOnLine
      ? /^\s*/.exec(sourceLines[sibling.line - 1])![0]
      : /^\s*/.exec(closing)![0] + '    ';
  }
  const inserted = lines.map(l => (l.length ? indent + l : l));
  const out = [...sourceLines.slice(0, at), ...inserted, ...sourceLines.slice(at)];
  return { text: out.join('\n'), insertedAtLine: at + 1 };
}

/* ------------------------------------------------------------------ names and rewrite rules */

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Why `name` is not a usable lower-case DNS name, or undefined when it is.
 * Accepts one or more labels of letters, digits and hyphens, no trailing dot.
 */
export function dnsNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name !== name.toLowerCase()) return 'it has upper-case letters (CoreDNS matches lower-cased names)';
  if (name.endsWith('.')) return 'it ends with a dot';
  if (name.startsWith('.')) return 'it starts with a dot';
  if (name.length > 253) return 'it is longer than 253 characters';
  for (const label of name.split('.')) {
    if (label.length === 0) return 'it has an empty label (two dots in a row)';
    if (label.length > 63) return `its label "${label.slice(0, 20)}..." is longer than 63 characters`;
    if (!LABEL.test(label)) return `its label "${label}" may only hold a-z, 0-9 and '-', not at either end`;
  }
  return undefined;
}

/** Escapes every RE2 metacharacter in a literal (the dots of a DNS name, above all). */
export function escapeRegex(literal: string): string {
  return literal.replace(/[\\.^$|?*+()[\]{}]/g, '\\$&');
}

/**
 * The regex matching `<anything>.<suffix>.` as CoreDNS presents query names (lower case, fully
 * qualified with the trailing dot), capturing `<anything>`. Anchored at both ends so that
 * search-path expansions (`x.egress.local.default.svc.cluster.local.`) and look-alikes
 * (`xegress.local.`, `egress.local.evil.com.`) do not match. RE2 and JavaScript agree on it.
 */
export function suffixRegex(suffix: string): string {
  return `^(.+)\\.${escapeRegex(suffix)}\\.$`;
}

/** Fully qualified form CoreDNS works with. */
export function fqdn(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower : `${lower}.`;
}

export interface RewriteRuleSpec {
  /** 'regex' rewrites every name under a suffix; 'exact' one hijacked host name. */
  readonly type: 'regex' | 'exact';
  /** Regex (RE2) for 'regex', a lower-case name for 'exact'. */
  readonly from: string;
  /** The gateway Service's cluster name. */
  readonly to: string;
}

/**
 * Renders one rule as CoreDNS `rewrite` lines. A regex rule carries `answer auto`
 * (CoreDNS 1.8.4 and later) so the answer names the question's name again: resolvers such as
 * glibc and musl drop answers whose owner name differs from the question. An explicit
 * `answer name` cannot do that here, because every name maps to the one gateway name and the
 * original is not recoverable from the answer. Exact rules are answered back automatically.
 */
export function renderRewriteRule(rule: RewriteRuleSpec): string[] {
  if (rule.type === 'exact') {
    return [`rewrite stop name exact ${fqdn(rule.from)} ${fqdn(rule.to)}`];
  }
  return [
    'rewrite stop {',
    `    name regex ${rule.from} ${fqdn(rule.to)} answer auto`,
    '}',
  ];
}

/* ------------------------------------------------------------------ simulation (tests, docs) */

/**
 * Compiles an RE2 pattern as JavaScript, refusing the constructs where the two dialects differ
 * (lookaround, backreferences, named groups, inline flags, possessive/Unicode classes), so a
 * test of the JS form says something about the RE2 form CoreDNS runs.
 */
export function re2ToJsRegExp(pattern: string): RegExp {
  const unsupported: Array<[RegExp, string]> = [
    [/\(\?[=!<]/, 'lookaround'],
    [/\(\?P?</, 'named groups'],
    [/\(\?[a-zA-Z]/, 'inline flags'],
    [/\\[1-9]/, 'backreferences'],
    [/\\[pPQEzAbB]/, 'escapes RE2 and JavaScript read differently'],
  ];
  for (const [re, what] of unsupported) {
    if (re.test(pattern)) throw new Error(`pattern ${JSON.stringify(pattern)} uses ${what}, outside the RE2/JavaScript common subset`);
  }
  return new RegExp(pattern);
}

/**
 * What CoreDNS's regex name rule does with a query name: lower-case and qualify it, take the
 * leftmost match (Go's FindStringSubmatch), substitute `{n}` groups into the target and
 * qualify the result. Undefined when the rule does not match.
 */
export function simulateRegexRewrite(pattern: string, replacement: string, queryName: string): string | undefined {
  const m = re2ToJsRegExp(pattern).exec(fqdn(queryName));
  if (!m) return undefined;
  let out = replacement;
  m.forEach((group, index) => { out = out.split(`{${index}}`).join(group ?? ''); });
  return fqdn(out);
}
