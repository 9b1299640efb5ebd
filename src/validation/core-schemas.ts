// Built-in Kubernetes kinds: validates objects with the schemas compiled into the
// kubernetes-models package (one module per group, version and kind).
import type { ErrorObject } from 'ajv';

/** A validator for one built-in kind, reporting Ajv errors. */
export type CoreValidator = (object: unknown) => readonly ErrorObject[];

interface ModelClass {
  new (data: unknown): { validate(): void };
}

const GROUP = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const NAME = /^[A-Za-z0-9]+$/;
const cache = new Map<string, CoreValidator | undefined>();

/**
 * The validator of a built-in kind, or undefined when kubernetes-models has no such group,
 * version and kind. Only plain names reach `require`, so an object cannot make it load anything else.
 */
export function coreValidator(group: string, version: string, kind: string): CoreValidator | undefined {
  if ((group !== '' && !GROUP.test(group)) || !NAME.test(version) || !NAME.test(kind)) return undefined;
  const key = `${group}/${version}/${kind}`;
  if (cache.has(key)) return cache.get(key);
  const id = group === '' ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
  let Model: ModelClass | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Model = (require(id) as Record<string, ModelClass | undefined>)[kind];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
  }
  // Lists (ConfigMapList, ...) are not objects a manifest should hold.
  const validator: CoreValidator | undefined = Model === undefined || kind.endsWith('List') ? undefined : (object) => {
    try {
      new Model!(object).validate();
      return [];
    } catch (e) {
      const errors = (e as { errors?: ErrorObject[] }).errors;
      if (Array.isArray(errors)) return errors;
      throw e;
    }
  };
  cache.set(key, validator);
  return validator;
}
