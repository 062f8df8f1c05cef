// An LLM program that knows nothing of libesp: a new openai and Anthropic
// client per row, configured from the environment (OPENAI_BASE_URL,
// OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY), BATCH rows at a time.
// Run as is it uses Node's fetch; with `node --import libesp/register` it
// runs on libesp. Prints what it measured as one JSON line.
import fs from 'node:fs';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const rows = Number(process.env.ROWS ?? 200);
const batch = Number(process.env.BATCH ?? 20);
const openFds = () => fs.readdirSync('/proc/self/fd').length;

async function answer(row) {
  const question = `row ${row}`;
  const openai = new OpenAI();
  const completion = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question }] });
  if (completion.choices[0].message.content !== `echo: ${question}`) throw new Error(`openai answered ${completion.choices[0].message.content}`);
  const claude = new Anthropic();
  const message = await claude.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: question }] });
  if (message.content[0].text !== `echo: ${question}`) throw new Error(`anthropic answered ${message.content[0].text}`);
}

const started = performance.now();
const rssBefore = process.memoryUsage().rss;
let peakFds = openFds();
const failures = [];
for (let first = 0; first < rows; first += batch) {
  const work = [];
  for (let row = first; row < Math.min(first + batch, rows); row++) work.push(answer(row).catch((err) => failures.push(String(err))));
  await Promise.all(work);
  peakFds = Math.max(peakFds, openFds());
}
console.log(JSON.stringify({
  rows,
  failures,
  ms: Math.round(performance.now() - started),
  peakFds,
  rssGrowthMiB: Math.round((process.memoryUsage().rss - rssBefore) / 2 ** 20),
}));
