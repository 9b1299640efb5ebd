// Watches the files a config points at (CA bundles, client certificates and keys, injected
// header values) so a rotated Secret is picked up without a restart: a content hash, checked on
// directory events and on a poll, says when the live config must be compiled again.
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { ProxyConfig } from '../model/proxy-config';

/** Every file the config reads besides itself, sorted, each once. */
export function materialFiles(config: ProxyConfig): string[] {
  const files = new Set<string>();
  for (const tls of [config.defaultTls, ...config.externalServices.map((s) => s.tls)]) {
    for (const f of [tls.caFile, tls.clientCertFile, tls.clientKeyFile]) if (f) files.add(f);
  }
  for (const s of config.externalServices) for (const h of s.injectHeaders) files.add(h.valueFile);
  return [...files].sort();
}

/** One hash over the files' contents ("missing" for an unreadable one), in order. */
export function materialHash(files: readonly string[]): string {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f).update('\0');
    try {
      h.update(readFileSync(f));
    } catch (err) {
      h.update(`missing:${(err as NodeJS.ErrnoException).code ?? ''}`);
    }
    h.update('\0');
  }
  return h.digest('hex');
}

/**
 * Calls `onChange` when the tracked files' content may have changed: after directory events
 * (kubelet swaps a Secret volume's `..data` symlink; the file's own inode never changes), settled
 * for `debounceMs`, and on every poll whose hash differs from the last one `track()` was given.
 */
export class MaterialWatcher {
  private files: readonly string[] = [];
  private hash = '';
  private watchers: FSWatcher[] = [];
  private pollTimer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly onChange: () => void, private readonly pollIntervalMs: number, private readonly debounceMs = 50) {}

  /** Watch `files`, whose content hashed to `hash` when the live state was compiled from them. */
  public track(files: readonly string[], hash: string): void {
    if (this.closed) return;
    this.hash = hash;
    const same = files.length === this.files.length && files.every((f, i) => f === this.files[i]);
    this.files = [...files];
    if (same && this.pollTimer) return;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule());
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch {
        // A directory that cannot be watched (absent yet, or no inotify) is still polled.
      }
    }
    clearInterval(this.pollTimer);
    if (files.length === 0) {
      this.pollTimer = undefined;
      return;
    }
    this.pollTimer = setInterval(() => this.check(), this.pollIntervalMs);
    this.pollTimer.unref();
  }

  /** The hash the live state was compiled from. */
  public get currentHash(): string {
    return this.hash;
  }

  public close(): void {
    this.closed = true;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    clearInterval(this.pollTimer);
    clearTimeout(this.debounce);
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.check(), this.debounceMs);
    this.debounce.unref();
  }

  private check(): void {
    if (this.closed || this.files.length === 0) return;
    if (materialHash(this.files) !== this.hash) this.onChange();
  }
}
