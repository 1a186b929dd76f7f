#!/usr/bin/env node
// npm's install step: the native addon is only the guest agent's, and the agent runs on Linux
// only. Elsewhere (a macOS or Windows host installing for ember-ga-ctl and ember-ga/client, which
// need no addon) there is nothing to build; on Linux, node-gyp-build takes a matching prebuild
// or builds from source.
'use strict';
const { spawnSync } = require('child_process');

if (process.platform !== 'linux') {
  console.log(
    `ember-ga: no native addon on ${process.platform}: the host side (ember-ga-ctl, ember-ga/client) needs none`,
  );
  process.exit(0);
}
const r = spawnSync(process.execPath, [require.resolve('node-gyp-build/bin.js')], { stdio: 'inherit' });
process.exit(r.status ?? 1);
