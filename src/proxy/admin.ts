// The admin listener: /metrics (Prometheus), /live, /ready and /config (the effective config;
// injected header values are never part of it, only their file paths).
import * as http from 'node:http';
// eslint-disable-next-line import/no-extraneous-dependencies
import type { Registry } from 'prom-client';
import type { ProxyConfig } from '../model/proxy-config';

export interface AdminSource {
  /** A process's own registry, or the workers' aggregate in the supervising process (cluster.ts). */
  readonly metrics: { readonly registry: Pick<Registry, 'metrics' | 'contentType'> };
  /** True when a config is loaded and the proxy is not draining. */
  isReady(): boolean;
  currentConfig(): ProxyConfig | undefined;
  /** Generation number of the live config, and when it was applied. */
  configInfo(): { generation: number; loadedAt: string; source: string };
}

export function createAdminServer(src: AdminSource): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'allow': 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/live':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
        return;
      case '/ready': {
        const ready = src.isReady();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
        return;
      }
      case '/metrics':
        src.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': src.metrics.registry.contentType }).end(text);
        }, () => res.writeHead(500).end());
        return;
      case '/config': {
        const config = src.currentConfig();
        if (!config) {
          res.writeHead(503, { 'content-type': 'text/plain' }).end('no config loaded\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...src.configInfo(), config }, null, 2));
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /live, /ready, /config\n');
    }
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}
