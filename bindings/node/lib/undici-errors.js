'use strict';
/**
 * The errors the libesp Dispatcher raises, shaped as undici's own (name, code,
 * and the Symbol.for brand undici's `instanceof` checks), so code written
 * against undici (`err.code === 'UND_ERR_HEADERS_TIMEOUT'`,
 * `err instanceof undici.errors.SocketError`) keeps working. Each carries
 * libesp's detail as its message and the EspError as its `cause`.
 */
const { STATUS } = require('./errors');

/** A class mirroring undici's error of that name and code. */
function undiciClass(name, code, parent = Error) {
  const brand = Symbol.for(`undici.error.${code}`);
  const Class = class extends parent {
    constructor(message, options) {
      super(message, options);
      this.name = name;
      this.code = code;
    }

    get [brand]() {
      return true;
    }
  };
  Object.defineProperty(Class, 'name', { value: name });
  return Class;
}

const UndiciError = undiciClass('UndiciError', 'UND_ERR');
const ConnectTimeoutError = undiciClass('ConnectTimeoutError', 'UND_ERR_CONNECT_TIMEOUT', UndiciError);
const HeadersTimeoutError = undiciClass('HeadersTimeoutError', 'UND_ERR_HEADERS_TIMEOUT', UndiciError);
const BodyTimeoutError = undiciClass('BodyTimeoutError', 'UND_ERR_BODY_TIMEOUT', UndiciError);
const InvalidArgumentError = undiciClass('InvalidArgumentError', 'UND_ERR_INVALID_ARG', UndiciError);
const RequestAbortedError = undiciClass('AbortError', 'UND_ERR_ABORTED', UndiciError);
const RequestContentLengthMismatchError = undiciClass(
  'RequestContentLengthMismatchError',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  UndiciError,
);
const ClientDestroyedError = undiciClass('ClientDestroyedError', 'UND_ERR_DESTROYED', UndiciError);
const ClientClosedError = undiciClass('ClientClosedError', 'UND_ERR_CLOSED', UndiciError);
const SocketError = undiciClass('SocketError', 'UND_ERR_SOCKET', UndiciError);
const NotSupportedError = undiciClass('NotSupportedError', 'UND_ERR_NOT_SUPPORTED', UndiciError);
const ResponseExceededMaxSizeError = undiciClass(
  'ResponseExceededMaxSizeError',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  UndiciError,
);

/**
 * The undici error for a failed libesp call, with `requestSent` from it.
 * @param {import('./errors').EspError} cause the binding's error for the C status
 * @param {boolean} headersSeen the response head had arrived: a timeout then is undici's body timeout
 */
function undiciErrorFor(cause, headersSeen) {
  const error = undiciErrorOf(cause, headersSeen);
  error.requestSent = cause.requestSent; // as on the binding's own errors
  return error;
}

function undiciErrorOf(cause, headersSeen) {
  const options = { cause };
  switch (cause.status) {
    case STATUS.ESP_ETIMEDOUT:
      // esp_last_error() names the timeout that fired ("connect timeout: ...").
      if (cause.message.startsWith('connect timeout')) return new ConnectTimeoutError(cause.message, options);
      return headersSeen ? new BodyTimeoutError(cause.message, options) : new HeadersTimeoutError(cause.message, options);
    case STATUS.ESP_EPOOLTIMEOUT:
      return new ConnectTimeoutError(cause.message, options);
    case STATUS.ESP_ECONNECT:
    case STATUS.ESP_ETLS:
    case STATUS.ESP_EIO:
    case STATUS.ESP_EPROTOCOL:
    case STATUS.ESP_ECIRCUIT: {
      const error = new SocketError(cause.message, options);
      error.socket = null; // undici's describes the socket; libesp's connections are not the caller's
      return error;
    }
    case STATUS.ESP_ETOOLARGE:
      return new ResponseExceededMaxSizeError(cause.message, options);
    case STATUS.ESP_EINVAL:
      return new InvalidArgumentError(cause.message, options);
    case STATUS.ESP_ECANCELLED:
      return new RequestAbortedError(cause.message, options);
    case STATUS.ESP_EHANDLE:
    case STATUS.ESP_ESHUTDOWN:
      return new ClientDestroyedError(cause.message, options);
    default:
      return new UndiciError(cause.message, options);
  }
}

module.exports = {
  UndiciError,
  ConnectTimeoutError,
  HeadersTimeoutError,
  BodyTimeoutError,
  InvalidArgumentError,
  RequestAbortedError,
  RequestContentLengthMismatchError,
  ClientDestroyedError,
  ClientClosedError,
  SocketError,
  NotSupportedError,
  ResponseExceededMaxSizeError,
  undiciErrorFor,
};
