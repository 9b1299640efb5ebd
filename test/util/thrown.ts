// Test helper: the message of an expected synth/render error, so a test asserts on the text
// (and fails with the real message, or '' when nothing was thrown).

/** The message of what `fn` throws, '' when it returns normally. */
export function thrownMessage(fn: () => unknown): string {
  let message = '';
  try {
    fn();
  } catch (e) {
    message = (e as Error).message;
  }
  return message;
}

/** `fn` throws, and its message matches every pattern, checked in order. */
export function expectThrownMessage(fn: () => unknown, ...patterns: (string | RegExp)[]): void {
  const message = thrownMessage(fn);
  for (const p of patterns) expect(message).toMatch(p);
}

/** The message of what `fn` throws; throws 'expected an error' when it returns normally. */
export function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}
