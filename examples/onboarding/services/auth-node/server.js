// The onboarding example's auth service: a Node.js gRPC server with server reflection and
// health, to show Maestro calling a service written in another language without stubs.
//
//   node server.js --port 0 [--fail CreateUser=UNAVAILABLE[x2]] [--delay CreateUser=1.5]
//
// Prints `READY <port>` once serving. Honours the `idempotency-key` metadata: a repeated key
// returns the first reply instead of creating a second user.
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { ReflectionService } = require('@grpc/reflection');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');
const LOADER_OPTIONS = { includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: true };

function parseArgs(argv) {
  const args = { port: 0, host: '127.0.0.1', fail: {}, delay: {} };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--port') args.port = Number(value);
    else if (flag === '--host') args.host = value;
    else if (flag === '--fail') {
      const match = /^([^=]+)=([A-Z_]+)(?:x(\d+))?$/.exec(value || '');
      if (!match) throw new Error(`--fail wants METHOD=CODE[xN], not ${value}`);
      args.fail[match[1]] = { code: match[2], times: match[3] ? Number(match[3]) : null };
    } else if (flag === '--delay') {
      const [method, seconds] = (value || '').split('=');
      args.delay[method] = Number(seconds.replace(/s$/, '')) * 1000;
    } else throw new Error(`unknown flag ${flag}`);
  }
  return args;
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

  function guarded(method, handler) {
    return (call, callback) => {
      const key = (call.metadata.get('idempotency-key')[0] || '').toString();
      const run = () => {
        const fault = args.fail[method];
        if (fault) {
          if (fault.times !== null && --fault.times <= 0) delete args.fail[method];
          return callback({ code: grpc.status[fault.code], details: `injected fault: ${fault.code}` });
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
        callback(null, reply);
      };
      const delay = args.delay[method];
      if (delay) setTimeout(run, delay); else run();
    };
  }

  function notFound(message) {
    const err = new Error(message);
    err.code = grpc.status.NOT_FOUND;
    return err;
  }

  function now() {
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
      const user = { id: `usr_${String(nextId++).padStart(4, '0')}`, email: request.email, created_at: now(), deleted: false };
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
    console.log(`READY ${port}`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
