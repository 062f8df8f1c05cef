'use strict';
/**
 * Header lists between JS and the addon: the addon takes [name, value, ...]
 * and gives a response's headers as one "name\0value\0..." string (C strings
 * hold no NUL, so the split is exact), split only when someone reads them.
 */

/** [name, value, ...] from the addon's "name\0value\0..." text (or a list already). */
function headerList(joined) {
  return typeof joined === 'string' ? joined.split('\0', -1).slice(0, -1) : joined;
}

/** A Headers object from the addon's "name\0value\0..." text, or a flat [name, value, ...] list. */
function headersFromFlat(flat) {
  const list = headerList(flat);
  const headers = new Headers();
  for (let i = 0; i < list.length; i += 2) headers.append(list[i], list[i + 1]);
  return headers;
}

/** [name, value, ...] from a Headers, an iterable of pairs or a plain object. */
function flattenHeaders(headers) {
  const flat = [];
  if (headers == null) return flat;
  const pairs = typeof headers[Symbol.iterator] === 'function' ? headers : Object.entries(headers);
  for (const [name, value] of pairs) {
    if (value === undefined || value === null) continue;
    flat.push(String(name), String(value));
  }
  return flat;
}

module.exports = { headerList, headersFromFlat, flattenHeaders };
