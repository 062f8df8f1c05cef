'use strict';
/**
 * Node binding of libesp: one shared, pooled, config-keyed HTTP client for LLM
 * provider APIs. Thin by design: config validation, retries, timeouts, SSE
 * parsing and pooling all happen in C; this file maps libesp's lifecycle onto
 * Promises, async iterators, WHATWG fetch and explicit resource management.
 */
const native = require('./native');
const errors = require('./errors');
const { Dispatcher, dispatcher } = require('./dispatcher');
const { install, uninstall } = require('./install');
const { NativeStream, CLOSED, AGAIN } = require('./native-stream');
const { headersFromFlat, flattenHeaders } = require('./headers');
const { espFetch } = require('./fetch');

const { STATUS, AbortError, HttpStatusError, errorFromStatus } = errors;

// esp.h ESP_REQ_NO_RETRY.
const FLAG_NO_RETRY = 0x1;

/** Throws the EspError for a negative status from the addon; returns the value otherwise. */
function check(result) {
  if (typeof result === 'number' && result < 0) {
    throw errorFromStatus(result, native.lastError(), native.strerror(result));
  }
  return result;
}

/** The rejection for a call cancelled by `signal`: an AbortError carrying signal.reason. */
function abortError(signal) {
  return new AbortError('the call was aborted', STATUS.ESP_ECANCELLED, { cause: signal.reason });
}

/** A Buffer view of a request body (string, Buffer, typed array, ArrayBuffer), or null. */
function toBuffer(body) {
  if (body == null) return null;
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new TypeError('body must be a string, Buffer, TypedArray or ArrayBuffer (use `json` for objects)');
}

// esp.h ESP_NO_TIMEOUT: a timeout of Infinity means none.
const NO_TIMEOUT = -1;

/** A timeout option in milliseconds for libesp: 0 (or absent) the client's, Infinity none. */
function timeoutField(value, name) {
  if (value === undefined || value === null) return 0;
  if (value === Infinity) return NO_TIMEOUT;
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a non-negative number or Infinity`);
  return value;
}

/**
 * Throws unless method, path and the flat headers are free of NUL: C would
 * read a string only up to its NUL and send the rest cut off. Refused as
 * libesp refuses CR or LF in a header (ESP_EINVAL, nothing sent), in its words
 * for a bad method, path or header name; a header value is not quoted (it
 * may be a key).
 */
function refuseNul(method, path, headers) {
  const refuse = (message) => {
    throw new errors.InvalidArgumentError(message, STATUS.ESP_EINVAL);
  };
  if (typeof method === 'string' && method.includes('\0')) refuse('method is not a valid HTTP method token');
  if (path.includes('\0')) refuse('path contains white space or control characters');
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].includes('\0')) refuse(`header ${JSON.stringify(headers[i])} has an invalid name`);
    if (headers[i + 1].includes('\0')) refuse(`header '${headers[i]}' value contains a NUL byte`);
  }
}

/**
 * The addon's arguments for a request description (see RequestOptions in index.d.ts).
 * @returns {{method: string|null, path: string, headers: string[], body: Buffer|null, timeoutMs: number,
 *   phaseTimeouts?: number[], flags: number}}
 */
function encodeRequest(req) {
  if (req == null || typeof req !== 'object') throw new TypeError('request options must be an object');
  const path = req.path ?? req.url;
  if (typeof path !== 'string') throw new TypeError('request options need a `path` (or `url`) string');
  const headers = flattenHeaders(req.headers);
  refuseNul(req.method, path, headers);
  let body = toBuffer(req.body);
  if (req.json !== undefined) {
    body = Buffer.from(JSON.stringify(req.json));
    if (!headers.some((value, i) => i % 2 === 0 && value.toLowerCase() === 'content-type')) {
      headers.push('content-type', 'application/json');
    }
  }
  const phases = [
    timeoutField(req.connectTimeoutMs, 'connectTimeoutMs'),
    timeoutField(req.readTimeoutMs, 'readTimeoutMs'),
    timeoutField(req.writeTimeoutMs, 'writeTimeoutMs'),
    timeoutField(req.poolTimeoutMs, 'poolTimeoutMs'),
    timeoutField(req.firstByteTimeoutMs, 'firstByteTimeoutMs'),
    timeoutField(req.idleTimeoutMs, 'idleTimeoutMs'),
  ];
  return {
    method: req.method ?? null,
    path,
    headers,
    body,
    timeoutMs: timeoutField(req.timeoutMs, 'timeoutMs'),
    // None set (the usual case): the addon has no array to read.
    phaseTimeouts: phases.some((ms) => ms !== 0) ? phases : undefined,
    flags: req.retry === false ? FLAG_NO_RETRY : 0,
  };
}

/**
 * Starts one asynchronous libesp call; `onComplete(error, response)` runs
 * exactly once, with an EspResponse or an error.
 * An abort of `signal` cancels the call, which then completes with an
 * AbortError carrying signal.reason. Throws when libesp refuses the call.
 * @returns {bigint} the call handle, for cancel
 */
function startCall(clientHandle, encoded, signal, onComplete) {
  if (signal?.aborted) throw abortError(signal);
  let onAbort;
  const call = check(
    native.request(
      clientHandle,
      encoded.method,
      encoded.path,
      encoded.headers,
      encoded.body,
      encoded.timeoutMs,
      encoded.flags,
      (status, detail, requestSent, httpStatus, headers, body, attempts, httpVersion) => {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        if (status >= 0) {
          // A small body comes as an ArrayBuffer: a Buffer over it is made here, where it is cheapest.
          if (body instanceof ArrayBuffer) body = Buffer.from(body);
          return onComplete(null, new EspResponse({ status: httpStatus, headers, body, attempts, httpVersion }));
        }
        const aborted = status === STATUS.ESP_ECANCELLED && signal?.aborted;
        onComplete(aborted ? abortError(signal) : errorFromStatus(status, detail, native.strerror(status), { requestSent }));
      },
      encoded.phaseTimeouts,
    ),
  );
  if (signal) {
    onAbort = () => native.cancel(call);
    signal.addEventListener('abort', onAbort, { once: true });
  }
  return call;
}

/** A complete HTTP response, whatever its status. */
class EspResponse {
  #flatHeaders;
  #headers = null;

  /**
   * @param {{status: number, headers: string[] | string, body?: Buffer, attempts: number, httpVersion: number}} raw
   *   headers: [name, value, ...] or the addon's "name\0value\0..." text
   */
  constructor(raw) {
    /** The HTTP status. */
    this.status = raw.status;
    this.#flatHeaders = raw.headers;
    /** The whole body. */
    this.body = raw.body ?? Buffer.alloc(0);
    /** How many attempts libesp made (1 when it did not retry). */
    this.attempts = raw.attempts;
    /** 10, 11 or 20 for HTTP/1.0, HTTP/1.1 and HTTP/2. */
    this.httpVersion = raw.httpVersion;
  }

  /** True for a 2xx status. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The response headers (repeated headers joined with ", "); built on first use, as most callers never look. */
  get headers() {
    this.#headers ??= headersFromFlat(this.#flatHeaders);
    return this.#headers;
  }

  /** The body decoded as UTF-8. */
  text() {
    return this.body.toString('utf8');
  }

  /** The body parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }
}

/**
 * A streamed response's status and headers. The Headers object is made when
 * first read: a live stream keeps this for its whole life, and most readers
 * never look at the headers.
 */
class StreamHead {
  #joined;
  #headers = null;

  /** @param {{status: number, headers: string, httpVersion: number}} head the addon's head */
  constructor(head) {
    this.status = head.status;
    this.httpVersion = head.httpVersion;
    this.#joined = head.headers;
  }

  /** @returns {Headers} */
  get headers() {
    this.#headers ??= headersFromFlat(this.#joined);
    return this.#headers;
  }
}

/** Closes the NativeStream of a stream object that was garbage-collected unfinished. */
const forgottenStreams = new FinalizationRegistry((stream) => stream.close());

/**
 * The body of one streamed call, as an async iterable: Server-Sent Events
 * for a text/event-stream body, Buffer chunks for any other body (libesp
 * decides). Breaking out of a `for await` loop cancels the call; a consumer
 * that falls behind pauses the transfer in libesp until it catches up.
 */
class EventStream {
  #native = null;
  #failure = null; // the error the start ended in
  #done = false;
  #signal;
  #started;
  #settled = false; // #started has settled: next() need not wait for it
  #head = null; // {status, headers (flat), attempts, httpVersion}
  #waiting = null; // the Promise of the next() waiting for libesp's ready, and its functions
  #resolve = null;
  #reject = null;

  /** @internal use Client.stream() */
  constructor(clientHandle, req) {
    this.#signal = req.signal;
    /**
     * Resolves with {status, headers, httpVersion} once they arrive; rejects
     * when the call fails before that.
     * @type {Promise<{status: number, headers: Headers, httpVersion: number}>}
     */
    this.response = new Promise((resolve, reject) => {
      this.#started = this.#start(clientHandle, req).then(
        (head) => {
          this.#settled = true;
          resolve(head);
        },
        (error) => {
          this.#failure = error;
          this.#settled = true;
          reject(error);
        },
      );
    });
    this.response.catch(() => {}); // iteration reports the same failure
  }

  async #start(clientHandle, req) {
    const signal = req.signal;
    if (signal?.aborted) throw abortError(signal);
    this.#native = new NativeStream(clientHandle, encodeRequest(req));
    forgottenStreams.register(this, this.#native, this);
    signal?.addEventListener('abort', () => this.#native.close(), { once: true });
    const head = await this.#native.head();
    if (head === CLOSED) {
      throw signal?.aborted ? abortError(signal) : new AbortError('the stream was cancelled', STATUS.ESP_ECANCELLED);
    }
    if (head instanceof Error) throw head;
    this.#head = head;
    return new StreamHead(head);
  }

  /** @returns {AsyncIterator<SseEvent | Buffer>} */
  [Symbol.asyncIterator]() {
    return this;
  }

  /**
   * The next event or chunk, or done at the end of the stream. A started
   * 2xx stream costs one Promise per item: the item is taken when libesp's
   * ready comes, and that Promise is settled from there.
   */
  next() {
    if (this.#waiting) {
      // Called again before the last one settled: after it, in order.
      const again = () => this.next();
      return this.#waiting.then(again, again);
    }
    if (!this.#settled || this.#done || this.#failure) return this.#nextSlowly();
    const { status } = this.#head;
    if (status < 200 || status > 299) return this.#nextSlowly();
    const item = this.#native.nextNow();
    if (item !== AGAIN) {
      try {
        return Promise.resolve(this.#result(item));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    this.#waiting = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#native.waitAfterAgain(this.#onReady);
    return this.#waiting;
  }

  /** The stream has news for the waiting next(): take it (bound once: no closure per item). */
  #onReady = () => {
    const item = this.#native.nextNow();
    if (item === AGAIN) return this.#native.waitAfterAgain(this.#onReady);
    const resolve = this.#resolve, reject = this.#reject;
    this.#waiting = this.#resolve = this.#reject = null;
    try {
      resolve(this.#result(item));
    } catch (error) {
      reject(error);
    }
  };

  /** next() before the head is in, after the end or a failure, or for a non-2xx response. */
  async #nextSlowly() {
    if (!this.#settled) await this.#started;
    if (this.#done) return { value: undefined, done: true };
    if (this.#failure) return this.#end(this.#failure);
    const { status } = this.#head;
    if (status < 200 || status > 299) return this.#end(await this.#httpStatusError());
    return this.next();
  }

  /** The iterator result for what nextNow() gave (not AGAIN); throws the error that ends the stream. */
  #result(item) {
    if (typeof item === 'string') return { value: { event: 'message', data: item, id: '' }, done: false };
    if (item === null) return this.#end(null);
    if (item === CLOSED) return this.#end(this.#signal?.aborted ? abortError(this.#signal) : null);
    if (item instanceof Error) return this.#end(item);
    return { value: item, done: false };
  }

  /** Ends iteration, throwing `error` once if there is one. */
  #end(error) {
    this.#done = true;
    this.#native?.close();
    if (error) throw error;
    return { value: undefined, done: true };
  }

  /** A non-2xx response: its whole body, as an HttpStatusError (or the failure reading it). */
  async #httpStatusError() {
    const chunks = [];
    for (;;) {
      const item = await this.#native.next();
      if (item === CLOSED) return this.#signal?.aborted ? abortError(this.#signal) : null;
      if (item instanceof Error) return item;
      if (item === null) break;
      chunks.push(Buffer.isBuffer(item) ? item : Buffer.from(typeof item === 'string' ? item : item.data));
    }
    return new HttpStatusError(new EspResponse({ ...this.#head, body: Buffer.concat(chunks) }));
  }

  /** Stops the stream (called by `break` in `for await`): cancels the call. */
  async return() {
    this.cancel();
    return { value: undefined, done: true };
  }

  /** Cancels the call; iteration ends. */
  cancel() {
    this.#done = true;
    this.#native?.close();
  }
}

/** Releases the lease of a Client that was garbage-collected without close(). */
const forgottenLeases = new FinalizationRegistry((handle) => native.clientRelease(handle));

/** A lease on a shared libesp client. Clients with equal configs share one pool. */
class Client {
  #handle;
  #closed = false;

  /** @internal use getClient() */
  constructor(handle) {
    this.#handle = handle;
    forgottenLeases.register(this, handle, this);
  }

  /**
   * Sends a request and resolves with the whole response, whatever its HTTP
   * status. Rejects with an EspError subclass when no response came.
   * @param {import('../index').RequestOptions} req
   * @returns {Promise<EspResponse>}
   */
  request(req) {
    return new Promise((resolve, reject) => {
      startCall(this.#handle, encodeRequest(req), req.signal, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  /**
   * Sends a request and iterates over the Server-Sent Events of the response.
   * @param {import('../index').RequestOptions} req
   * @returns {EventStream}
   */
  stream(req) {
    return new EventStream(this.#handle, req);
  }

  /**
   * A WHATWG fetch through this client: `new OpenAI({ fetch: client.fetch })`.
   * The response body is a ReadableStream read from libesp as the consumer
   * pulls (libesp pauses the transfer while stream_buffer_bytes wait unread),
   * and init.signal cancels the call. Uses the client's retries: give the SDK
   * maxRetries: 0 so that one layer retries.
   * @type {typeof fetch}
   */
  fetch = (input, init) => espFetch(this.#handle, input, init);

  /** This client's stats (origins, requests, connections, latency), parsed from libesp's JSON. */
  stats() {
    return JSON.parse(check(native.stats(this.#handle)));
  }

  /** Releases the lease; in-flight calls finish. Calling it again does nothing. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    forgottenLeases.unregister(this);
    check(native.clientRelease(this.#handle));
  }

  /** `using client = getClient(...)` closes it at the end of the scope. */
  [Symbol.dispose]() {
    this.close();
  }

  /** `await using client = getClient(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose]() {
    this.close();
  }
}

/**
 * Takes a lease on the shared client for `config` (an object or a JSON
 * string; see the config table in the README). Equal configs share one client.
 * @throws {import('./errors').ConfigError} naming the bad key
 * @returns {Client}
 */
function getClient(config = {}) {
  const json = typeof config === 'string' ? config : JSON.stringify(config);
  return new Client(check(native.clientGet(json)));
}

/** Stats of the whole process (registry, every client and origin), parsed from libesp's JSON. */
function stats() {
  return JSON.parse(check(native.stats()));
}

/** The same numbers in the Prometheus text exposition format. */
function metricsPrometheus() {
  return check(native.metricsPrometheus());
}

/** The loaded libesp's version string, e.g. "0.1.0 (libcurl/7.88.1 ...)". */
function version() {
  return native.version();
}

/** libesp's table of config keys (esp_config_schema): { version, keys: [{ key, type, default, doc, ... }] }. */
function configSchema() {
  const text = native.configSchema();
  if (text === null) throw new Error('esp_config_schema: out of memory');
  return JSON.parse(text);
}

module.exports = {
  getClient,
  dispatcher,
  install,
  uninstall,
  Dispatcher,
  stats,
  metricsPrometheus,
  version,
  configSchema,
  Client,
  EspResponse,
  EventStream,
  ...errors,
};
