// The package version, read once at start-up (never lazily: filesystems may be frozen later).
import * as fs from 'fs';
import * as path from 'path';

export const VERSION: string = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'),
).version;
