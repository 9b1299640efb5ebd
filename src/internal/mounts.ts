// Where the gateway pods see mounted Secrets and ConfigMaps: one read-only volume per object,
// at a path and under a volume name derived only from the object's name, so config and pod agree.
import { createHash } from 'crypto';

export const SECRETS_DIR = '/var/run/egress/secrets';
export const CONFIGMAPS_DIR = '/var/run/egress/configmaps';

export type MountKind = 'secret' | 'configmap';

/** A Secret or ConfigMap the gateway must mount so the proxy can read one of its keys. */
export interface MountRef {
  readonly kind: MountKind;
  readonly name: string;
}

/** Path of `key` of the Secret or ConfigMap `name` inside the gateway pods. */
export function mountedFile(kind: MountKind, name: string, key: string): string {
  return `${mountDir(kind, name)}/${key}`;
}

export function mountDir(kind: MountKind, name: string): string {
  return `${kind === 'secret' ? SECRETS_DIR : CONFIGMAPS_DIR}/${name}`;
}

/**
 * Volume name (a DNS label of at most 63 characters). Names that had to be altered (dots, length)
 * get a hash of the original so two objects never share a volume name.
 */
export function volumeName(kind: MountKind, name: string): string {
  const prefix = kind === 'secret' ? 'secret-' : 'configmap-';
  const plain = `${prefix}${name}`;
  if (!name.includes('.') && plain.length <= 63) return plain;
  const hash = createHash('sha256').update(`${kind}/${name}`).digest('hex').slice(0, 8);
  const body = name.replace(/\./g, '-').slice(0, 63 - prefix.length - hash.length - 1).replace(/-+$/, '');
  return `${prefix}${body}-${hash}`;
}
