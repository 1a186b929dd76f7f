#!/usr/bin/env node
// The `ember-ga` command. The agent is for Linux guests and loads the native addon as it starts;
// off Linux (a host that installed the package for ember-ga-ctl and ember-ga/client), say so in
// one line instead of node-gyp-build's trace. Nothing of the agent is loaded before this check.
if (process.platform !== 'linux') {
  process.stderr.write(
    `ember-ga: the agent runs in Linux guests only (this is ${process.platform}); on a host, use ember-ga-ctl or ember-ga/client\n`,
  );
  process.exit(1);
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { main } = require('./cli') as typeof import('./cli');
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`ember-ga: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
