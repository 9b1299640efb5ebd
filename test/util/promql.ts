// Test helper: parse PromQL with the Prometheus project's own Lezer grammar and list what an
// expression reads (metric names with their matcher labels, and grouping labels).

/** The part of Lezer's syntax tree API used here. */
interface SyntaxNode {
  readonly name: string;
  readonly from: number;
  readonly to: number;
  readonly type: { readonly isError: boolean };
  readonly node: SyntaxNode;
  getChild(name: string): SyntaxNode | null;
  cursor(): { iterate(enter: (n: SyntaxNode) => boolean | void): void };
}
interface Tree {
  iterate(spec: { enter(n: SyntaxNode): boolean | void }): void;
}

// The package ships CommonJS (dist/index.cjs) beside its ES module, but its typings are ES-module
// only, which a CommonJS test file cannot import; the parser is typed by the interfaces above.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parser } = require('@prometheus-io/lezer-promql') as { parser: { parse(input: string): Tree } };

export interface PromqlUse {
  /** Every vector selector: metric name and the label names its matchers use. */
  readonly selectors: Array<{ readonly metric: string; readonly labels: string[] }>;
  /** Labels named in by(), without(), on(), ignoring() and group_left/right(). */
  readonly grouping: string[];
}

/** Grafana's built-in variables, replaced as Grafana does before the query reaches Prometheus. */
export function grafanaToPromql(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m');
}

/** The positions and text of the parser's error nodes (empty: the expression parses). */
export function promqlErrors(expr: string): string[] {
  const tree = parser.parse(expr);
  const errors: string[] = [];
  tree.iterate({
    enter(n) {
      if (n.type.isError) errors.push(`at ${n.from}: ${JSON.stringify(expr.slice(Math.max(0, n.from - 10), n.to + 10))}`);
    },
  });
  return errors;
}

/** What `expr` reads. */
export function promqlUses(expr: string): PromqlUse {
  const tree = parser.parse(expr);
  const selectors: Array<{ metric: string; labels: string[] }> = [];
  const grouping: string[] = [];
  const text = (from: number, to: number) => expr.slice(from, to);
  tree.iterate({
    enter(n) {
      if (n.name === 'VectorSelector') {
        const node = n.node;
        const id = node.getChild('Identifier');
        const labels: string[] = [];
        const matchers = node.getChild('LabelMatchers');
        if (matchers) {
          const c = matchers.cursor();
          c.iterate((m) => {
            if (m.name === 'LabelName') labels.push(text(m.from, m.to));
          });
        }
        selectors.push({ metric: id ? text(id.from, id.to) : '', labels });
        return false;
      }
      if (n.name === 'GroupingLabels') {
        const c = n.node.cursor();
        c.iterate((m) => {
          if (m.name === 'LabelName') grouping.push(text(m.from, m.to));
        });
        return false;
      }
      return undefined;
    },
  });
  return { selectors, grouping };
}
