'use strict';
// `npm install` hook: nothing to do when the shipped prebuild loads here; else
// builds libesp and the addon from the sources bundled in deps/libesp, with
// node_api.h from the node-api-headers dependency (nothing is downloaded).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const prebuild = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'esp_node.node');

function prebuildLoads() {
  if (!fs.existsSync(prebuild)) return false;
  try {
    require(prebuild);
    return true;
  } catch (err) {
    console.error(`libesp: the prebuilt addon does not load here (${err.message}); building from source`);
    return false;
  }
}

// The bundled copy in a package; this repository's tree in a checkout.
function sourceTree() {
  for (const [dir, script] of [
    [path.join(root, 'deps', 'libesp'), 'build-libesp.sh'],
    [path.join(root, '..', '..'), path.join('packaging', 'build-libesp.sh')],
  ]) {
    if (fs.existsSync(path.join(dir, script))) return { dir, script: path.join(dir, script) };
  }
  throw new Error(`libesp: no prebuild fits ${process.platform}-${process.arch} and no sources are bundled`);
}

function buildFromSource() {
  const sources = sourceTree();
  const out = path.join(root, 'build');
  execFileSync('sh', [sources.script, sources.dir, out], { stdio: 'inherit' });
  const headers = require('node-api-headers').include_dir;
  const cc = process.env.CC || 'cc';
  execFileSync(cc, [
    '-O2', '-std=gnu11', '-fPIC', '-shared', '-fvisibility=hidden', '-DNODE_GYP_MODULE_NAME=esp_node',
    `-I${headers}`, `-I${path.join(sources.dir, 'include')}`,
    '-o', path.join(out, 'esp_node.node'), path.join(root, 'src', 'addon.c'),
    `-L${out}`, '-l:libesp.so.0', "-Wl,-rpath,$ORIGIN", '-lpthread',
  ], { stdio: 'inherit' });
  console.error(`libesp: built ${path.join(out, 'esp_node.node')}`);
}

if (!prebuildLoads()) buildFromSource();
