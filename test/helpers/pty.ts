// A pty standing in for a virtio-serial port: socat holds its master side (the "host side"), in
// a process of its own, and either bridges it to a unix socket the test talks to or copies all
// the port writes into a file.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { native, type NativePort } from '../../lib/native';
import { tmpDir } from './agent';
import { waitFor } from './harness';
import { unixListening } from './unix-socket';

export interface PtyBridge {
  proc: ChildProcess;
  /** The pty's slave, as the agent opens a port. */
  port: string;
  /** The unix socket a host connects to. */
  host: string;
}

/**
 * socat PTY,link=PORT <-> UNIX-LISTEN:HOST (default DIR/port and DIR/host.sock), once it listens;
 * it exits when the host connection closes.
 */
export async function startPtyBridge(
  dir: string,
  port = path.join(dir, 'port'),
  host = path.join(dir, 'host.sock'),
): Promise<PtyBridge> {
  fs.rmSync(host, { force: true });
  const proc = spawn('socat', [`PTY,link=${port},raw,echo=0`, `UNIX-LISTEN:${host}`], { stdio: 'ignore' });
  try {
    await waitFor(() => fs.existsSync(port) && unixListening(host), 5_000, 'socat to create the pty and listen');
  } catch (e) {
    proc.kill();
    throw e;
  }
  return { proc, port, host };
}

interface PtyToFile {
  proc: ChildProcess;
  /** The pty's slave, to open as a port. */
  pty: string;
  /** The file every byte written to `pty` ends up in. */
  out: string;
}

/** A temp dir with a bridge in it for the time fn takes; socat is killed and the dir removed after. */
export async function withPtyBridge(fn: (bridge: PtyBridge, dir: string) => Promise<void>): Promise<void> {
  const dir = tmpDir();
  try {
    const bridge = await startPtyBridge(dir);
    try {
      await fn(bridge, dir);
    } finally {
      bridge.proc.kill();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A native Port on a pty whose every byte socat copies into a file, in its own process, for the
 * time fn takes; the port closed, socat killed and the temp dir removed after.
 */
export async function withPortToFile(fn: (port: NativePort, out: string) => Promise<void>): Promise<void> {
  const dir = tmpDir();
  let socat: PtyToFile | undefined;
  let port: NativePort | undefined;
  try {
    socat = await startPtyToFile(dir);
    port = new native.Port(socat.pty, () => undefined);
    await fn(port, socat.out);
  } finally {
    port?.close();
    socat?.proc.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** socat -u PTY,link=DIR/pty -> CREATE:DIR/out, once both exist. */
async function startPtyToFile(dir: string): Promise<PtyToFile> {
  const out = path.join(dir, 'out');
  const pty = path.join(dir, 'pty');
  const proc = spawn('socat', ['-u', `PTY,link=${pty},raw,echo=0`, `CREATE:${out}`], { stdio: 'ignore' });
  try {
    await waitFor(() => fs.existsSync(pty) && fs.existsSync(out), 5_000, 'socat to create the pty');
  } catch (e) {
    proc.kill();
    throw e;
  }
  return { proc, pty, out };
}
