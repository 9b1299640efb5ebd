// cdk8s Durations to the proxy config's integer milliseconds, with the check the conversion needs.
import { Duration } from 'cdk8s';
import { Problems } from './problems';

/** Milliseconds of `d`, or undefined; records a problem when it is negative or not whole ms. */
export function durationMs(problems: Problems, prop: string, d: Duration | undefined): number | undefined {
  if (d === undefined) return undefined;
  const ms = d.toMilliseconds({ integral: false });
  if (!Number.isFinite(ms) || ms < 0 || !Number.isInteger(ms)) {
    problems.add(prop, d.toHumanString(), 'must be a whole number of milliseconds, zero or more', 'use Duration.millis(), seconds() or minutes() with a non-negative amount');
    return undefined;
  }
  return ms;
}
