// The logger's own parts: the cached ISO timestamp must read exactly as Date#toISOString would.
import { isoTime } from '../../src/proxy/log';

test('isoTime is the ,"time":"<ISO-8601>" fragment of the current millisecond, across second boundaries', async () => {
  for (let i = 0; i < 30; i++) {
    const before = Date.now();
    const fragment = isoTime();
    const after = Date.now();
    const parsed = JSON.parse(`{${fragment.slice(1)}}`) as { time: string };
    expect(parsed.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const t = Date.parse(parsed.time);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
    expect(new Date(t).toISOString()).toBe(parsed.time);
    // Step through milliseconds with one, two and three digits and into the next second.
    await new Promise((r) => setTimeout(r, 37));
  }
});
