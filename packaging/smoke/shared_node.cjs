// One libesp per process, Node side: when a libesp.so.0 is loaded before the
// addon (here by process.dlopen, standing in for another native module), the
// dynamic loader gives the addon that one, not the copy in its prebuild.
//   node shared_node.cjs /path/to/libesp.so.0
const fs = require('node:fs');

const other = process.argv[2];
try {
  process.dlopen({ exports: {} }, other); // not an addon: it stays loaded (-z nodelete), then this throws
} catch {}
const { version } = require('libesp');
version();
const mapped = new Set(
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n')
    .filter((line) => line.includes('libesp.so')).map((line) => line.split(/\s+/).pop()),
);
console.log('libesp mapped from:', [...mapped].join(', '));
process.exit(mapped.size === 1 && mapped.has(fs.realpathSync(other)) ? 0 : 1);
