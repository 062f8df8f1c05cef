// index.d.ts's ClientConfig against libesp's own table (configSchema()): a
// property for every key, of a type that holds the key's values, and none
// that libesp lacks. Read with the TypeScript compiler's own checker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configSchema, version, getClient } from '../lib/index.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ts = createRequire(import.meta.url)('typescript');

function declaredClientConfig() {
  const file = path.join(here, '..', 'index.d.ts');
  const program = ts.createProgram([file], { strict: true, noEmit: true, types: [] });
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(file));
  const symbol = checker.getExportsOfModule(module).find((s) => s.name === 'ClientConfig');
  return { checker, type: checker.getDeclaredTypeOfSymbol(symbol) };
}

// Problems of `type` as the TypeScript type of schema key `key` (at `where`).
function mismatches(checker, key, type, where) {
  const t = checker.getNonNullableType(type);
  const shown = checker.typeToString(t);
  const members = t.isUnion() ? t.types : [t];
  const literals = members.filter((m) => m.isStringLiteral()).map((m) => m.value);
  const wrong = [`${where} is ${shown}, config key is ${key.type}`];
  switch (key.type) {
    case 'integer':
    case 'number':
      return t.flags & ts.TypeFlags.Number ? [] : wrong;
    case 'boolean':
      return shown === 'boolean' ? [] : wrong;
    case 'string': {
      const stringy = members.every((m) => m.isStringLiteral() || m.flags & ts.TypeFlags.String || m.isIntersection());
      if (!stringy) return wrong;
      if (!key.enum) return literals.length ? [`${where} allows only ${literals}, config key takes any string`] : [];
      const same = [...literals].sort().join() === [...key.enum].sort().join();
      return same ? [] : [`${where} offers ${literals.join(', ')}, config key takes ${key.enum.join(', ')}`];
    }
    case 'string_array':
      return shown === 'string[]' ? [] : wrong;
    case 'array':
      return checker.isArrayType(t) || checker.isTupleType(t) ? [] : wrong;
    case 'object':
      if (!key.keys) return checker.typeToString(t) === 'Record<string, string>' ? [] : wrong;
      return compare(checker, key.keys, t, where);
    case 'object_array': {
      if (!checker.isArrayType(t)) return wrong;
      return compare(checker, key.keys, checker.getTypeArguments(t)[0], `${where}[]`);
    }
    default:
      return wrong;
  }
}

function compare(checker, keys, type, where) {
  const props = new Map(checker.getPropertiesOfType(type).map((p) => [p.name, p]));
  const problems = [];
  for (const key of keys) {
    const prop = props.get(key.key);
    if (!prop) {
      problems.push(`${where} has no property '${key.key}' (${key.type})`);
      continue;
    }
    props.delete(key.key);
    problems.push(...mismatches(checker, key, checker.getTypeOfSymbol(prop), `${where}.${key.key}`));
  }
  for (const name of props.keys()) problems.push(`${where}.${name} is no config key of libesp`);
  return problems;
}

test('configSchema() is the loaded library\'s table', () => {
  const schema = configSchema();
  assert.ok(version().startsWith(`${schema.version} `));
  assert.ok(schema.keys.length >= 40);
  assert.equal(schema.keys.find((k) => k.key === 'max_connections').default, 64);
});

test('index.d.ts ClientConfig has a property of the right type for every config key, and no other', () => {
  const { checker, type } = declaredClientConfig();
  assert.deepEqual(compare(checker, configSchema().keys, type, 'ClientConfig'), []);
});

test('every default in the table is a config getClient takes', () => {
  const defaults = Object.fromEntries(configSchema().keys.filter((k) => k.default !== null).map((k) => [k.key, k.default]));
  const client = getClient({ ...defaults, base_url: 'http://127.0.0.1:1/v1' });
  client.close();
});
