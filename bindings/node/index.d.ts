/**
 * Node binding of libesp: one shared, pooled, config-keyed HTTP client for LLM
 * provider APIs. Every call is asynchronous and never blocks the event loop.
 */
import { EventEmitter } from 'node:events';

/** Client config: the JSON object of libesp's config table (README; `configSchema()`, which test/config-schema.test.mjs holds this to). */
export interface ClientConfig {
  provider?: 'openai' | 'azure' | 'anthropic' | 'gemini' | 'groq' | 'cerebras' | 'mistral' | 'together' | 'openrouter' | 'jina' | 'ollama' | 'generic' | (string & {});
  name?: string;
  base_url?: string;
  api_key?: string;
  api_key_env?: string;
  organization?: string;
  project?: string;
  api_version?: string;
  headers?: Record<string, string>;
  /** Origins besides base_url's that may receive the client's credentials. */
  credential_origins?: string[];
  timeout_ms?: number;
  connect_timeout_ms?: number;
  pool_timeout_ms?: number;
  idle_timeout_ms?: number;
  first_byte_timeout_ms?: number;
  max_connections?: number;
  http2?: boolean;
  max_retries?: number;
  retry_base_ms?: number;
  retry_max_ms?: number;
  retry_after_max_ms?: number;
  /** Header carrying the idempotency key of retriable POSTs ("" sends none). */
  idempotency_header?: string;
  breaker_failures?: number;
  breaker_cooldown_ms?: number;
  idle_ttl_ms?: number;
  conn_max_idle_ms?: number;
  verify_tls?: boolean;
  ca_file?: string;
  client_cert?: string;
  client_key?: string;
  proxy?: string;
  isolate?: boolean;
  /** setsockopt [level, option, value] on every socket the client opens; implies isolate. */
  socket_options?: Array<[number, number, number]>;
  max_response_bytes?: number;
  slow_request_ms?: number;
  /** How far a stream's reader may fall behind before the transfer pauses (default 1 MiB). */
  stream_buffer_bytes?: number;
  /** Where a paused stream resumes (default a quarter of stream_buffer_bytes). */
  stream_resume_bytes?: number;
  /** Requests and tokens per minute of the credential; {} only learns them from the provider's headers. */
  rate_limit?: { requests_per_minute?: number; tokens_per_minute?: number };
  /** Rate limits and breakers shared by every process using this Redis. */
  shared_state?: { redis: string; namespace?: string; timeout_ms?: number };
  /** Endpoints of one API, each with its own key: requests are spread over them and fail over. */
  deployments?: Array<{
    base_url: string;
    api_key?: string;
    api_key_env?: string;
    weight?: number;
    rate_limit?: { requests_per_minute?: number; tokens_per_minute?: number };
    name?: string;
  }>;
  /** How a deployment is picked (default "least_busy"). */
  routing?: 'least_busy' | 'weighted' | 'ordered';
  /** How long a failing deployment is skipped, in ms (default 5000). */
  deployment_cooldown_ms?: number;
}

/** Request headers: a Headers, [name, value] pairs, or a plain object. */
export type HeadersLike = Headers | Iterable<readonly [string, string]> | Record<string, string | number | undefined>;

/** One request. */
export interface RequestOptions {
  /** Default: GET, or POST when there is a body. */
  method?: string;
  /** Relative to the client's base_url, or an absolute URL. */
  path?: string;
  /** Alias of `path`. */
  url?: string;
  /** Extra headers; they override the client's. */
  headers?: HeadersLike;
  /** The raw body. */
  body?: string | Buffer | ArrayBufferView | ArrayBuffer;
  /** A value sent as a JSON body (content-type: application/json unless set). */
  json?: unknown;
  /** Total timeout of this request; default (or 0): the client's timeout_ms; Infinity: none. */
  timeoutMs?: number;
  /** DNS + TCP + TLS; default: the client's connect_timeout_ms; Infinity: none. */
  connectTimeoutMs?: number;
  /** Longest silence while waiting for response bytes (headers or body); default: the client's idle_timeout_ms. */
  readTimeoutMs?: number;
  /** Longest stall while sending the body; default: none. */
  writeTimeoutMs?: number;
  /** Longest wait for a connection slot (ESP_EPOOLTIMEOUT); default: the client's pool_timeout_ms. */
  poolTimeoutMs?: number;
  /** Longest wait for the response head, per attempt; default: the client's first_byte_timeout_ms; Infinity: none. */
  firstByteTimeoutMs?: number;
  /** Longest silence between body bytes once the head arrived; default: the client's idle_timeout_ms (none when readTimeoutMs is set); Infinity: none. */
  idleTimeoutMs?: number;
  /** false: never retry this request, whatever the client's max_retries. */
  retry?: boolean;
  /** Aborting it cancels the call, which rejects with an AbortError. */
  signal?: AbortSignal;
}

/** A complete HTTP response, whatever its status (a 404 is a response, not an error). */
export class EspResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
  /** How many attempts libesp made (1 when it did not retry). */
  readonly attempts: number;
  /** 10, 11 or 20 for HTTP/1.0, HTTP/1.1, HTTP/2. */
  readonly httpVersion: number;
  /** True for a 2xx status. */
  readonly ok: boolean;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = any>(): T;
}

/** One Server-Sent Event. */
export interface SseEvent {
  /** "message" when the stream named none. */
  event: string;
  data: string;
  /** The last event id, "" when none. */
  id: string;
  /** The reconnection time this event set, if any. */
  retry?: number;
}

/** Status and headers of a streamed response. */
export interface ResponseHead {
  status: number;
  headers: Headers;
  httpVersion: number;
}

/**
 * The body of one streamed call: SSE events for a text/event-stream body,
 * Buffer chunks for any other body (libesp decides). Breaking out of
 * `for await` cancels the call; a consumer that falls behind pauses the
 * transfer in libesp. A non-2xx status makes iteration throw an
 * HttpStatusError.
 */
export class EventStream implements AsyncIterableIterator<SseEvent | Buffer> {
  /** Resolves once status and headers arrive. */
  readonly response: Promise<ResponseHead>;
  [Symbol.asyncIterator](): AsyncIterableIterator<SseEvent | Buffer>;
  next(): Promise<IteratorResult<SseEvent | Buffer, undefined>>;
  return(): Promise<IteratorResult<SseEvent | Buffer, undefined>>;
  /** Cancels the call and ends iteration. */
  cancel(): void;
}

/** A lease on a shared libesp client. */
export class Client implements Disposable, AsyncDisposable {
  private constructor();
  /** Sends a request; resolves with the response whatever its HTTP status. */
  request(req: RequestOptions): Promise<EspResponse>;
  /** Sends a request and iterates over the Server-Sent Events of its response. */
  stream(req: RequestOptions): EventStream;
  /**
   * WHATWG fetch through this client, for SDKs that take one:
   * `new OpenAI({ apiKey, baseURL, fetch: client.fetch, maxRetries: 0 })`.
   */
  readonly fetch: typeof globalThis.fetch;
  /** This client's stats, parsed from libesp's JSON. */
  stats(): Record<string, unknown>;
  /** Releases the lease; in-flight calls finish. Idempotent. */
  close(): void;
  [Symbol.dispose](): void;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Takes a lease on the shared client for `config` (an object or JSON text). */
export function getClient(config?: ClientConfig | string): Client;
/** What undici's Dispatcher.dispatch takes (the fields libesp reads). */
export interface DispatchOptions {
  origin: string | URL;
  path: string;
  method: string;
  headers?: Record<string, string | string[] | undefined> | Iterable<readonly [string, string]> | string[] | null;
  body?: string | Uint8Array | ArrayBuffer | Blob | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null;
  query?: Record<string, unknown>;
  upgrade?: string | null;
  /** Longest wait for the response head in ms (0: none; absent: the config's first_byte_timeout_ms). */
  headersTimeout?: number | null;
  /** Longest silence between body chunks in ms once the head arrived (0: none; absent: the config's idle_timeout_ms). */
  bodyTimeout?: number | null;
}

/**
 * An undici-compatible Dispatcher whose requests run on libesp's shared pool:
 * `fetch(url, { dispatcher })`, undici's setGlobalDispatcher, or install().
 */
export class Dispatcher extends EventEmitter {
  /** Starts a request; `handler` has undici's older (onHeaders, onData, ...) or newer (onResponseStart, ...) interface. */
  dispatch(options: DispatchOptions, handler: object): boolean;
  /** Stops taking requests; resolves once the calls in flight have ended. */
  close(): Promise<void>;
  close(callback: () => void): void;
  /** Cancels the calls in flight (their handlers get `error`) and releases the lease. */
  destroy(error?: Error | null): Promise<void>;
  readonly closed: boolean;
  readonly destroyed: boolean;
}
/** A new Dispatcher; `config` is libesp config over undici-like defaults (no retries, no breaker, 300 s header and body timeouts). */
export function dispatcher(config?: ClientConfig | string): Dispatcher;
/** Makes a libesp Dispatcher undici's global one, so the global fetch and the SDKs on it use libesp. Idempotent. */
export function install(config?: ClientConfig | string): Dispatcher;
/** Puts back the global dispatcher install() replaced; resolves once the libesp one has closed. */
export function uninstall(): Promise<void>;

/** Stats of the whole process, parsed from libesp's JSON. */
export function stats(): Record<string, unknown>;
/** The same numbers in the Prometheus text format. */
export function metricsPrometheus(): string;
/** The loaded libesp's version string. */
export function version(): string;

/** One key of libesp's config, as esp_config_schema() describes it. */
export interface ConfigKey {
  key: string;
  type: 'integer' | 'number' | 'boolean' | 'string' | 'object' | 'array' | 'string_array' | 'object_array';
  /** The default (null when default_doc says it in words). */
  default: unknown;
  default_doc?: string;
  min?: number;
  max?: number;
  unit?: string;
  enum?: string[];
  non_empty?: boolean;
  required?: boolean;
  secret?: boolean;
  value_type?: string;
  keys?: ConfigKey[];
  doc: string;
}
/** libesp's table of config keys. */
export function configSchema(): { version: string; keys: ConfigKey[] };

/** C status numbers by name. */
export const STATUS: Readonly<Record<
  'ESP_OK' | 'ESP_EINVAL' | 'ESP_ECONFIG' | 'ESP_EHANDLE' | 'ESP_ENOMEM' | 'ESP_ETIMEDOUT' |
  'ESP_EPOOLTIMEOUT' | 'ESP_ECONNECT' | 'ESP_ETLS' | 'ESP_EIO' | 'ESP_EPROTOCOL' | 'ESP_ECANCELLED' |
  'ESP_ECIRCUIT' | 'ESP_ETOOLARGE' | 'ESP_ESHUTDOWN' | 'ESP_EINTERNAL' | 'ESP_EAGAIN' | 'ESP_ERATELIMITED', number>>;

/** Base class of libesp failures (no HTTP response came). */
export class EspError extends Error {
  /** The C status name, e.g. 'ESP_ETIMEDOUT'. */
  readonly code: string;
  /** The C status number, e.g. -5. */
  readonly status: number;
  /** True when the failure came after the request may have reached the server (it may have been processed). */
  readonly requestSent: boolean;
  constructor(message: string, status: number, options?: ErrorOptions & { requestSent?: boolean });
}
/** ESP_ECONFIG: bad config; the message names the key. */
export class ConfigError extends EspError {}
/** ESP_EINVAL: bad argument. */
export class InvalidArgumentError extends EspError {}
/** ESP_ETIMEDOUT or ESP_EPOOLTIMEOUT. */
export class TimeoutError extends EspError {}
/** ESP_ECONNECT, ESP_ETLS, ESP_EIO or ESP_EPROTOCOL. */
export class ConnectionError extends EspError {}
/** ESP_ECANCELLED: aborted by a signal (then `cause` is signal.reason), a break, or cancel(). */
export class AbortError extends EspError {}
/** ESP_ECIRCUIT: the origin's circuit breaker is open. */
export class CircuitOpenError extends EspError {}
/** ESP_ETOOLARGE: larger than max_response_bytes. */
export class ResponseTooLargeError extends EspError {}
/** ESP_EHANDLE or ESP_ESHUTDOWN: the client was closed or libesp shut down. */
export class ClosedError extends EspError {}
/** ESP_ERATELIMITED: rate_limit left no budget before the request's timeout; it was never sent. */
export class RateLimitedError extends EspError {}
/** A streamed response had a non-2xx HTTP status; the call itself succeeded. */
export class HttpStatusError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The complete error response (its body is the server's error document). */
  readonly response: EspResponse;
}
