#!/usr/bin/env node
// Makes the package's bin scripts (package.json "bin", compiled by tsc) executable. npm sets the
// mode of a package's bins only when it links them for a dependent or a global install; in this
// checkout itself, `npx ember-ga` runs dist/lib/cli.js as it is, and tsc creates it 0644.
'use strict';
const fs = require('fs');
const path = require('path');

const repo = path.resolve(__dirname, '..');
const { bin } = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
for (const file of Object.values(bin)) fs.chmodSync(path.join(repo, file), 0o755);
