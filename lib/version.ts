// The package version, read once at start-up (never lazily: filesystems may be frozen later).
// eslint-disable-next-line @typescript-eslint/no-var-requires
export const VERSION: string = require('../../package.json').version;
