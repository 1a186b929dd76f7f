// One agent, two endpoints: phoenix on one unix socket, qemu-ga on another, sharing one Freezer.
// The cross-protocol freeze tests spawn it as a process of its own (a test process can block
// behind a frozen filesystem; the agent must be killable apart from it):
//
//   node dist/test/helpers/dual-agent.js PHOENIX_SOCKET QGA_SOCKET --mounts-file PATH [--fsfreeze-hook=PATH]
//
// It says "serving on" (twice) on stderr once both listen, and thaws and exits on SIGTERM.
import * as path from 'path';
import { Agent } from '../../lib/agent';
import { allCommands } from '../../lib/protocols/phoenix/commands';
import { HoldingLogger, stderrLogger } from '../../lib/log';
import { UnixTransport } from '../../lib/transports/unix';

/** The compiled script, for spawn. */
export const DUAL_AGENT = path.join(__dirname, 'dual-agent.js');

async function main(argv: string[]): Promise<void> {
  const [phoenix, qga, ...rest] = argv;
  let mountsFile: string | undefined;
  let fsfreezeHook: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--mounts-file') mountsFile = rest[++i];
    else if (rest[i].startsWith('--fsfreeze-hook=')) fsfreezeHook = rest[i].slice('--fsfreeze-hook='.length);
    else throw new Error(`unexpected argument ${rest[i]}`);
  }
  // Never this machine's own mount table: a freeze test names its fixture table.
  if (!phoenix || !qga || !mountsFile)
    throw new Error('usage: dual-agent PHOENIX_SOCKET QGA_SOCKET --mounts-file PATH');
  const log = new HoldingLogger(stderrLogger(false));
  const agent = new Agent({
    endpoints: [
      { transport: new UnixTransport(phoenix, log), protocol: 'phoenix' },
      { transport: new UnixTransport(qga, log), protocol: 'qemu-ga' },
    ],
    commands: allCommands,
    config: { mountsFile, fsfreezeHook },
    log,
  });
  await agent.start();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void agent.stop());
  await agent.stopped;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`dual-agent: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
