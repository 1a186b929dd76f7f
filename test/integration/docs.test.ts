// The docs document what the code does: every registered command (and alias) has a row in
// docs/PROTOCOL.md's command table, naming every argument of the command's schema; every agent
// flag is in the README's flag list; links between the docs lead to files of this repository
// (a clone has nothing beside it), and each document's own anchors resolve.
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { allCommands } from '../../lib/protocols/phoenix/commands';
import { FLAGS, usage } from '../../lib/cli';
import { REPO } from '../helpers/agent';
import { suite } from '../helpers/harness';

const test = suite('docs');
const DOCS = [
  'README.md',
  ...fs
    .readdirSync(path.join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const read = (doc: string) => fs.readFileSync(path.join(REPO, doc), 'utf8');
const readme = read('README.md');

for (const doc of ['docs/PROTOCOL.md']) {
  test(`every command and alias has a row in the ${doc} command table, with its arguments`, () => {
    const rows = read(doc)
      .split('\n')
      .filter((l) => l.startsWith('| '))
      .map((l) =>
        l
          .replace(/`/g, '')
          .split('|')
          .map((c) => c.trim()),
      );
    for (const c of allCommands) {
      const row = rows.find((r) => r[1].split(/[ ,()]+/).includes(c.name));
      assert.ok(row, `${doc} has no row for ${c.name}`);
      for (const alias of c.aliases ?? [])
        assert.ok(row![1].includes(alias), `${doc} row of ${c.name} lacks alias ${alias}`);
      for (const arg of Object.keys(c.args))
        assert.ok(row![2].includes(arg), `${doc} row of ${c.name} lacks argument ${arg}`);
    }
  });
}

/** Markdown links `[text](target)` of a document: the file part and the #anchor of each. */
function links(text: string): { file: string; anchor: string }[] {
  return [...text.matchAll(/\]\(([^)\s]*)\)/g)]
    .map((m) => m[1])
    .filter((t) => !/^[a-z]+:/.test(t)) // https:, mailto:
    .map((t) => ({ file: t.split('#')[0], anchor: t.split('#')[1] ?? '' }));
}

test('links between the docs lead to files inside the repository', () => {
  for (const doc of DOCS) {
    for (const { file } of links(read(doc))) {
      if (file === '') continue; // an anchor in the same document
      const target = path.resolve(REPO, path.dirname(doc), file);
      assert.ok(!path.relative(REPO, target).startsWith('..'), `${doc} links outside the repository: ${file}`);
      assert.ok(fs.existsSync(target), `${doc} links to a missing file: ${file}`);
    }
  }
});

/** GitHub's heading ids of a document: lowercase, punctuation dropped, spaces as dashes. */
function headingIds(doc: string): Set<string> {
  return new Set(
    [...read(doc).matchAll(/^#+ (.*)$/gm)].map((m) =>
      m[1]
        .toLowerCase()
        .replace(/[^\w\- ]/g, '')
        .replace(/ /g, '-'),
    ),
  );
}

test('#anchors name headings of the document they point into', () => {
  for (const doc of DOCS) {
    for (const { file, anchor } of links(read(doc))) {
      if (anchor === '') continue;
      const target = file === '' ? doc : path.relative(REPO, path.resolve(REPO, path.dirname(doc), file));
      assert.ok(headingIds(target).has(anchor), `${doc}: no heading for ${file}#${anchor}`);
    }
  }
});

test('the README stays short: reference material lives in docs/', () => {
  const lines = readme.split('\n').length;
  assert.ok(lines < 200, `README.md has ${lines} lines`);
});

test('docs/COMMANDS.md and docs/QEMU-GA-COMMANDS.md are what the schemas make (npm run docs)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { render, renderQga } = require(path.join(REPO, 'scripts', 'commands-doc.js')) as {
    render(): string;
    renderQga(): string;
  };
  assert.ok(read('docs/COMMANDS.md') === render(), 'docs/COMMANDS.md is out of date: run npm run docs');
  assert.ok(
    read('docs/QEMU-GA-COMMANDS.md') === renderQga(),
    'docs/QEMU-GA-COMMANDS.md is out of date: run npm run docs',
  );
});

test("docs/AGENT.md's flag list is the agent's --help; the README's has the everyday ones and points there", () => {
  const agent = read('docs/AGENT.md');
  const help = usage().split('\n').slice(4).join('\n').trimEnd();
  assert.ok(
    agent.includes('```\nember-ga [flags]\n' + help + '\n```'),
    'docs/AGENT.md: paste `ember-ga --help` (from -p on)',
  );
  for (const f of FLAGS) {
    const long = f.names.find((n) => n.length > 1)!;
    assert.ok(agent.includes(`--${long}`), `docs/AGENT.md does not mention --${long}`);
  }
  for (const long of ['port', 'listen', 'protocol', 'install-unit', 'debug', 'version', 'help']) {
    assert.ok(readme.includes(`--${long}`), `README does not mention --${long}`);
  }
  assert.ok(readme.includes('docs/AGENT.md'), 'README does not point to docs/AGENT.md for the rest');
});

test.run();
