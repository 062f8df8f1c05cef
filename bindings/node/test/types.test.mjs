import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

test('index.d.ts types the public API as a TypeScript user writes it', async () => {
  const tsc = path.join(here, '..', 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', path.join(here, 'tsconfig.json')]).catch((err) => err);
  assert.equal(result.stdout, '', 'tsc reported errors');
  assert.equal(result.code ?? 0, 0);
});
