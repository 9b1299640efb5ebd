// The lean Node peer of the side-by-side benchmark, for calibration: node:http server and undici's
// dispatch() writing straight into the response through one keep-alive Pool, verified TLS; no
// policy, no log, no metrics. What JavaScript alone costs on this path, below which only fewer
// system calls and copies go. argv: <port> <upstream port> <servername> <ca.pem>.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const { Pool } = require('undici');

const [port, upstreamPort, servername, caFile] = process.argv.slice(2);
const pool = new Pool(`https://127.0.0.1:${upstreamPort}`, {
  connections: 512, connect: { ca: fs.readFileSync(caFile), servername },
});

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, host: servername };
  delete headers.connection;
  pool.dispatch({ method: req.method, path: req.url, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, {
    onConnect(abort) {
      // A client gone mid-response would leave the upstream connection paused for good.
      res.once('close', () => {
        if (!res.writableFinished) abort(new Error('client closed'));
      });
    },
    onHeaders(status, raw, resume) {
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i].toString('latin1');
        if (name.toLowerCase() !== 'connection' && name.toLowerCase() !== 'keep-alive') res.setHeader(name, raw[i + 1].toString('latin1'));
      }
      res.writeHead(status);
      res.on('drain', resume);
      return true;
    },
    onData(chunk) {
      return res.write(chunk);
    },
    onComplete() {
      res.end();
    },
    onError() {
      if (res.destroyed) return;
      if (!res.headersSent) res.writeHead(502);
      res.end();
    },
  });
});
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  void pool.destroy();
});
