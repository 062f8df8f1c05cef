'use strict';
/**
 * The Response Client.fetch gives for a body that was whole in memory when
 * the head arrived (most non-streamed API calls). A standard Response builds
 * a ReadableStream for its body and reads it back through promise chains,
 * several times the cost of the call itself; this one keeps the bytes and
 * makes that stream only if someone asks for `body` (or blob/formData).
 * Everything else (status, headers, ok, instanceof Response) is Response's,
 * and so are Response's own methods called on it unbound
 * (`Response.prototype.text.call(res)`): they read the body from the
 * internal state Response keeps under a symbol, whose `body` is made on that
 * first access, from the same bytes.
 */

// The UTF-8 byte order mark, which the fetch spec's "UTF-8 decode" drops.
const BOM = [0xef, 0xbb, 0xbf];

// The symbol under which undici's Response keeps its internal state (status,
// headers, body); null where that state is out of reach (then `new
// WholeResponse` gives a standard Response over the bytes).
const STATE = (() => {
  const probe = new Response(null);
  return Object.getOwnPropertySymbols(probe).find((s) => {
    const v = probe[s];
    return v !== null && typeof v === 'object' && 'status' in v && 'headersList' in v && 'urlList' in v;
  }) || null;
})();

// The WholeResponse a state belongs to, for the state's body accessor.
const OWNER = Symbol('WholeResponse');

function unusable() {
  return new TypeError('Body is unusable: Body has already been read');
}

class WholeResponse extends Response {
  #bytes;
  #url;
  #used = false;
  #standard = null; // a Response over the bytes, once its body stream is wanted

  /**
   * @param {Uint8Array} bytes the whole body (kept, not copied: it is never handed out)
   * @param {ResponseInit} init
   * @param {string} url
   */
  constructor(bytes, init, url) {
    if (!STATE) {
      const standard = new Response(bytes, init);
      Object.defineProperty(standard, 'url', { value: url });
      return standard; // eslint-disable-line no-constructor-return
    }
    super(null, init);
    this.#bytes = bytes;
    this.#url = url;
    const state = this[STATE];
    state[OWNER] = this;
    Object.defineProperty(state, 'body', WholeResponse.#lazyBody);
  }

  // Response's own code reaches the body only through its state: made there
  // when first asked, from the standard Response every member then uses. One
  // accessor for all (a pair of closures per response cost 5 us each).
  static #lazyBody = {
    get() {
      return this[OWNER].#asStandard()[STATE].body;
    },
    set(body) {
      this[OWNER].#asStandard()[STATE].body = body;
    },
    enumerable: true,
    configurable: true,
  };

  get url() {
    return this.#url;
  }

  /** The standard Response every stream-based member goes through once one was used. */
  #asStandard() {
    if (this.#standard) return this.#standard;
    const init = { status: this.status, statusText: this.statusText, headers: this.headers };
    if (this.#used) {
      // Read already: a stream that is disturbed, as a consumed body's is.
      this.#standard = new Response(new Uint8Array(0), init);
      this.#standard.arrayBuffer();
    } else {
      this.#standard = new Response(this.#bytes, init);
    }
    return this.#standard;
  }

  /** The bytes, once; a TypeError after that. */
  #take() {
    if (this.#used) throw unusable();
    this.#used = true;
    return this.#bytes;
  }

  get body() {
    return this.#asStandard().body;
  }

  get bodyUsed() {
    return this.#standard ? this.#standard.bodyUsed : this.#used;
  }

  async arrayBuffer() {
    if (this.#standard) return this.#standard.arrayBuffer();
    const b = this.#take();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  }

  async text() {
    if (this.#standard) return this.#standard.text();
    const b = this.#take();
    const start = b[0] === BOM[0] && b[1] === BOM[1] && b[2] === BOM[2] ? 3 : 0;
    return Buffer.from(b.buffer, b.byteOffset + start, b.byteLength - start).toString('utf8');
  }

  async json() {
    if (this.#standard) return this.#standard.json();
    return JSON.parse(await this.text());
  }

  async bytes() {
    if (this.#standard) return this.#standard.bytes();
    return new Uint8Array(this.#take());
  }

  async blob() {
    return this.#asStandard().blob();
  }

  async formData() {
    return this.#asStandard().formData();
  }

  clone() {
    if (this.#standard) {
      const copy = this.#standard.clone();
      Object.defineProperty(copy, 'url', { value: this.#url });
      return copy;
    }
    if (this.#used) throw new TypeError('Response.clone: Body has already been consumed.');
    return new WholeResponse(this.#bytes, { status: this.status, statusText: this.statusText, headers: this.headers }, this.#url);
  }
}

module.exports = { WholeResponse };
