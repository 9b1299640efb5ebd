// Benchmark upstream: a keep-alive HTTPS/1.1 server on 127.0.0.1 answering every request with a
// fixed body, run as its own process so its CPU is counted apart from client and proxy.
// argv: <key.pem> <cert.pem> <body bytes>. Prints {"port":N} once listening; exits on SIGTERM.
'use strict';
const fs = require('node:fs');
const https = require('node:https');

const [keyFile, certFile, bodyBytes] = process.argv.slice(2);
const body = Buffer.alloc(Number(bodyBytes), 'x');
const server = https.createServer({
  key: fs.readFileSync(keyFile),
  cert: fs.readFileSync(certFile),
  keepAlive: true,
  // Idle pooled connections must outlive the pauses between benchmark phases.
  keepAliveTimeout: 60_000,
}, (req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
