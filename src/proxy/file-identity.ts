// How the config watchers (the single process's and the multi-worker supervisor's) tell that a
// file changed: by its inode, size and mtime without reading it, and by a digest of what was read.
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';

/** Inode, size and mtime of a file, or 'missing': a changed key means the file was replaced or written. */
export function statKey(file: string): string {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
