'use strict';
// Loads the N-API addon built by the Makefile (`make addon`, run by `npm install`).
// A plain object copy, so tests can wrap a function to observe the binding's calls.
const path = require('node:path');

module.exports = { ...require(path.join(__dirname, '..', 'build', 'esp_node.node')) };
