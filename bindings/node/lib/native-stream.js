'use strict';
/**
 * One libesp stream (esp_stream_start) as JS sees it. libesp buffers the
 * body, pauses the transfer while the reader is behind (the client's
 * stream_buffer_bytes) and decides between SSE events and raw chunks; this
 * only waits for the addon's ready message and takes what is there. Used by
 * Client.stream, Client.fetch and the undici Dispatcher alike.
 */
const native = require('./native');
const { STATUS, errorFromStatus } = require('./errors');

/** NativeStreams by id, for the addon's ready messages. */
const openStreams = new Map();
let lastStreamId = 0;
/** The addon's readies of one wake-up: a stream id, or a Uint32Array of them when several came. */
native.onStreamReady((ids) => {
  if (typeof ids === 'number') return openStreams.get(ids)?.wake();
  for (let i = 0; i < ids.length; i++) openStreams.get(ids[i])?.wake();
});

/** What NativeStream.next/head give once the stream was closed under them. */
const CLOSED = Symbol('closed');
/** What NativeStream.nextNow gives when nothing is there yet. */
const AGAIN = Symbol('again');
/** streamNext that does not keep the process alive for the ready its AGAIN arms. */
const peekNext = (stream) => native.streamNext(stream, false);

class NativeStream {
  #stream;
  #id = ++lastStreamId;
  #wake = null;
  closed = false;

  /**
   * @param {bigint} clientHandle
   * @param {{method: string|null, path: string, headers: string[], body: Buffer|null, timeoutMs: number,
   *   flags: number, phaseTimeouts?: number[]}} encoded the addon's request arguments
   * Throws the EspError when libesp refuses the request.
   */
  constructor(clientHandle, encoded) {
    const stream = native.streamStart(
      clientHandle,
      encoded.method,
      encoded.path,
      encoded.headers,
      encoded.body,
      encoded.timeoutMs,
      encoded.flags,
      this.#id,
      encoded.phaseTimeouts,
    );
    if (typeof stream === 'number') throw NativeStream.#error(stream);
    this.#stream = stream;
    openStreams.set(this.#id, this);
  }

  /** The EspError of a status libesp just returned on this thread. */
  static #error(status) {
    return errorFromStatus(status, native.lastError(), native.strerror(status), { requestSent: native.lastErrorSent() });
  }

  /** look()'s result for this stream: an item, null at the end, an EspError, CLOSED, or AGAIN (ready will say). */
  #look(look) {
    if (this.closed) return CLOSED;
    const result = look(this.#stream);
    if (result === STATUS.ESP_EAGAIN) return AGAIN;
    return typeof result === 'number' ? NativeStream.#error(result) : result;
  }

  /**
   * Resolves with look()'s result once it is not AGAIN: one Promise, no
   * async frames (a chunk read by fetch or the dispatcher costs one).
   */
  #when(look) {
    return new Promise((resolve) => {
      const attempt = () => {
        const result = this.#look(look);
        if (result === AGAIN) this.#wake = attempt;
        else resolve(result);
      };
      attempt();
    });
  }

  /** {status, headers (flat), attempts, httpVersion}, an EspError, or CLOSED. */
  head() {
    return this.#when(native.streamHead);
  }

  /**
   * An SSE event (an object, or a string: the data of a plain "message"
   * event), a Buffer chunk, null at the end, an EspError, or CLOSED.
   */
  next() {
    return this.#when(native.streamNext);
  }

  /**
   * Calls `wake` (no arguments) once this stream has news after nextNow()
   * returned AGAIN: that AGAIN armed libesp's ready, which reaches this
   * thread only in a later task, so the wait is in place before it. Also
   * called when the stream is closed. A reader that keeps one `wake` for its
   * whole life allocates nothing per wait.
   */
  waitAfterAgain(wake) {
    if (this.closed) wake();
    else this.#wake = wake;
  }

  /** What next() gives when it is there already, else AGAIN (no Promise: one per item costs). */
  nextNow() {
    return this.#look(native.streamNext);
  }

  /**
   * nextNow() for a reader that will not wait if nothing is there: its AGAIN
   * does not keep the process alive (as an unread body must not).
   */
  peek() {
    return this.#look(peekNext);
  }

  wake() {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Cancels an unfinished transfer; a waiting head/next gets CLOSED. */
  close() {
    if (this.closed) return;
    this.closed = true;
    openStreams.delete(this.#id);
    native.streamClose(this.#stream);
    this.wake();
  }
}

module.exports = { NativeStream, CLOSED, AGAIN };
