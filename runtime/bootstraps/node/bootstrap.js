// Stoke's Node.js bootstrap: the AWS Lambda Runtime API loop.
//
// Node's standard library only. Loads the handler named by _HANDLER
// ("file.function", file relative to LAMBDA_TASK_ROOT; .js, .cjs or .mjs),
// reports load errors through /init/error, then serves invocations one at a
// time. Handlers may be async (return a promise) or take a callback; with a
// callback and context.callbackWaitsForEmptyEventLoop true (the default) the
// response is sent once the event loop has nothing else to do, as on Lambda.
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

const [HOST, PORT] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');
const PREFIX = '/2018-06-01/runtime';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, p, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port: Number(PORT), method, path: PREFIX + p, agent, headers: headers || {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body); else req.end();
  });
}

function errorBody(err, type) {
  const e = err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
  const name = type || (err instanceof Error ? (err.name || err.constructor.name) : 'Error');
  const stack = (e.stack || '').split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
  return { errorType: name, errorMessage: e.message, trace: stack, stackTrace: stack };
}

async function initError(type, message, err) {
  const body = { errorType: type, errorMessage: message, stackTrace: err && err.stack ? err.stack.split('\n').slice(1).map((l) => l.trim()) : [] };
  console.error(`${new Date().toISOString()}\tundefined\tERROR\t${type}: ${message}`);
  await request('POST', '/init/error', JSON.stringify(body), { 'Lambda-Runtime-Function-Error-Type': type });
  process.exit(1);
}

async function loadHandler() {
  const spec = process.env._HANDLER || '';
  const root = process.env.LAMBDA_TASK_ROOT || '/var/task';
  const dot = spec.lastIndexOf('.');
  if (dot <= 0) return initError('Runtime.MalformedHandlerName', `Bad handler ${spec}`);
  const modPath = spec.slice(0, dot);
  const fnPath = spec.slice(dot + 1);
  const base = path.resolve(root, modPath);
  let mod;
  try {
    const file = ['.js', '.mjs', '.cjs'].map((e) => base + e).find((f) => fs.existsSync(f));
    if (!file) {
      const err = new Error(`Cannot find module '${modPath}'`);
      err.code = 'MODULE_NOT_FOUND';
      throw err;
    }
    mod = file.endsWith('.mjs') ? await import(pathToFileURL(file).href) : require(file);
  } catch (err) {
    if (err instanceof SyntaxError) return initError('Runtime.UserCodeSyntaxError', `${err.name}: ${err.message}`, err);
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      return initError('Runtime.ImportModuleError', `Error: ${err.message}`, err);
    }
    return initError(err && err.name ? err.name : 'Error', String(err && err.message), err);
  }
  const fn = mod[fnPath] || (mod.default && mod.default[fnPath]);
  if (typeof fn !== 'function') return initError('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  return fn;
}

function makeContext(h) {
  const deadline = Number(h['lambda-runtime-deadline-ms'] || 0);
  const cc = h['lambda-runtime-client-context'];
  const id = h['lambda-runtime-cognito-identity'];
  return {
    callbackWaitsForEmptyEventLoop: true,
    awsRequestId: h['lambda-runtime-aws-request-id'],
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: h['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: cc ? JSON.parse(cc) : undefined,
    identity: id ? JSON.parse(id) : undefined,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
}

// runHandler resolves with {ok, value} or {ok:false, error} and tells
// whether to wait for an empty event loop before answering.
function runHandler(handler, event, ctx) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (res, viaCallback) => {
      if (settled) return;
      settled = true;
      resolve({ ...res, waitForLoop: viaCallback && ctx.callbackWaitsForEmptyEventLoop });
    };
    const callback = (err, value) => done(err != null ? { ok: false, error: err } : { ok: true, value }, true);
    ctx.done = (err, value) => callback(err, value);
    ctx.succeed = (value) => callback(null, value);
    ctx.fail = (err) => callback(err == null ? new Error('handled') : err);
    try {
      const r = handler(event, ctx, callback);
      if (r && typeof r.then === 'function') {
        r.then((value) => done({ ok: true, value }, false), (error) => done({ ok: false, error }, false));
      } else if (handler.length < 3 && r !== undefined) {
        done({ ok: true, value: r }, false);
      }
    } catch (error) {
      done({ ok: false, error }, false);
    }
  });
}

// emptyLoop resolves when nothing but this wait keeps the process alive:
// beforeExit fires when the loop is empty; the idle keep-alive socket to the
// Runtime API is unref'd while waiting so it does not count.
function emptyLoop() {
  return new Promise((resolve) => process.once('beforeExit', resolve));
}

async function main() {
  const handler = await loadHandler();
  for (;;) {
    const next = await request('GET', '/invocation/next');
    if (next.status !== 200) {
      console.error(`/next answered ${next.status}: ${next.body.toString().slice(0, 200)}`);
      process.exit(1);
    }
    const h = next.headers;
    const rid = h['lambda-runtime-aws-request-id'];
    if (h['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = h['lambda-runtime-trace-id'];
    else delete process.env._X_AMZN_TRACE_ID;
    let event;
    try {
      event = next.body.length ? JSON.parse(next.body.toString()) : undefined;
    } catch (e) {
      event = next.body.toString();
    }
    const ctx = makeContext(h);
    const res = await runHandler(handler, event, ctx);
    if (res.waitForLoop) {
      for (const s of Object.values(agent.freeSockets).flat()) s.unref();
      await emptyLoop();
    }
    if (res.ok) {
      let out;
      try {
        out = JSON.stringify(res.value === undefined ? null : res.value);
      } catch (e) {
        const body = errorBody(e, 'Runtime.MarshalError');
        await request('POST', `/invocation/${rid}/error`, JSON.stringify(body), { 'Lambda-Runtime-Function-Error-Type': 'Runtime.MarshalError' });
        continue;
      }
      await request('POST', `/invocation/${rid}/response`, out);
    } else {
      const body = errorBody(res.error);
      console.error(`${new Date().toISOString()}\t${rid}\tERROR\tInvoke Error \t${JSON.stringify(body)}`);
      await request('POST', `/invocation/${rid}/error`, JSON.stringify(body), { 'Lambda-Runtime-Function-Error-Type': body.errorType });
    }
  }
}

main().catch((err) => {
  console.error('bootstrap failed:', err);
  process.exit(1);
});
