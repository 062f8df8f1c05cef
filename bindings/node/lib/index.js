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

const { STATUS, AbortError, HttpStatusError, errorFromStatus } = errors;

// esp.h ESP_REQ_* flags.
const FLAG_NO_RETRY = 0x1;
const FLAG_STREAM_RAW = 0x2;
// What a call asks the addon to deliver besides its completion (src/addon.c).
const WANT_HEADERS = 1;
const WANT_DATA = 2;
const WANT_EVENTS = 4;
// Kinds of the messages the addon delivers (src/addon.c).
const MSG_HEADERS = 1;
const MSG_DATA = 2;
const MSG_EVENT = 3;
const MSG_COMPLETE = 4;

// A stream pauses the transfer when this many events wait unread, and resumes
// once the consumer has caught up to a quarter of it.
const EVENT_QUEUE_HIGH = 64;
const EVENT_QUEUE_LOW = 16;
// fetch() bodies: bytes buffered ahead of the reader before the transfer pauses.
const FETCH_BODY_HIGH_WATER_BYTES = 256 * 1024;
// Statuses whose Response must have a null body (fetch spec).
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

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

/** A Headers object from the addon's flat [name, value, ...] list. */
function headersFromFlat(flat) {
  const headers = new Headers();
  for (let i = 0; i < flat.length; i += 2) headers.append(flat[i], flat[i + 1]);
  return headers;
}

/** [name, value, ...] from a Headers, an iterable of pairs or a plain object. */
function flattenHeaders(headers) {
  const flat = [];
  if (headers == null) return flat;
  const pairs = typeof headers[Symbol.iterator] === 'function' ? headers : Object.entries(headers);
  for (const [name, value] of pairs) {
    if (value === undefined || value === null) continue;
    flat.push(String(name), String(value));
  }
  return flat;
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
 * The addon's arguments for a request description (see RequestOptions in index.d.ts).
 * @returns {{method: string|null, path: string, headers: string[], body: Buffer|null, timeoutMs: number,
 *   phaseTimeouts?: number[], flags: number}}
 */
function encodeRequest(req) {
  if (req == null || typeof req !== 'object') throw new TypeError('request options must be an object');
  const path = req.path ?? req.url;
  if (typeof path !== 'string') throw new TypeError('request options need a `path` (or `url`) string');
  const headers = flattenHeaders(req.headers);
  let body = toBuffer(req.body);
  if (req.json !== undefined) {
    body = Buffer.from(JSON.stringify(req.json));
    if (!headers.some((value, i) => i % 2 === 0 && value.toLowerCase() === 'content-type')) {
      headers.push('content-type', 'application/json');
    }
  }
  return {
    method: req.method ?? null,
    path,
    headers,
    body,
    timeoutMs: timeoutField(req.timeoutMs, 'timeoutMs'),
    phaseTimeouts: [
      timeoutField(req.connectTimeoutMs, 'connectTimeoutMs'),
      timeoutField(req.readTimeoutMs, 'readTimeoutMs'),
      timeoutField(req.writeTimeoutMs, 'writeTimeoutMs'),
      timeoutField(req.poolTimeoutMs, 'poolTimeoutMs'),
    ],
    flags: req.retry === false ? FLAG_NO_RETRY : 0,
  };
}

/**
 * Starts one asynchronous libesp call. `onMessage(kind, ...)` gets headers,
 * chunks and events; `onComplete(error, rawResponse)` runs exactly once.
 * An abort of `signal` cancels the call, which then completes with an
 * AbortError carrying signal.reason. Throws when libesp refuses the call.
 * @returns {bigint} the call handle, for cancel and pause
 */
function startCall(clientHandle, encoded, want, signal, onMessage, onComplete) {
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
      want,
      (kind, a, b, c, d) => {
        if (kind !== MSG_COMPLETE) return onMessage(kind, a, b, c, d);
        if (onAbort) signal.removeEventListener('abort', onAbort);
        if (a >= 0) return onComplete(null, c);
        const aborted = a === STATUS.ESP_ECANCELLED && signal?.aborted;
        onComplete(aborted ? abortError(signal) : errorFromStatus(a, b, native.strerror(a), { requestSent: d }));
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

  /** @param {{status: number, headers: string[], body?: Buffer, attempts: number, httpVersion: number}} raw */
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
 * The Server-Sent Events of one streamed call, as an async iterable.
 * Breaking out of a `for await` loop cancels the call; a consumer that falls
 * behind pauses the transfer until it catches up.
 */
class EventStream {
  #call = null;
  #events = [];
  #error = null;
  #done = false;
  #httpFailure = false; // a non-2xx head: the body becomes an HttpStatusError
  #paused = false;
  #wake = null;
  #resolveHead;
  #rejectHead;

  /** @internal use Client.stream() */
  constructor(clientHandle, req) {
    /**
     * Resolves with {status, headers, httpVersion} once they arrive; rejects
     * when the call fails before that.
     * @type {Promise<{status: number, headers: Headers, httpVersion: number}>}
     */
    this.response = new Promise((resolve, reject) => {
      this.#resolveHead = resolve;
      this.#rejectHead = reject;
    });
    this.response.catch(() => {}); // iteration reports the same failure
    try {
      this.#call = startCall(
        clientHandle,
        encodeRequest(req),
        WANT_HEADERS | WANT_EVENTS,
        req.signal,
        (kind, a, b, c, d) => (kind === MSG_HEADERS ? this.#onHead(a, b, c) : this.#onEvent(a, b, c, d)),
        (error, raw) => this.#finish(error ?? (this.#httpFailure ? new HttpStatusError(new EspResponse(raw)) : null)),
      );
    } catch (error) {
      this.#finish(error);
    }
  }

  #onHead(status, flatHeaders, httpVersion) {
    const head = { status, headers: headersFromFlat(flatHeaders), httpVersion };
    this.#resolveHead(head);
    this.#httpFailure = status < 200 || status > 299;
  }

  #onEvent(event, data, id, retry) {
    if (this.#done || this.#httpFailure) return;
    this.#events.push({ event, data, id, retry: retry < 0 ? undefined : retry });
    if (!this.#paused && this.#events.length >= EVENT_QUEUE_HIGH) {
      this.#paused = true;
      native.pause(this.#call, true);
    }
    this.#signal();
  }

  #finish(error) {
    if (error) this.#rejectHead(error);
    if (this.#done) return; // cancelled by the consumer: that end is not an error
    this.#error = error;
    this.#done = true;
    this.#signal();
  }

  #signal() {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** @returns {AsyncIterator<SseEvent>} */
  [Symbol.asyncIterator]() {
    return this;
  }

  /** The next event, or done at the end of the stream. */
  async next() {
    for (;;) {
      if (this.#events.length > 0) {
        const value = this.#events.shift();
        if (this.#paused && this.#events.length <= EVENT_QUEUE_LOW) {
          this.#paused = false;
          native.pause(this.#call, false);
        }
        return { value, done: false };
      }
      if (this.#error) {
        const error = this.#error;
        this.#error = null;
        this.#done = true;
        this.#events.length = 0;
        throw error;
      }
      if (this.#done) return { value: undefined, done: true };
      await new Promise((resolve) => {
        const earlier = this.#wake; // a concurrent next() waits too
        this.#wake = earlier ? () => (earlier(), resolve()) : resolve;
      });
    }
  }

  /** Stops the stream (called by `break` in `for await`): cancels the call. */
  async return() {
    this.cancel();
    return { value: undefined, done: true };
  }

  /** Cancels the call; buffered events are dropped and iteration ends. */
  cancel() {
    if (this.#done) return;
    this.#done = true;
    this.#events.length = 0;
    this.#error = null;
    if (this.#call !== null) native.cancel(this.#call);
    this.#signal();
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
      startCall(this.#handle, encodeRequest(req), 0, req.signal, null, (error, raw) =>
        error ? reject(error) : resolve(new EspResponse(raw)),
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
   * The response body is a ReadableStream fed as bytes arrive (the transfer
   * pauses while 256 KiB wait unread), and init.signal cancels the call. Uses the client's retries: give the SDK
   * maxRetries: 0 so that one layer retries.
   * @type {typeof fetch}
   */
  fetch = (input, init) => this.#fetch(input, init);

  async #fetch(input, init) {
    // Request normalizes every form of input and init (URL, headers, body, signal).
    const request = new Request(input, init?.body != null && init.duplex === undefined ? { ...init, duplex: 'half' } : init);
    const { signal } = request;
    // fetch sends only http(s) to the network; anything else is a network error, never a relative path.
    const { protocol } = new URL(request.url);
    if (protocol !== 'http:' && protocol !== 'https:') {
      const detail = `unsupported URL scheme '${protocol.slice(0, -1)}' (only http and https)`;
      throw new TypeError('fetch failed', { cause: new errors.InvalidArgumentError(detail, STATUS.ESP_EINVAL) });
    }
    const body = request.body === null ? null : Buffer.from(await request.arrayBuffer());
    const encoded = {
      method: request.method,
      path: request.url,
      headers: flattenHeaders(request.headers),
      body,
      timeoutMs: 0,
      flags: FLAG_STREAM_RAW,
    };
    return new Promise((resolve, reject) => {
      let call = null;
      let responded = false;
      let controller = null; // set when the Response has a body stream
      let paused = false;
      let cancelled = false;
      const respond = (status, flatHeaders) => {
        responded = true;
        if (status < 200 || status > 599) {
          // Response cannot represent it (fetch never exposes 1xx heads).
          native.cancel(call);
          cancelled = true;
          reject(new TypeError('fetch failed', { cause: new RangeError(`unusable HTTP status ${status}`) }));
          return;
        }
        const hasBody = request.method !== 'HEAD' && !NULL_BODY_STATUSES.has(status);
        const stream = hasBody
          ? new ReadableStream(
              {
                start: (c) => void (controller = c),
                pull: () => {
                  if (paused) {
                    paused = false;
                    native.pause(call, false);
                  }
                },
                cancel: () => {
                  cancelled = true;
                  native.cancel(call);
                },
              },
              new ByteLengthQueuingStrategy({ highWaterMark: FETCH_BODY_HIGH_WATER_BYTES }),
            )
          : null;
        const response = new Response(stream, { status, headers: headersFromFlat(flatHeaders) });
        Object.defineProperty(response, 'url', { value: request.url });
        resolve(response);
      };
      const onMessage = (kind, a, b) => {
        if (kind === MSG_HEADERS) return respond(a, b);
        if (!controller || cancelled) return;
        controller.enqueue(a);
        if (!paused && controller.desiredSize <= 0) {
          paused = true;
          native.pause(call, true);
        }
      };
      const onComplete = (error, raw) => {
        if (!responded && !error) respond(raw.status, raw.headers); // no head was delivered
        // fetch rejects an aborted call with signal.reason, like undici does.
        const failure = error && (signal.aborted ? signal.reason : error);
        if (!responded) reject(signal.aborted ? failure : new TypeError('fetch failed', { cause: failure }));
        if (!controller || cancelled) return;
        if (failure) controller.error(failure);
        else controller.close();
      };
      try {
        call = startCall(this.#handle, encoded, WANT_HEADERS | WANT_DATA, signal, onMessage, onComplete);
      } catch (error) {
        reject(signal.aborted ? signal.reason : new TypeError('fetch failed', { cause: error }));
      }
    });
  }

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

module.exports = {
  getClient,
  dispatcher,
  install,
  uninstall,
  Dispatcher,
  stats,
  metricsPrometheus,
  version,
  Client,
  EspResponse,
  EventStream,
  ...errors,
};
