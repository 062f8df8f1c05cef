'use strict';
/**
 * An undici-compatible Dispatcher over libesp. Handed to undici's
 * setGlobalDispatcher (or installed by install.js), it carries Node's global
 * fetch, undici's own API and everything built on them (the openai and
 * @anthropic-ai/sdk packages) over libesp's shared, pooled connections.
 */
const { EventEmitter } = require('node:events');
const { STATUS_CODES } = require('node:http');
const native = require('./native');
const { errorFromStatus } = require('./errors');
const { NativeStream, CLOSED } = require('./native-stream');
const { headerList } = require('./headers');
const {
  ClientClosedError,
  ClientDestroyedError,
  InvalidArgumentError,
  NotSupportedError,
  RequestAbortedError,
  RequestContentLengthMismatchError,
  undiciErrorFor,
} = require('./undici-errors');

// esp.h ESP_REQ_STREAM_RAW: body bytes as they arrive, SSE included.
const FLAG_STREAM_RAW = 0x2;

/**
 * The libesp config of a dispatcher unless the caller overrides a key: what
 * undici's Agent does, so that swapping it in changes where connections live,
 * not how calls behave.
 */
const DISPATCHER_DEFAULTS = Object.freeze({
  provider: 'generic',
  // 'generic' needs a base URL. Every dispatched URL is absolute and this
  // client carries no credentials, so it names no real origin.
  base_url: 'http://localhost',
  name: 'undici-dispatcher',
  max_retries: 0, // undici does not retry; fetch users and SDKs retry themselves
  breaker_failures: 0, // undici has no breaker: a server's 500s must not fail other calls
  connect_timeout_ms: 10_000, // undici's connect timeout
  first_byte_timeout_ms: 300_000, // undici's headersTimeout
  idle_timeout_ms: 300_000, // undici's bodyTimeout
});

// esp.h ESP_NO_TIMEOUT, each request's total limit unless the config sets
// timeout_ms: undici has none.
const NO_TIMEOUT = -1;

// Request headers undici refuses (lib/core/request.js); `connection` is
// libesp's business, since its connections are shared.
const REFUSED_HEADERS = new Set(['transfer-encoding', 'keep-alive', 'upgrade']);

/**
 * The dispatcher that carries what libesp cannot (upgrades such as
 * WebSocket, CONNECT tunnels): install() sets it to the one it replaced.
 */
const kFallback = Symbol('libesp.dispatcher.fallback');

/** Releases the lease of a Dispatcher that was garbage-collected without close(). */
const forgottenLeases = new FinalizationRegistry((handle) => native.clientRelease(handle));

/** The absolute URL of a dispatch: origin + path (+ query), http and https only. */
function requestURL({ origin, path, query }) {
  let base;
  try {
    base = origin instanceof URL ? origin : new URL(String(origin));
  } catch {
    throw new InvalidArgumentError(`invalid origin ${JSON.stringify(String(origin))}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new InvalidArgumentError(`unsupported URL scheme '${base.protocol.slice(0, -1)}' (only http and https)`);
  }
  // undici also takes an absolute-form target (for proxies), sent to the
  // origin; libesp would send it to the host it names instead, so refuse it.
  if (typeof path !== 'string' || path[0] !== '/') {
    throw new InvalidArgumentError('path must be a string starting with /');
  }
  let url = `${base.protocol}//${base.host}${path}`;
  if (query != null) {
    const search = new URLSearchParams(query).toString();
    if (search) url += (url.includes('?') ? '&' : '?') + search;
  }
  return url;
}

/**
 * A dispatch's headersTimeout or bodyTimeout in libesp's terms: absent, the
 * config's (first_byte_timeout_ms, idle_timeout_ms); 0, none, as in undici.
 */
function timeoutMs(value, name) {
  if (value === undefined || value === null) return 0;
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError(`invalid ${name}`);
  return value === 0 ? NO_TIMEOUT : value;
}

/**
 * The addon's per-request timeouts [connect, read, write, pool, first byte,
 * idle] for a dispatch: undici's headersTimeout is the wait for the response
 * head (libesp's first-byte timeout), its bodyTimeout the longest silence
 * between body chunks once the head arrived (libesp's idle timeout).
 */
function phaseTimeouts({ headersTimeout, bodyTimeout }) {
  return [0, 0, 0, 0, timeoutMs(headersTimeout, 'headersTimeout'), timeoutMs(bodyTimeout, 'bodyTimeout')];
}

/** [name, value, ...] from any header form undici accepts; validates what undici validates. */
function flatHeaders(headers, bodyLength) {
  const pairs = [];
  if (headers == null) {
    // no headers
  } else if (Array.isArray(headers) && !Array.isArray(headers[0])) {
    for (let i = 0; i < headers.length; i += 2) pairs.push([headers[i], headers[i + 1]]);
  } else if (typeof headers[Symbol.iterator] === 'function') {
    for (const pair of headers) pairs.push(pair);
  } else {
    for (const pair of Object.entries(headers)) pairs.push(pair);
  }
  const flat = [];
  for (const [rawName, rawValue] of pairs) {
    if (rawValue === undefined || rawValue === null) continue;
    const name = String(rawName);
    const key = name.toLowerCase();
    const values = Array.isArray(rawValue) ? rawValue : [rawValue];
    if (REFUSED_HEADERS.has(key)) throw new InvalidArgumentError(`invalid ${key} header`);
    if (key === 'expect') throw new NotSupportedError('expect header not supported');
    if (key === 'connection') {
      const value = String(values[0]).toLowerCase();
      if (value !== 'close' && value !== 'keep-alive') throw new InvalidArgumentError('invalid connection header');
      continue;
    }
    if (key === 'content-length') {
      // libesp sends the length of the body it was given; a different one is undici's mismatch.
      if (Number(values[0]) !== bodyLength) throw new RequestContentLengthMismatchError('Request body length does not match content-length header');
      continue;
    }
    for (const value of values) flat.push(name, Buffer.isBuffer(value) ? value.toString('latin1') : String(value));
  }
  return flat;
}

/** The whole request body as one Buffer (libesp sends bodies whole), or null. */
async function bodyBuffer(body) {
  if (body == null) return null;
  if (typeof body === 'string') return Buffer.from(body);
  if (Buffer.isBuffer(body)) return body;
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (typeof body.arrayBuffer === 'function' && typeof body.stream === 'function') {
    return Buffer.from(await body.arrayBuffer()); // a Blob
  }
  if (typeof body[Symbol.asyncIterator] === 'function' || typeof body[Symbol.iterator] === 'function') {
    const chunks = [];
    for await (const chunk of body) {
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
    return Buffer.concat(chunks);
  }
  throw new InvalidArgumentError('body must be a string, a Buffer, a Uint8Array, a Blob, a stream or an iterable');
}

/** Header names lower-cased, repeated ones as arrays: the form undici's newer handlers get. */
function headersObject(rawHeaders) {
  const out = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toString('latin1').toLowerCase();
    const value = rawHeaders[i + 1].toString('latin1');
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else if (Array.isArray(prior)) prior.push(value);
    else out[name] = [prior, value];
  }
  return out;
}

/**
 * A handler of undici's older interface (onConnect, onHeaders, onData,
 * onComplete, onError: what Node's built-in fetch and undici's API use) for
 * any handler; a handler of the newer one (onRequestStart, onResponseStart,
 * ...) is adapted through a controller, as undici's UnwrapHandler does.
 */
function legacyHandler(handler) {
  if (typeof handler.onRequestStart !== 'function' && typeof handler.onResponseStart !== 'function') return handler;
  const controller = {
    paused: false,
    aborted: false,
    reason: null,
    rawHeaders: null,
    rawTrailers: null,
    abortCall: null,
    resumeCall: null,
    pause() {
      this.paused = true;
    },
    resume() {
      if (!this.paused) return;
      this.paused = false;
      this.resumeCall?.();
    },
    abort(reason) {
      if (this.aborted) return;
      this.aborted = true;
      this.reason = reason;
      this.abortCall?.(reason);
    },
  };
  return {
    onConnect(abort, context) {
      controller.abortCall = abort;
      handler.onRequestStart?.(controller, context);
    },
    onHeaders(status, rawHeaders, resume, statusText) {
      controller.resumeCall = resume;
      controller.rawHeaders = rawHeaders;
      handler.onResponseStart?.(controller, status, headersObject(rawHeaders), statusText);
      return !controller.paused;
    },
    onData(chunk) {
      handler.onResponseData?.(controller, chunk);
      return !controller.paused;
    },
    onComplete(rawTrailers) {
      controller.rawTrailers = rawTrailers;
      handler.onResponseEnd?.(controller, {});
    },
    onError(error) {
      if (typeof handler.onResponseError !== 'function') throw new InvalidArgumentError('invalid onError method');
      handler.onResponseError(controller, error);
    },
  };
}

/**
 * One dispatched request: collects its body, starts a libesp stream and
 * hands the handler what libesp has whenever the handler wants more. A
 * handler that pauses only stops the reading: libesp holds the body and
 * pauses the transfer past the client's stream_buffer_bytes, as for every
 * other stream.
 */
class DispatchedCall {
  #dispatcher;
  #handler;
  #stream = null;
  #abortReason = undefined;
  #aborted = false;
  #ended = false; // the handler got onComplete or onError
  #paused = false;
  #resumed = null; // ends the reading's wait while the handler is paused

  constructor(dispatcher, handler) {
    this.#dispatcher = dispatcher;
    this.#handler = handler;
  }

  /** Connects the handler, gathers the body, sends and delivers; every failure goes to the handler. */
  async run(lease, totalTimeoutMs, opts) {
    try {
      this.#handler.onConnect?.((reason) => this.#abort(reason));
      if (this.#aborted) throw this.#abortError();
      const url = requestURL(opts);
      const timeouts = phaseTimeouts(opts);
      const body = await bodyBuffer(opts.body);
      const headers = flatHeaders(opts.headers, body?.length ?? 0);
      if (this.#aborted) throw this.#abortError();
      const method = String(opts.method ?? 'GET').toUpperCase();
      const request = { method, path: url, headers, body, timeoutMs: totalTimeoutMs, flags: FLAG_STREAM_RAW, phaseTimeouts: timeouts };
      try {
        this.#stream = new NativeStream(lease, request);
      } catch (refused) {
        throw undiciErrorFor(refused, false);
      }
      await this.#deliver();
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#stream?.close();
      this.#dispatcher.callEnded(this);
    }
  }

  /** The head, then each chunk while the handler wants more, then the end. */
  async #deliver() {
    const head = this.#checked(await this.#stream.head(), false);
    const rawHeaders = headerList(head.headers).map((text) => Buffer.from(text, 'latin1'));
    this.#handler.onResponseStarted?.();
    let more = this.#handler.onHeaders(head.status, rawHeaders, () => this.#resume(), STATUS_CODES[head.status] ?? '');
    for (;;) {
      if (more === false) await this.#pause();
      const chunk = this.#checked(await this.#stream.next(), true);
      if (chunk === null) break;
      more = this.#handler.onData(chunk);
    }
    this.#ended = true;
    this.#handler.onComplete([]);
  }

  /** What the stream gave, or throws the error that ends the call. */
  #checked(item, headersSeen) {
    if (this.#aborted || item === CLOSED) throw this.#abortError();
    if (item instanceof Error) throw undiciErrorFor(item, headersSeen);
    return item;
  }

  #abortError() {
    return this.#abortReason ?? new RequestAbortedError('Request aborted');
  }

  /** Resolves once the handler resumes (or the call is aborted). */
  #pause() {
    if (this.#aborted) return undefined;
    this.#paused = true;
    return new Promise((resolve) => (this.#resumed = resolve));
  }

  #resume() {
    if (!this.#paused || this.#ended) return;
    this.#paused = false;
    this.#wakeReader();
  }

  #wakeReader() {
    const resumed = this.#resumed;
    this.#resumed = null;
    resumed?.();
  }

  #abort(reason) {
    if (this.#aborted || this.#ended) return;
    this.#aborted = true;
    this.#abortReason = reason;
    if (this.#stream === null) {
      // Still gathering the body: the handler hears of it now, not once the body is in.
      this.#fail(this.#abortError());
      this.#dispatcher.callEnded(this);
      return;
    }
    this.#stream.close(); // cancels the transfer; a waiting head/next gives CLOSED
    this.#wakeReader();
  }

  /** Ends the handler with `error`. */
  #fail(error) {
    if (this.#ended) return;
    this.#ended = true;
    this.#stream?.close();
    this.#handler.onError(error);
  }

  /** Stops the call (Dispatcher.destroy): the handler gets `error`. */
  destroy(error) {
    this.#abort(error);
  }
}

/**
 * An undici Dispatcher (`dispatch`, `close`, `destroy`) whose requests run on
 * libesp: `setGlobalDispatcher(dispatcher())` or `fetch(url, { dispatcher })`.
 * Its libesp client is a lease on the shared pool, like any other.
 */
class Dispatcher extends EventEmitter {
  #handle;
  #totalTimeoutMs; // 0: the config's timeout_ms; NO_TIMEOUT when it sets none
  #calls = new Set();
  #closed = false;
  #destroyed = false;
  #released = false;
  #onIdle = [];
  /** @type {{dispatch: Function} | null} */
  [kFallback] = null;

  /** @param {object|string} [config] libesp config keys over DISPATCHER_DEFAULTS */
  constructor(config = {}) {
    super();
    const overrides = typeof config === 'string' ? JSON.parse(config) : config;
    const json = JSON.stringify({ ...DISPATCHER_DEFAULTS, ...overrides });
    this.#totalTimeoutMs = overrides.timeout_ms === undefined ? NO_TIMEOUT : 0;
    const handle = native.clientGet(json);
    if (typeof handle === 'number' && handle < 0) throw errorFromStatus(handle, native.lastError(), native.strerror(handle));
    this.#handle = handle;
    forgottenLeases.register(this, handle, this);
  }

  /** True once close() or destroy() was called. */
  get closed() {
    return this.#closed;
  }

  /** True once destroy() was called. */
  get destroyed() {
    return this.#destroyed;
  }

  /**
   * Starts a request; the handler gets its head, body and end (or error).
   * Returns true: libesp queues calls itself, so a caller never waits for 'drain'.
   */
  dispatch(opts, handler) {
    if (!handler || typeof handler !== 'object') throw new InvalidArgumentError('handler must be an object');
    if (opts && (opts.upgrade || opts.method === 'CONNECT') && this[kFallback] && !this.#closed) {
      return this[kFallback].dispatch(opts, handler);
    }
    const legacy = legacyHandler(handler);
    const call = new DispatchedCall(this, legacy);
    try {
      if (!opts || typeof opts !== 'object') throw new InvalidArgumentError('opts must be an object');
      if (this.#destroyed) throw new ClientDestroyedError('The client is destroyed');
      if (this.#closed) throw new ClientClosedError('The client is closed');
      if (opts.upgrade || opts.method === 'CONNECT') {
        throw new NotSupportedError('upgrade and CONNECT requests are not supported by a libesp dispatcher of its own (an installed one hands them to the dispatcher it replaced)');
      }
    } catch (error) {
      legacy.onError(error);
      return false;
    }
    this.#calls.add(call);
    call.run(this.#handle, this.#totalTimeoutMs, opts);
    return true;
  }

  /** @internal a call has ended: the lease goes once the last one of a closed dispatcher ends. */
  callEnded(call) {
    this.#calls.delete(call);
    if (this.#closed && this.#calls.size === 0) this.#release();
  }

  /** Stops taking requests; resolves (or calls back) once the calls in flight have ended. */
  close(callback) {
    const done = new Promise((resolve) => {
      this.#closed = true;
      if (this.#calls.size === 0) this.#release();
      if (this.#released) resolve();
      else this.#onIdle.push(resolve);
    });
    if (typeof callback === 'function') done.then(() => callback(null, null));
    else return done;
  }

  /** Cancels every call in flight (their handlers get `error`) and releases the lease. */
  destroy(error, callback) {
    if (typeof error === 'function') [callback, error] = [error, null];
    this.#destroyed = true;
    this.#closed = true;
    const reason = error ?? new ClientDestroyedError('The client is destroyed');
    for (const call of [...this.#calls]) call.destroy(reason);
    return this.close(callback);
  }

  #release() {
    if (this.#released) return;
    this.#released = true;
    forgottenLeases.unregister(this);
    native.clientRelease(this.#handle);
    for (const resolve of this.#onIdle.splice(0)) resolve();
  }
}

/**
 * A new Dispatcher over libesp. `config` holds libesp config keys (see the
 * README's table) over DISPATCHER_DEFAULTS, e.g. { ca_file, max_connections }.
 */
function dispatcher(config) {
  return new Dispatcher(config);
}

module.exports = { Dispatcher, dispatcher, DISPATCHER_DEFAULTS, kFallback };
