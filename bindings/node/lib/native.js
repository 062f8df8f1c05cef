'use strict';
// Finds and loads the N-API addon: a local build (this tree's `make addon`, or
// the from-source fallback of `npm install`) first, else the prebuild shipped
// for this platform. The addon needs libesp.so.0: the prebuild's sits beside
// it (rpath $ORIGIN), but the dynamic loader takes a libesp.so.0 already loaded
// in the process instead, so every language in a process shares one pool.
// A plain object copy, so tests can wrap a function to observe the binding's calls.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const candidates = [
  path.join(root, 'build', 'esp_node.node'),
  path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'esp_node.node'),
];

function load() {
  const failures = [];
  for (const file of candidates) {
    if (!fs.existsSync(file)) {
      failures.push(`${file}: not there`);
      continue;
    }
    try {
      return { addon: require(file), file };
    } catch (err) {
      failures.push(`${file}: ${err.message}`);
    }
  }
  throw new Error(
    `libesp: no usable native addon for ${process.platform}-${process.arch}. ` +
      'Run `npm rebuild libesp` to build it from the bundled sources (needs a C++ compiler, ' +
      `pkg-config and libcurl's and cJSON's development files). Tried: ${failures.join('; ')}`,
  );
}

const { addon, file } = load();
module.exports = { ...addon, addonPath: file };
