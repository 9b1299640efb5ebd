// Collects every problem found in one props object so a construct reports them in one Error,
// each naming the prop, quoting the value, stating the rule and suggesting a fix.

/** One thing wrong with a prop. */
export interface Problem {
  /** Prop path as the user wrote it, e.g. `rules[0].matches[1].path`. */
  readonly prop: string;
  readonly value: unknown;
  /** What is required, phrased to follow the quoted value ("must start with '/'"). */
  readonly rule: string;
  /** What to do instead. */
  readonly fix: string;
}

export class Problems {
  private readonly items: Problem[] = [];

  /**
   * @param subject how the construct is named in messages, e.g. `HttpRoute "chart/net/get"`.
   */
  constructor(private readonly subject: string) {}

  public add(prop: string, value: unknown, rule: string, fix: string): void {
    this.items.push({ prop, value, rule, fix });
  }

  /** Problems found by a checker that knows no prop path yet: prefixed with `prefix`. */
  public addAll(prefix: string, found: readonly Problem[]): void {
    for (const p of found) this.items.push({ ...p, prop: p.prop ? `${prefix}${p.prop}` : prefix });
  }

  public get count(): number {
    return this.items.length;
  }

  /** Throws one Error listing every problem, or does nothing when there are none. */
  public throwIfAny(): void {
    if (this.items.length === 0) return;
    const lines = this.items.map((p) => `'${p.prop}' ${quote(p.value)} ${p.rule}; ${p.fix}`);
    if (lines.length === 1) throw new Error(`${this.subject}: ${lines[0]}`);
    throw new Error(`${this.subject}: ${lines.length} problems:\n${lines.map((l) => `  - ${l}`).join('\n')}`);
  }
}

/** Quotes a value for a message: strings in double quotes, other values as JSON. */
export function quote(value: unknown): string {
  if (value === undefined) return '(unset)';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
