// The naive Node peer of the side-by-side benchmark: what a team writes in an afternoon with core
// modules only. node:http server, https.request through one keep-alive Agent, verified TLS, pipe.
// argv: <port> <upstream port> <servername> <ca.pem>. Prints {"port":N} once listening.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');

const [port, upstreamPort, servername, caFile] = process.argv.slice(2);
const agent = new https.Agent({ keepAlive: true, ca: fs.readFileSync(caFile), servername });

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, host: servername };
  delete headers.connection;
  const up = https.request({
    host: '127.0.0.1', port: Number(upstreamPort), method: req.method, path: req.url, headers, agent, servername,
  }, (upRes) => {
    res.writeHead(upRes.statusCode, upRes.headers);
    upRes.pipe(res);
  });
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  agent.destroy();
});
