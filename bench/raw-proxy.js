// A floor estimate for the side-by-side benchmark, not a proxy: a raw net server parsing the
// request head by hand (GET without a body only, no validation), undici's dispatch() through one
// keep-alive Pool with verified TLS, and the response head and body written in one socket write.
// What a Node proxy costs without node:http's server, policy, log or metrics.
// argv: <port> <upstream port> <servername> <ca.pem>.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const { Pool } = require('undici');

const [port, upstreamPort, servername, caFile] = process.argv.slice(2);
const pool = new Pool(`https://127.0.0.1:${upstreamPort}`, {
  connections: 512, connect: { ca: fs.readFileSync(caFile), servername },
});

function serve(socket) {
  socket.setNoDelay(true);
  let buf = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk) => {
    buf += chunk;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.slice(0, end);
    buf = buf.slice(end + 4);
    const lines = head.split('\r\n');
    const [method, url] = lines[0].split(' ');
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(':');
      headers[lines[i].slice(0, c).toLowerCase()] = lines[i].slice(c + 1).trim();
    }
    headers.host = servername;
    delete headers.connection;
    let out = '';
    const parts = [];
    pool.dispatch({ method, path: url, headers }, {
      onConnect() {},
      onHeaders(status, raw) {
        out = `HTTP/1.1 ${status} OK\r\n`;
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i].toString('latin1');
          const l = name.toLowerCase();
          if (l !== 'connection' && l !== 'keep-alive') out += `${name}: ${raw[i + 1].toString('latin1')}\r\n`;
        }
        out += '\r\n';
        return true;
      },
      onData(chunk) {
        parts.push(chunk);
        return true;
      },
      onComplete() {
        parts.unshift(Buffer.from(out, 'latin1'));
        socket.write(Buffer.concat(parts));
      },
      onError() {
        socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
      },
    });
  });
  socket.on('error', () => undefined);
}

const server = net.createServer({ noDelay: true }, serve);
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  void pool.destroy();
  setTimeout(() => process.exit(0), 200).unref();
});
