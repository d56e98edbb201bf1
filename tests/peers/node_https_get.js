// One HTTPS GET with node's built-in (statically linked) OpenSSL, after a delay so the agent can
// find this executable's TLS code first. Usage: node node_https_get.js PORT PATH DELAY_MS
// Prints "<status> <body bytes>".
const https = require('https');
const [port, path, delay] = process.argv.slice(2);
setTimeout(() => {
  https.get({ host: '127.0.0.1', port: Number(port), path, rejectUnauthorized: false,
              headers: { 'X-From': 'node-e2e' } }, (res) => {
    let n = 0;
    res.on('data', (c) => { n += c.length; });
    res.on('end', () => { console.log(`${res.statusCode} ${n}`); });
  }).on('error', (e) => { console.error(e.message); process.exit(1); });
}, Number(delay));
