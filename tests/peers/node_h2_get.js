// Two GETs on one HTTP/2 session with node's http2 module (OpenSSL inside the node executable),
// after a delay so the agent can find this executable's TLS code first.
// Usage: node node_h2_get.js PORT PATH1 PATH2 DELAY_MS   Prints "<status> <bytes>" per request.
const http2 = require('http2');
const [port, first, second, delay] = process.argv.slice(2);
setTimeout(() => {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  session.on('error', (e) => { console.error(e.message); process.exit(1); });
  const get = (path) => new Promise((resolve, reject) => {
    const req = session.request({ ':path': path, 'x-from': 'node-h2' });
    let status = 0;
    let n = 0;
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => resolve(`${status} ${n}`));
    req.on('error', reject);
    req.end();
  });
  (async () => {
    console.log(await get(first));
    console.log(await get(second));
    session.close();
  })().catch((e) => { console.error(e.message); process.exit(1); });
}, Number(delay));
