// Runs a command with the mock server up and ESP_BASE_URL pointing at it:
//   node test/with-mock.mjs node ../../examples/node/example.mjs
import { spawn } from 'node:child_process';
import { startMock } from './mock.mjs';

const [command, ...args] = process.argv.slice(2);
const mock = await startMock();
const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ESP_BASE_URL: mock.baseURL } });
child.on('exit', (code, signal) => {
  mock.stop();
  process.exitCode = code ?? (signal ? 1 : 0);
});
