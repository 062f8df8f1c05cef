'use strict';
/**
 * install() / uninstall(): make the libesp Dispatcher undici's global
 * dispatcher, which Node's built-in fetch, the npm undici package and every
 * SDK built on fetch use when given none, so an unchanged program runs on
 * libesp's shared pool. Also what `node --import libesp/register` runs.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { Dispatcher, kFallback } = require('./dispatcher');

// Where undici keeps its global dispatcher: Node's built-in fetch (undici 6)
// reads version 1; the npm undici 7 package sets both and reads version 1.
const GLOBAL_DISPATCHER_KEYS = [Symbol.for('undici.globalDispatcher.1'), Symbol.for('undici.globalDispatcher.2')];

let installed = null; // { dispatcher, previous: Map<symbol, unknown> }
let extraCaBundle = null; // the file trustConfig() wrote, once per process

/** Sets a global dispatcher slot exactly as undici's setGlobalDispatcher does. */
function setSlot(key, value) {
  Object.defineProperty(globalThis, key, { value, writable: true, enumerable: false, configurable: false });
}

/**
 * Node's fetch trusts its bundled roots plus NODE_EXTRA_CA_CERTS; libcurl
 * takes one CA file, so an unchanged program with NODE_EXTRA_CA_CERTS set
 * gets both in one private file (unless the config names its own ca_file).
 */
function trustConfig(config) {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (!extra || config.ca_file !== undefined) return {};
  if (!extraCaBundle) {
    let extraPem;
    try {
      extraPem = fs.readFileSync(extra, 'utf8');
    } catch (error) {
      // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS.
      process.emitWarning(`libesp: NODE_EXTRA_CA_CERTS not used: ${error.message}`);
      return {};
    }
    const pem = `${tls.rootCertificates.join('\n')}\n${extraPem}\n`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'libesp-ca-'));
    extraCaBundle = path.join(dir, 'ca.pem');
    fs.writeFileSync(extraCaBundle, pem, { mode: 0o600 });
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return { ca_file: extraCaBundle };
}

/**
 * Node's built-in fetch creates its own default dispatcher on first use;
 * creating it now (a data: URL never touches the network) keeps something to
 * restore on uninstall() in a process that had not fetched yet.
 */
function materializeBuiltinDispatcher() {
  if (globalThis[GLOBAL_DISPATCHER_KEYS[0]] !== undefined || typeof globalThis.fetch !== 'function') return;
  globalThis.fetch('data:,').then((response) => response.arrayBuffer(), () => {});
}

/**
 * Makes a libesp Dispatcher the global one, so the global fetch and
 * everything on it runs on libesp. `config`: libesp config keys over the
 * dispatcher's defaults. Idempotent: while installed, later calls return the
 * installed dispatcher (uninstall() first to change its config).
 * @returns {Dispatcher}
 */
function install(config = {}) {
  if (installed) return installed.dispatcher;
  const overrides = typeof config === 'string' ? JSON.parse(config) : config;
  const dispatcher = new Dispatcher({ ...trustConfig(overrides), ...overrides });
  materializeBuiltinDispatcher();
  const previous = new Map(GLOBAL_DISPATCHER_KEYS.map((key) => [key, globalThis[key]]));
  dispatcher[kFallback] = previous.get(GLOBAL_DISPATCHER_KEYS[0]) ?? null;
  for (const key of GLOBAL_DISPATCHER_KEYS) setSlot(key, dispatcher);
  installed = { dispatcher, previous };
  return dispatcher;
}

/**
 * Puts back the global dispatcher install() replaced and closes the libesp
 * one once its calls in flight have ended. Does nothing when not installed.
 * @returns {Promise<void>}
 */
async function uninstall() {
  if (!installed) return;
  const { dispatcher, previous } = installed;
  installed = null;
  for (const [key, value] of previous) {
    // A slot only the libesp dispatcher ever held keeps version 1's value.
    if (globalThis[key] === dispatcher) setSlot(key, value ?? previous.get(GLOBAL_DISPATCHER_KEYS[0]));
  }
  await dispatcher.close();
}

/** The installed dispatcher, or null. */
function installedDispatcher() {
  return installed?.dispatcher ?? null;
}

module.exports = { install, uninstall, installedDispatcher };
