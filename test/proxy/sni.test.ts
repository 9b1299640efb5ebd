// The ClientHello parser against real ClientHellos (captured from Node's TLS client) and hostile
// inputs: truncation, wrong record types, oversized lengths.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../src/proxy/sni';

/** Capture the first bytes a real TLS client sends. */
async function captureHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        const buf = Buffer.concat(chunks);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          s.destroy();
          resolve(buf);
        }
      });
    }));
    const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    client.on('error', () => undefined);
    const hello = await got;
    client.destroy();
    return hello;
  } finally {
    server.close();
  }
}

describe('parseClientHello', () => {
  test('finds the SNI of a real ClientHello', async () => {
    const hello = await captureHello({ servername: 'api.test.example' });
    expect(parseClientHello(hello)).toEqual({ kind: 'done', serverName: 'api.test.example' });
  });

  test('a ClientHello without SNI is done with no name', async () => {
    const hello = await captureHello({});
    expect(parseClientHello(hello)).toEqual({ kind: 'done' });
  });

  test('every strict prefix of a ClientHello asks for more (record not complete)', async () => {
    const hello = await captureHello({ servername: 'api.test.example' });
    for (let n = 0; n < hello.length; n += 7) expect(parseClientHello(hello.subarray(0, n)).kind).toBe('need-more');
  });

  test.each([
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
    ['wrong record version', Buffer.from([0x16, 0x02, 0x00, 0x00, 0x04, 1, 0, 0, 0])],
    ['zero-length record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
    ['oversized record', Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff])],
    ['not a ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])],
    ['handshake longer than the record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x10, 0x00])],
  ])('refuses %s', (_what, buf) => {
    expect(parseClientHello(buf).kind).toBe('invalid');
  });

  test('a corrupted extension length is refused, not read past', async () => {
    const hello = Buffer.from(await captureHello({ servername: 'api.test.example' }));
    // The SNI extension's server_name list length: make it claim more than the extension holds.
    const at = hello.indexOf(Buffer.from('api.test.example')) - 5;
    hello.writeUInt16BE(0xfff0, at);
    expect(parseClientHello(hello).kind).toBe('invalid');
  });

  test('the buffering bound covers a maximal record', () => {
    expect(MAX_CLIENT_HELLO_BYTES).toBe(16_384 + 5);
  });
});
