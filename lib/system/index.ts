// The system actions: power, clocks, CPUs, memory blocks, passwords and SSH keys. Each acts on
// the system under SystemOptions.root ('/' by default), so tests run them against fixtures.
export * from './programs';
export * from './power';
export * from './clock';
export * from './vcpus';
export * from './memory-blocks';
export * from './passwords';
export * from './users';
export * from './ssh-keys';
