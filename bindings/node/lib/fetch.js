'use strict';
/**
 * Client.fetch: a WHATWG fetch over one libesp stream (esp_stream_start,
 * raw chunks). Kept lean because SDKs send every call through it: a plain
 * call (a URL and an init of method, headers, body and signal, as SDKs make
 * them) is read without building a Request, and a body already whole in
 * libesp when the head arrives is taken at once, into a WholeResponse.
 */
const { NativeStream, CLOSED, AGAIN } = require('./native-stream');
const { STATUS, InvalidArgumentError } = require('./errors');
const { headersFromFlat, flattenHeaders } = require('./headers');
const { WholeResponse } = require('./whole-response');

// esp.h ESP_REQ_STREAM_RAW: chunks as they come, whatever the content type.
const FLAG_STREAM_RAW = 0x2;
// Statuses whose Response must have a null body (fetch spec).
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
// Methods Request keeps as they are; any other spelling goes through Request, which normalizes or refuses it.
const PLAIN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
// The init members a plain call may set; any other goes through Request, which checks it.
const PLAIN_INIT_KEYS = new Set(['method', 'headers', 'body', 'signal', 'duplex']);
// The most body taken from libesp with the head, before anyone reads it: a
// whole small body then needs no stream of ours, and a longer one still
// waits in libesp (paused past stream_buffer_bytes) until the consumer pulls.
const EAGER_BODY_BYTES = 64 * 1024;

/**
 * What libesp needs of a plain call, or null when Request must read it: its
 * URL is a string or URL, its init has only plain members and its body is
 * absent, a string or bytes. The same values Request would give, without
 * building one (with its own AbortSignal and body stream).
 * @returns {{url: URL, method: string, headers: string[], body: Buffer|null, signal: AbortSignal|null} | null}
 */
function plainCall(input, init) {
  let url;
  if (input instanceof URL) url = input;
  else if (typeof input !== 'string' || !URL.canParse(input)) return null;
  else url = new URL(input);
  if (url.username !== '' || url.password !== '') return null; // Request refuses credentials in a URL
  const call = { url, method: 'GET', headers: [], body: null, signal: null };
  if (init == null) return call;
  if (typeof init !== 'object') return null;
  for (const key in init) if (init[key] !== undefined && !PLAIN_INIT_KEYS.has(key)) return null;
  const { method, headers, body, signal, duplex } = init;
  if (duplex !== undefined && duplex !== 'half') return null;
  if (method !== undefined) {
    if (!PLAIN_METHODS.has(method)) return null;
    call.method = method;
  }
  if (signal != null) {
    if (!(signal instanceof AbortSignal)) return null;
    call.signal = signal;
  }
  if (headers != null) {
    try {
      call.headers = flattenHeaders(headers instanceof Headers ? headers : new Headers(headers));
    } catch {
      return null; // Request throws its own TypeError for it
    }
  }
  if (body == null) return call;
  if (call.method === 'GET' || call.method === 'HEAD') return null; // refused by Request
  if (typeof body === 'string') {
    call.body = Buffer.from(body);
    if (!call.headers.some((name, i) => i % 2 === 0 && name === 'content-type')) {
      call.headers.push('content-type', 'text/plain;charset=UTF-8'); // what Request adds
    }
  } else if (ArrayBuffer.isView(body)) {
    call.body = Buffer.from(body.buffer, body.byteOffset, body.byteLength); // libesp copies it
  } else if (body instanceof ArrayBuffer) {
    call.body = Buffer.from(body);
  } else {
    return null; // Blob, FormData, URLSearchParams, streams: Request encodes them
  }
  return call;
}

/** The same fields through a Request, which normalizes every form of input and init. */
async function requestCall(input, init) {
  const request = new Request(input, init?.body != null && init.duplex === undefined ? { ...init, duplex: 'half' } : init);
  return {
    url: new URL(request.url),
    method: request.method,
    headers: flattenHeaders(request.headers),
    body: request.body === null ? null : Buffer.from(await request.arrayBuffer()),
    signal: request.signal,
  };
}

/**
 * The body of a stream past its head. What libesp holds already (up to
 * EAGER_BODY_BYTES) is taken now: a body that ended within it is returned as
 * its bytes (for a WholeResponse) and the stream is closed; otherwise a
 * ReadableStream gives what was taken, then reads the rest from libesp as
 * the consumer pulls.
 * @returns {Uint8Array | ReadableStream}
 */
function responseBody(stream, finish, failure) {
  const taken = [];
  let bytes = 0;
  let end = AGAIN; // what ended the look: AGAIN (nothing more yet), null (the end), an error or CLOSED
  while (bytes < EAGER_BODY_BYTES) {
    end = stream.peek();
    if (!Buffer.isBuffer(end)) break;
    taken.push(end);
    bytes += end.length;
    end = AGAIN;
  }
  if (end === null) {
    finish();
    return taken.length === 1 ? taken[0] : Buffer.concat(taken, bytes);
  }
  // highWaterMark 0: nothing more is read ahead here; libesp holds the body.
  return new ReadableStream(
    {
      pull: async (controller) => {
        let item = taken.shift();
        if (item === undefined) {
          item = end === AGAIN ? await stream.next() : end;
          end = AGAIN;
        }
        if (Buffer.isBuffer(item)) return controller.enqueue(new Uint8Array(item.buffer, item.byteOffset, item.length));
        finish();
        if (item === null) controller.close();
        else controller.error(failure(item));
      },
      cancel: finish,
    },
    { highWaterMark: 0 },
  );
}

/**
 * fetch(input, init) through the libesp client `clientHandle`: the body is
 * read from libesp as the consumer pulls, and init.signal cancels the call.
 * @returns {Promise<Response>}
 */
async function espFetch(clientHandle, input, init) {
  const call = plainCall(input, init) ?? (await requestCall(input, init));
  // fetch sends only http(s) to the network; anything else is a network error, never a relative path.
  const { protocol } = call.url;
  if (protocol !== 'http:' && protocol !== 'https:') {
    const detail = `unsupported URL scheme '${protocol.slice(0, -1)}' (only http and https)`;
    throw new TypeError('fetch failed', { cause: new InvalidArgumentError(detail, STATUS.ESP_EINVAL) });
  }
  const { signal } = call;
  if (signal?.aborted) throw signal.reason;
  const url = call.url.href;
  let stream;
  try {
    stream = new NativeStream(clientHandle, {
      method: call.method,
      path: url,
      headers: call.headers,
      body: call.body,
      timeoutMs: 0,
      flags: FLAG_STREAM_RAW,
    });
  } catch (error) {
    throw new TypeError('fetch failed', { cause: error });
  }
  const onAbort = signal ? () => stream.close() : null;
  signal?.addEventListener('abort', onAbort, { once: true });
  const finish = () => {
    signal?.removeEventListener('abort', onAbort);
    stream.close();
  };
  // fetch rejects an aborted call with signal.reason, like undici does.
  const failure = (error) => (error === CLOSED || signal?.aborted ? signal.reason : error);
  const head = await stream.head();
  if (head === CLOSED) throw signal.reason;
  if (head instanceof Error) {
    finish();
    throw new TypeError('fetch failed', { cause: failure(head) });
  }
  const { status } = head;
  if (status < 200 || status > 599) {
    // Response cannot represent it (fetch never exposes 1xx heads).
    finish();
    throw new TypeError('fetch failed', { cause: new RangeError(`unusable HTTP status ${status}`) });
  }
  const responseInit = { status, headers: headersFromFlat(head.headers) };
  const body = call.method === 'HEAD' || NULL_BODY_STATUSES.has(status) ? null : responseBody(stream, finish, failure);
  if (body instanceof Uint8Array) return new WholeResponse(body, responseInit, url);
  if (body === null) finish();
  const response = new Response(body, responseInit);
  Object.defineProperty(response, 'url', { value: url });
  return response;
}

module.exports = { espFetch };
