// Process entry point of the egress proxy: parse the command line, validate the config (or only
// check it with --check-config), start, and drain on SIGTERM before exiting 0.
import * as v8 from 'node:v8';
import { runMultiProcess } from './cluster';
import { formatProblems, ConfigError, loadConfigFile } from './config';
import { createLogger } from './log';
import { startProxy, type ProxyHandle } from './server';

export const DEFAULT_CONFIG_PATH = '/etc/egress/config.json';

const USAGE = `usage: egress-proxy [--config FILE] | --check-config FILE
  --config FILE        config to load and watch (default: $EGRESS_CONFIG or ${DEFAULT_CONFIG_PATH})
  --check-config FILE  validate FILE offline, print every problem, exit 0 (valid) or 1 (invalid)
  EGRESS_LOG_LEVEL     pino level (default info)`;

export interface CliArgs {
  readonly mode: 'run' | 'check' | 'help';
  readonly file: string;
}

/** Parse argv (without node and script). Throws Error with a usage message on bad input. */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliArgs {
  let mode: CliArgs['mode'] = 'run';
  let file = env.EGRESS_CONFIG || DEFAULT_CONFIG_PATH;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = () => {
      const v = inline ?? argv[++i];
      if (!v) throw new Error(`${flag} needs a file\n${USAGE}`);
      return v;
    };
    if (flag === '--config') {file = value();} else if (flag === '--check-config') {
      mode = 'check';
      file = value();
    } else if (flag === '--help' || flag === '-h') {mode = 'help';} else {throw new Error(`unknown argument ${JSON.stringify(a)}\n${USAGE}`);}
  }
  return { mode, file };
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

  const logger = createLogger();
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
  const multi = runMultiProcess(args.file, logger);
  if (multi) return multi;

  let proxy: ProxyHandle;
  try {
    proxy = await startProxy({ configPath: args.file, logger, processMetrics: true });
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
