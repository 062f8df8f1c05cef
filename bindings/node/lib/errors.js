'use strict';
/**
 * Error classes of the Node binding. A failed call (no HTTP response at all)
 * rejects with an EspError subclass whose `code` is the C status name
 * ('ESP_ETIMEDOUT') and `status` the C status number (-5); the message is
 * libesp's own detail (esp_last_error). An HTTP error status (404, 429, 500)
 * is not an error: request() resolves with that response.
 */

/** C status numbers (include/esp.h; never renumbered) by name. */
const STATUS = Object.freeze({
  ESP_OK: 0,
  ESP_EINVAL: -1,
  ESP_ECONFIG: -2,
  ESP_EHANDLE: -3,
  ESP_ENOMEM: -4,
  ESP_ETIMEDOUT: -5,
  ESP_EPOOLTIMEOUT: -6,
  ESP_ECONNECT: -7,
  ESP_ETLS: -8,
  ESP_EIO: -9,
  ESP_EPROTOCOL: -10,
  ESP_ECANCELLED: -11,
  ESP_ECIRCUIT: -12,
  ESP_ETOOLARGE: -13,
  ESP_ESHUTDOWN: -14,
  ESP_EINTERNAL: -15,
  ESP_EAGAIN: -16,
  ESP_ERATELIMITED: -17,
});

const STATUS_NAMES = new Map(Object.entries(STATUS).map(([name, code]) => [code, name]));

/** Base class of every libesp failure. */
class EspError extends Error {
  /**
   * @param {string} message libesp's detail of the failure
   * @param {number} status the C status number (negative)
   * @param {ErrorOptions & {requestSent?: boolean}} [options] e.g. { cause }, and whether the request may have been sent
   */
  constructor(message, status, options) {
    super(message, options);
    this.name = this.constructor.name;
    /** The C status name, e.g. 'ESP_ETIMEDOUT'. */
    this.code = STATUS_NAMES.get(status) ?? `ESP_STATUS_${status}`;
    /** The C status number, e.g. -5. */
    this.status = status;
    /**
     * True when the failure came after the request may have reached the
     * server, which may then have processed it (esp_last_error_sent).
     */
    this.requestSent = options?.requestSent === true;
  }
}

/** The config was malformed, had an unknown key or a wrong type (ESP_ECONFIG). */
class ConfigError extends EspError {}
/** A bad argument (ESP_EINVAL). */
class InvalidArgumentError extends EspError {}
/** A total, connect, first-byte, idle or pool timeout (ESP_ETIMEDOUT, ESP_EPOOLTIMEOUT). */
class TimeoutError extends EspError {}
/** DNS, connect, TLS, I/O or protocol failure (ESP_ECONNECT, ESP_ETLS, ESP_EIO, ESP_EPROTOCOL). */
class ConnectionError extends EspError {}
/** The call was cancelled: by an AbortSignal, by breaking out of a stream, or by libesp (ESP_ECANCELLED). */
class AbortError extends EspError {}
/** The origin's circuit breaker is open (ESP_ECIRCUIT). */
class CircuitOpenError extends EspError {}
/** The response was larger than max_response_bytes (ESP_ETOOLARGE). */
class ResponseTooLargeError extends EspError {}
/** The client was closed, or libesp shut down (ESP_EHANDLE, ESP_ESHUTDOWN). */
class ClosedError extends EspError {}
/** rate_limit left no budget for the request before its timeout; never sent (ESP_ERATELIMITED). */
class RateLimitedError extends EspError {}

const CLASS_BY_STATUS = new Map([
  [STATUS.ESP_ECONFIG, ConfigError],
  [STATUS.ESP_EINVAL, InvalidArgumentError],
  [STATUS.ESP_ETIMEDOUT, TimeoutError],
  [STATUS.ESP_EPOOLTIMEOUT, TimeoutError],
  [STATUS.ESP_ECONNECT, ConnectionError],
  [STATUS.ESP_ETLS, ConnectionError],
  [STATUS.ESP_EIO, ConnectionError],
  [STATUS.ESP_EPROTOCOL, ConnectionError],
  [STATUS.ESP_ECANCELLED, AbortError],
  [STATUS.ESP_ECIRCUIT, CircuitOpenError],
  [STATUS.ESP_ETOOLARGE, ResponseTooLargeError],
  [STATUS.ESP_EHANDLE, ClosedError],
  [STATUS.ESP_ESHUTDOWN, ClosedError],
  [STATUS.ESP_ERATELIMITED, RateLimitedError],
]);

/**
 * The error for a C status and its detail message.
 * @param {number} status negative C status
 * @param {string} [detail] esp_last_error() of the failure; esp_strerror() when empty
 * @param {string} [fallback] the fixed description to use when detail is empty
 * @param {ErrorOptions} [options]
 * @returns {EspError}
 */
function errorFromStatus(status, detail, fallback, options) {
  const Class = CLASS_BY_STATUS.get(status) ?? EspError;
  return new Class(detail || fallback || STATUS_NAMES.get(status) || `libesp status ${status}`, status, options);
}

/**
 * A streamed response came back with a non-2xx HTTP status, so it has no
 * events to iterate. Not an EspError: the call itself succeeded, and the
 * whole error response is in `.response`.
 */
class HttpStatusError extends Error {
  /** @param {import('./index').EspResponse} response the complete error response */
  constructor(response) {
    const detail = response.text().slice(0, 500);
    super(`HTTP ${response.status} instead of an event stream${detail ? `: ${detail}` : ''}`);
    this.name = 'HttpStatusError';
    /** The HTTP status, e.g. 429. */
    this.status = response.status;
    /** The complete response: headers, body, text(), json(). */
    this.response = response;
  }
}

module.exports = {
  STATUS,
  EspError,
  ConfigError,
  InvalidArgumentError,
  TimeoutError,
  ConnectionError,
  AbortError,
  CircuitOpenError,
  ResponseTooLargeError,
  ClosedError,
  RateLimitedError,
  HttpStatusError,
  errorFromStatus,
};
