// The onboarding example's auth service: a Node.js gRPC server with server reflection and
// health, to show Maestro calling a service written in another language without stubs.
//
//   node server.js --port 0 [--fail CreateUser=UNAVAILABLE[x2]] [--delay CreateUser=1.5]
//                  [--admin-port 0]
//
// Prints `READY <port>` once serving (`READY <port> ADMIN <port>` with the admin API, the same
// as the Python demo services': GET /ledger, PUT /faults). Honours the `idempotency-key`
// metadata: a repeated key returns the first reply instead of creating a second user.
'use strict';

const http = require('node:http');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { ReflectionService } = require('@grpc/reflection');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');
const LOADER_OPTIONS = { includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: true };

function parseArgs(argv) {
  const args = { port: 0, host: '127.0.0.1', fail: {}, delay: {}, adminPort: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--port') args.port = Number(value);
    else if (flag === '--host') args.host = value;
    else if (flag === '--admin-port') args.adminPort = Number(value);
    else if (flag === '--fail') {
      const match = /^([^=]+)=([A-Z_]+)(?:x(\d+))?$/.exec(value || '');
      if (!match) throw new Error(`--fail wants METHOD=CODE[xN], not ${value}`);
      args.fail[match[1]] = { code: match[2], times: match[3] ? Number(match[3]) : null, rate: null };
    } else if (flag === '--delay') {
      const [method, seconds] = (value || '').split('=');
      args.delay[method] = { seconds: Number(seconds.replace(/s$/, '')), rate: null };
    } else throw new Error(`unknown flag ${flag}`);
  }
  return args;
}

// A small seeded generator (mulberry32), so a chaos run's fault rates replay from its seed.
function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function serveAdmin(state, port, host, ready) {
  const server = http.createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/ledger') {
      return reply(200, { calls: state.calls, effects: state.effects, faults: state.injected });
    }
    if (req.method === 'PUT' && req.url === '/faults') {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        try {
          const spec = JSON.parse(body);
          state.random = seeded(spec.seed || 0);
          state.args.fail = {};
          for (const [m, f] of Object.entries(spec.errors || {})) {
            state.args.fail[m] = { code: f.code, times: f.times ?? null, rate: f.rate ?? null };
          }
          state.args.delay = {};
          for (const [m, d] of Object.entries(spec.delays || {})) {
            state.args.delay[m] = { seconds: d.seconds, rate: d.rate ?? null };
          }
          reply(200, {});
        } catch (err) {
          reply(400, { error: err.message });
        }
      });
      return undefined;
    }
    return reply(404, { error: `no route ${req.method} ${req.url}` });
  });
  server.listen(port, host, () => ready(server.address().port));
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const authDef = protoLoader.loadSync('auth/v1/auth.proto', LOADER_OPTIONS);
  const healthDef = protoLoader.loadSync('grpc/health/v1/health.proto', LOADER_OPTIONS);
  const auth = grpc.loadPackageDefinition(authDef).auth.v1;
  const health = grpc.loadPackageDefinition(healthDef).grpc.health.v1;

  const users = new Map();
  const replies = new Map();
  let nextId = 1;
  // The ledger the admin API serves: calls by method, and every effect with its time.
  const state = { args, calls: {}, effects: [], injected: {}, random: seeded(0) };
  const count = (fault) => { state.injected[fault] = (state.injected[fault] || 0) + 1; };
  const now = () => (performance.timeOrigin + performance.now()) / 1000;

  function takeFault(method) {
    const fault = args.fail[method];
    if (!fault) return null;
    if (fault.rate !== null && state.random() >= fault.rate) return null;
    if (fault.times !== null && --fault.times <= 0) delete args.fail[method];
    count(`${method}=${fault.code}`);
    return fault.code;
  }

  function delayOf(method) {
    const delay = args.delay[method];
    if (!delay || (delay.rate !== null && state.random() >= delay.rate)) return 0;
    count(`${method}=DELAY`);
    return delay.seconds * 1000;
  }

  function guarded(method, handler) {
    return (call, callback) => {
      const key = (call.metadata.get('idempotency-key')[0] || '').toString();
      state.calls[method] = (state.calls[method] || 0) + 1;
      const run = () => {
        const code = takeFault(method);
        if (code) {
          return callback({ code: grpc.status[code], details: `injected fault: ${code}` });
        }
        const request = JSON.stringify(call.request);
        if (key && replies.has(key)) {
          const [seen, reply] = replies.get(key);
          if (seen !== request) {
            return callback({ code: grpc.status.INVALID_ARGUMENT, details: `idempotency key ${key} was used for a different request` });
          }
          return callback(null, reply);
        }
        let reply;
        try {
          reply = handler(call.request);
        } catch (err) {
          return callback({ code: err.code || grpc.status.INTERNAL, details: err.message });
        }
        if (key) replies.set(key, [request, reply]);
        state.effects.push({ method, key, at: now() });
        callback(null, reply);
      };
      const delay = delayOf(method);
      if (delay) setTimeout(run, delay); else run();
    };
  }

  function notFound(message) {
    const err = new Error(message);
    err.code = grpc.status.NOT_FOUND;
    return err;
  }

  function timestamp() {
    const ms = Date.now();
    return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
  }

  const server = new grpc.Server();
  server.addService(auth.AuthService.service, {
    CreateUser: guarded('CreateUser', (request) => {
      if (!request.email || !request.email.includes('@')) {
        const err = new Error(`bad email ${JSON.stringify(request.email)}`);
        err.code = grpc.status.INVALID_ARGUMENT;
        throw err;
      }
      const user = { id: `usr_${String(nextId++).padStart(4, '0')}`, email: request.email, created_at: timestamp(), deleted: false };
      users.set(user.id, user);
      return user;
    }),
    GetUser: guarded('GetUser', (request) => {
      const user = users.get(request.id);
      if (!user) throw notFound('no such user');
      return user;
    }),
    DeleteUser: guarded('DeleteUser', (request) => {
      const user = users.get(request.id);
      if (!user) return { id: request.id, deleted: false };
      user.deleted = true;
      return user;
    }),
  });
  server.addService(health.Health.service, {
    Check: (call, callback) => callback(null, { status: 'SERVING' }),
  });
  new ReflectionService(authDef).addToServer(server);

  server.bindAsync(`${args.host}:${args.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(err.message);
      process.exit(1);
    }
    if (args.adminPort === null) console.log(`READY ${port}`);
    else serveAdmin(state, args.adminPort, args.host, (admin) => console.log(`READY ${port} ADMIN ${admin}`));
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
