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
native.onStreamReady((id) => openStreams.get(id)?.wake());

/** What NativeStream.next/head give once the stream was closed under them. */
const CLOSED = Symbol('closed');
/** What NativeStream.nextNow gives when nothing is there yet. */
const AGAIN = Symbol('again');

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

  /** Resolves with look()'s result once it is not ESP_EAGAIN: an item, null at the end, an EspError, or CLOSED. */
  async #until(look) {
    for (;;) {
      if (this.closed) return CLOSED;
      const result = look(this.#stream);
      if (result !== STATUS.ESP_EAGAIN) return typeof result === 'number' ? NativeStream.#error(result) : result;
      await new Promise((resolve) => (this.#wake = resolve));
    }
  }

  /** {status, headers (flat), attempts, httpVersion}, an EspError, or CLOSED. */
  head() {
    return this.#until(native.streamHead);
  }

  /**
   * An SSE event (an object, or a string: the data of a plain "message"
   * event), a Buffer chunk, null at the end, an EspError, or CLOSED.
   */
  next() {
    return this.#until(native.streamNext);
  }

  /**
   * next() once nextNow() has returned AGAIN: that AGAIN armed libesp's
   * ready, which reaches this thread only in a later task, so the wait is in
   * place before it and no second look is needed first.
   */
  async nextAfterAgain() {
    if (!this.closed) await new Promise((resolve) => (this.#wake = resolve));
    return this.#until(native.streamNext);
  }

  /** What next() gives when it is there already, else AGAIN (no Promise: one per item costs). */
  nextNow() {
    if (this.closed) return CLOSED;
    const result = native.streamNext(this.#stream);
    if (result === STATUS.ESP_EAGAIN) return AGAIN;
    return typeof result === 'number' ? NativeStream.#error(result) : result;
  }

  /**
   * nextNow() for a reader that will not wait if nothing is there: its AGAIN
   * does not keep the process alive (as an unread body must not).
   */
  peek() {
    if (this.closed) return CLOSED;
    const result = native.streamNext(this.#stream, false);
    if (result === STATUS.ESP_EAGAIN) return AGAIN;
    return typeof result === 'number' ? NativeStream.#error(result) : result;
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
