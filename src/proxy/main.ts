// Process entry point of the egress proxy: parse the command line, validate the config (or only
// check it with --check-config), start, and drain on SIGTERM before exiting 0.
import { readFileSync } from 'node:fs';
import * as v8 from 'node:v8';
import { runMultiProcess } from './cluster';
import { formatProblems, ConfigError, loadConfigFile } from './config';
import { createExplainer, ExplainInputError, type ExplainRequest } from './explain';
import { idleReclaimMsFromEnv } from './idle-memory';
import { createLogger, flushLogsSync } from './log';
import { startProxy, type ProxyHandle } from './server';

export const DEFAULT_CONFIG_PATH = '/etc/egress/config.json';

const USAGE = `usage: egress-proxy [--config FILE] | --check-config FILE | --explain FILE --request JSON
  --config FILE        config to load and watch (default: $EGRESS_CONFIG or ${DEFAULT_CONFIG_PATH})
  --check-config FILE  validate FILE offline, print every problem, exit 0 (valid) or 1 (invalid)
  --explain FILE       decide one request offline under FILE, as the proxy would, and print why
    --request JSON     the request: {"host": "api.github.com.egress.local", "path": "/repos",
                       "method": "GET", "caller": {"namespace": "payments", "serviceAccount": "api"}}
                       (also protocol http|connect|tls|tcp, port, headers, sni); @FILE reads it from FILE
                       exit 0 allowed, 3 denied, 1 bad config or request
  EGRESS_LOG_LEVEL     pino level (default info)
  EGRESS_IDLE_RECLAIM_MS  after a burst, milliseconds without requests before one memory-reducing
                       garbage collection gives the grown memory back (default 60000; 0: off)`;

export interface CliArgs {
  readonly mode: 'run' | 'check' | 'explain' | 'help';
  readonly file: string;
  /** --explain: the request, JSON text or @FILE. */
  readonly request?: string;
  /** Serving: EGRESS_IDLE_RECLAIM_MS (idle-memory.ts). */
  readonly idleReclaimMs: number;
}

/** Parse argv (without node and script). Throws Error with a usage message on bad input. */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliArgs {
  let mode: CliArgs['mode'] = 'run';
  let file = env.EGRESS_CONFIG || DEFAULT_CONFIG_PATH;
  let request: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (what = 'a file') => {
      const v = inline ?? argv[++i];
      if (!v) throw new Error(`${flag} needs ${what}\n${USAGE}`);
      return v;
    };
    if (flag === '--config') {file = value();} else if (flag === '--check-config') {
      mode = 'check';
      file = value();
    } else if (flag === '--explain') {
      mode = 'explain';
      file = value();
    } else if (flag === '--request') {
      request = value('a JSON request or @FILE');
    } else if (flag === '--help' || flag === '-h') {mode = 'help';} else {throw new Error(`unknown argument ${JSON.stringify(a)}\n${USAGE}`);}
  }
  if (mode === 'explain' && request === undefined) throw new Error(`--explain needs --request\n${USAGE}`);
  if (mode !== 'explain' && request !== undefined) throw new Error(`--request goes with --explain\n${USAGE}`);
  let idleReclaimMs: number;
  try {
    idleReclaimMs = idleReclaimMsFromEnv(env);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  return request === undefined ? { mode, file, idleReclaimMs } : { mode, file, request, idleReclaimMs };
}

/** Exit codes of --explain. */
export const EXPLAIN_ALLOWED = 0;
export const EXPLAIN_DENIED = 3;
export const EXPLAIN_BAD_INPUT = 1;

/**
 * Decide one request offline under a config file (explain.ts) and print the explanation as JSON.
 * Returns 0 when the policy lets it through, 3 when it is refused, 1 for a bad config or request.
 */
export function explainCommand(
  file: string,
  requestText: string,
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): number {
  let request: ExplainRequest;
  try {
    const text = requestText.startsWith('@') ? readFileSync(requestText.slice(1), 'utf8') : requestText;
    request = JSON.parse(text) as ExplainRequest;
    if (!request || typeof request !== 'object' || Array.isArray(request)) throw new Error('must be a JSON object');
  } catch (e) {
    err(`--request: ${(e as Error).message}\n`);
    return EXPLAIN_BAD_INPUT;
  }
  try {
    const explanation = createExplainer(loadConfigFile(file)).explain(request);
    out(`${JSON.stringify(explanation, null, 2)}\n`);
    return explanation.allowed ? EXPLAIN_ALLOWED : EXPLAIN_DENIED;
  } catch (e) {
    if (e instanceof ConfigError) err(`${file}: ${e.problems.length} problem(s):\n${formatProblems(e.problems)}\n`);
    else if (e instanceof ExplainInputError) err(`--request: ${e.message}\n`);
    else err(`${file}: ${(e as Error).message}\n`);
    return EXPLAIN_BAD_INPUT;
  }
}

/** Validate a file offline. Returns the exit code and prints the verdict. */
export function checkConfig(
  file: string,
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): number {
  try {
    const config = loadConfigFile(file);
    out(`${file}: valid ${config.kind} for gateway ${config.gateway.namespace}/${config.gateway.name} ` +
      `(${config.externalServices.length} external services, ${config.routes.length} routes)\n`);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`${file}: ${e.problems.length} problem(s):\n${formatProblems(e.problems)}\n`);
      return 1;
    }
    err(`${file}: ${(e as Error).message}\n`);
    return 1;
  }
}

/** A stray socket error from a misbehaving peer must not take the proxy down. */
const PEER_ERROR_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_HTTP2_STREAM_ERROR', 'ERR_HTTP2_INVALID_STREAM', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * Route regexes come from configuration. V8's backtracking engine can take exponential time on
 * a pattern like `(a+)+$`; with this flag a match that backtracks excessively is re-run on V8's
 * linear-time engine, so one bad route cannot stall every connection. Set before any config loads.
 */
export function hardenRegexEngine(): void {
  v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  hardenRegexEngine();
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (args.mode === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.mode === 'check') return checkConfig(args.file);
  if (args.mode === 'explain') return explainCommand(args.file, args.request!);

  const logger = createLogger();
  // Log lines are written in batches; the last ones (drain, stop, a fatal error) must not be lost.
  process.once('exit', flushLogsSync);
  process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
    if (err.code && PEER_ERROR_CODES.has(err.code)) {
      logger.warn({ err: { code: err.code, message: err.message } }, 'stray peer error ignored');
      return;
    }
    logger.fatal({ err }, 'uncaught exception; exiting');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled rejection');
  });

  // `workers` above 1: a supervisor and its workers (cluster.ts) instead of one process.
  const multi = runMultiProcess(args.file, logger, args.idleReclaimMs);
  if (multi) return multi;

  let proxy: ProxyHandle;
  try {
    proxy = await startProxy({ configPath: args.file, logger, processMetrics: true, idleReclaim: { idleMs: args.idleReclaimMs } });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${args.file}: ${e.problems.length} problem(s):\n${formatProblems(e.problems)}\n`);
      logger.fatal({ problems: e.problems }, 'invalid config; not starting');
    } else {
      logger.fatal({ err: e }, 'cannot start');
    }
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, inflight: proxy.inflight() }, 'signal received; draining');
      proxy.drain().then(() => resolve(0), (err) => {
        logger.error({ err }, 'drain failed');
        resolve(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
    // Anything still holding the loop after a drain is not worth waiting for.
    setTimeout(() => process.exit(code), 100).unref();
  }, (err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}
