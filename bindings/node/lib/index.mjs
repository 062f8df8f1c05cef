// ESM entry point: the CommonJS implementation, re-exported by name.
import binding from './index.js';

export const {
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
} = binding;
export default binding;
