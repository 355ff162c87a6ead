#!/usr/bin/env node
// An outside client for cross-checking the bench's own (docs/performance.md): @grpc/grpc-js, a
// closed loop of N calls in flight over M channels, against the echo server or ResolveImage of a
// running stack. It saturates its own (single-threaded) event loop far below the bench's client,
// so it can only confirm numbers up to its own ceiling, which its echo run shows.
//
//   npm install @grpc/grpc-js @grpc/proto-loader      (in this directory or any parent)
//   node bench/outside/load.js echo    --target 127.0.0.1:PORT [--in-flight 16] [--seconds 5]
//   node bench/outside/load.js resolve --target 127.0.0.1:50051 --token TOKEN \
//        --name accounts/demo/multiCloudImages/web --cloud clouds/aws-us-east-1
//   node bench/outside/load.js setup   --target 127.0.0.1:50051 --token TOKEN --account demo
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const args = { 'in-flight': 16, seconds: 5, channels: 4, 'response-bytes': 400 };
const [mode, ...rest] = process.argv.slice(2);
for (let i = 0; i < rest.length; i += 2) args[rest[i].replace(/^--/, '')] = rest[i + 1];
const root = path.join(__dirname, '..', '..');
const load = (file, dirs) => grpc.loadPackageDefinition(loader.loadSync(file, {
  includeDirs: dirs, keepCase: true, longs: Number, defaults: true }));

function clients(Service) {
  const out = [];
  for (let i = 0; i < Number(args.channels); i++) {
    // A distinct channel option makes each its own connection.
    out.push(new Service(args.target, grpc.credentials.createInsecure(), { 'grpc.x-channel': i }));
  }
  return out;
}

function metadata() {
  const md = new grpc.Metadata();
  if (args.token) md.set('authorization', 'Bearer ' + args.token);
  return md;
}

function closedLoop(call) {
  return new Promise((resolve) => {
    const inFlight = Number(args['in-flight']);
    const end = Date.now() + Number(args.seconds) * 1000;
    const latencies = [];
    let errors = 0, running = 0, firstError = '';
    const issue = () => {
      if (Date.now() >= end) { if (--running === 0) done(); return; }
      const t0 = process.hrtime.bigint();
      call((err) => {
        if (err) { errors++; firstError = firstError || err.message; }
        else latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        issue();
      });
    };
    const started = Date.now();
    const done = () => {
      const s = (Date.now() - started) / 1000;
      latencies.sort((a, b) => a - b);
      const p = (q) => latencies.length ? latencies[Math.min(latencies.length - 1,
        Math.floor(q * latencies.length))].toFixed(3) : '-';
      resolve({ qps: Math.round(latencies.length / s), p50_ms: p(0.5), p99_ms: p(0.99), errors,
        first_error: firstError });
    };
    for (running = 0; running < inFlight; running++) issue();
  });
}

async function main() {
  if (mode === 'echo') {
    const pkg = load(path.join(root, 'bench/proto/mci/bench/v1/echo.proto'), [root]);
    const stubs = clients(pkg.mci.bench.v1.EchoService);
    let k = 0;
    const req = { payload: Buffer.alloc(Number(args['request-bytes'] || 60), 'r'),
      response_bytes: Number(args['response-bytes']) };
    console.log(JSON.stringify({ op: 'echo', ...args, ...(await closedLoop((cb) =>
      stubs[k++ % stubs.length].Echo(req, metadata(), cb))) }));
  } else {
    const pkg = load(path.join(root, 'proto/mci/catalog/v1/catalog.proto'),
      [path.join(root, 'proto'), '/usr/include']);
    const stubs = clients(pkg.mci.catalog.v1.CatalogService);
    if (mode === 'setup') {
      const call = (m, req) => new Promise((ok, fail) =>
        stubs[0][m](req, metadata(), (e, r) => (e ? fail(e) : ok(r))));
      const mci = await call('CreateMultiCloudImage', { parent: 'accounts/' + args.account,
        multi_cloud_image_id: args.id || 'outside', multi_cloud_image: { display_name: 'Outside' } });
      await call('CreateMultiCloudImageSetting', { parent: mci.name, setting: {
        cloud: 'clouds/aws-us-east-1', image: 'clouds/aws-us-east-1/images/centos-5-4-x64-v5-6',
        instance_type: 'clouds/aws-us-east-1/instanceTypes/m1.large' } });
      console.log(mci.name);
      return;
    }
    let k = 0;
    const req = { name: args.name, cloud: args.cloud };
    console.log(JSON.stringify({ op: 'ResolveImage', ...args, token: undefined,
      ...(await closedLoop((cb) => stubs[k++ % stubs.length].ResolveImage(req, metadata(), cb))) }));
  }
  process.exit(0);
}
main().catch((e) => { console.error(e.message); process.exit(1); });
