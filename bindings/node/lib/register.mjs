// `node --import libesp/register app.mjs`: runs an unchanged program with
// libesp as undici's global dispatcher, so its fetch calls share libesp's pool.
import binding from './index.js';

binding.install();
