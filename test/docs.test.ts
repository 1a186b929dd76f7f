// The README documents what the code does: every registered command (and alias) has a row in
// its command table, naming every argument of the command's schema, and every agent flag is in
// the README's flag list.
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { allCommands } from '../lib/commands';
import { FLAGS } from '../lib/cli';
import { REPO } from './helpers/agent';
import { suite } from './helpers/harness';

const test = suite('docs');
const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
const rows = readme.split('\n').filter((l) => l.startsWith('| ')).map((l) => l.split('|').map((c) => c.trim()));

test('every command and alias has a row in the README command table, with its arguments', () => {
  for (const c of allCommands) {
    const row = rows.find((r) => r[1].split(/[ ,()]+/).includes(c.name));
    assert.ok(row, `README has no row for ${c.name}`);
    for (const alias of c.aliases ?? []) assert.ok(row![1].includes(alias), `README row of ${c.name} lacks alias ${alias}`);
    for (const arg of Object.keys(c.args)) assert.ok(row![2].includes(arg), `README row of ${c.name} lacks argument ${arg}`);
  }
});

test('every agent flag is in the README', () => {
  for (const f of FLAGS) {
    const long = f.names.find((n) => n.length > 1)!;
    assert.ok(readme.includes(`--${long}`), `README does not mention --${long}`);
  }
});

test.run();
