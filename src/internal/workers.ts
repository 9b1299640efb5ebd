// The gateway's worker count and the container resources that follow it: a worker is one Node
// process and uses at most one core, so N workers need N cores of CPU limit to run in parallel.
import { Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Problems } from './problems';
import { WORKER_BOUNDS } from '../model/bounds';

/** One worker's share of the default resources (a single-process proxy's defaults). */
const ONE_WORKER = { cpuRequestMillis: 100, cpuLimitCores: 1, memoryRequestMiB: 128, memoryLimitMiB: 512 };

/** Cores a kplus.Cpu stands for ("100m" → 0.1, "2" → 2), or undefined when it is not a quantity. */
export function cpuCores(cpu: kplus.Cpu | undefined): number | undefined {
  if (!cpu) return undefined;
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(String(cpu.amount));
  if (!m) return undefined;
  return m[2] ? Number(m[1]) / 1000 : Number(m[1]);
}

/**
 * The worker count: `workers` when set, else one per whole CPU the container requests (Kubernetes
 * takes the limit as the request when only a limit is set), at least 1. Adds a problem for a count
 * out of bounds, a CPU limit below the count, and a request above the limit.
 */
export function resolveWorkers(problems: Problems, workers: number | undefined, resources: kplus.ContainerResources | undefined): number {
  const request = cpuCores(resources?.cpu?.request);
  const limit = cpuCores(resources?.cpu?.limit);
  const { min, max } = WORKER_BOUNDS;
  if (request !== undefined && limit !== undefined && request > limit) {
    problems.add('resources.cpu.request', resources!.cpu!.request!.amount, `is above 'resources.cpu.limit' "${resources!.cpu!.limit!.amount}" (Kubernetes rejects the pod)`,
      `raise the limit to at least Cpu.millis(${Math.round(request * 1000)}) or lower the request`);
  }
  if (workers === undefined) {
    return Math.min(max, Math.max(min, Math.floor(request ?? limit ?? 0)));
  }
  if (!Number.isInteger(workers) || workers < min || workers > max) {
    problems.add('workers', workers, `must be a whole number from ${min} to ${max}`,
      'use e.g. 2, or leave it out for one worker per CPU the container requests');
    return min;
  }
  if (limit !== undefined && limit < workers) {
    const fits = Math.max(min, Math.floor(limit));
    problems.add('workers', workers, `needs a CPU limit of at least ${workers} cores, but 'resources.cpu.limit' is "${resources!.cpu!.limit!.amount}": `
      + 'the workers would share fewer cores than there are of them and be throttled together, adding latency for no throughput',
    `raise 'resources.cpu.limit' to Cpu.units(${workers}), or set 'workers' to ${fits}`);
  }
  return workers;
}

/**
 * Default resources for `workers` workers. One worker keeps the single-process defaults (100m
 * request, 1 core limit, 128Mi/512Mi). Several reserve a core each (they only pay off when they
 * run in parallel, and one per requested CPU is how the count is derived back) and a heap each.
 */
export function workerResources(workers: number): kplus.ContainerResources {
  const n = workers;
  return {
    cpu: {
      request: n === 1 ? kplus.Cpu.millis(ONE_WORKER.cpuRequestMillis) : kplus.Cpu.units(n),
      limit: kplus.Cpu.units(n * ONE_WORKER.cpuLimitCores),
    },
    memory: { request: Size.mebibytes(n * ONE_WORKER.memoryRequestMiB), limit: Size.mebibytes(n * ONE_WORKER.memoryLimitMiB) },
  };
}
