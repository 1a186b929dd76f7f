// The guest side of the bridge's request/response ceiling, in a process of its own as an agent
// would be: `node stand-in-guest.js PTY ANSWER_BYTES` answers every line it reads on the pty
// with a line of ANSWER_BYTES bytes (newline included), and does nothing else.
import { native } from '../../lib/native';

const [pty, bytes] = process.argv.slice(2);
const answer = Buffer.alloc(Math.max(1, Number(bytes)), 0x41);
answer[answer.length - 1] = 0x0a;
const port = new native.Port(pty, (type, arg) => {
  if (type !== 'data') return;
  const d = arg as Buffer;
  for (let i = d.indexOf(0x0a); i >= 0; i = d.indexOf(0x0a, i + 1)) port.write(answer);
});
process.on('SIGTERM', () => {
  port.close();
  process.exit(0);
});
process.stdout.write('ready\n');
