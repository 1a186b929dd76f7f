// The progress bar of `ember-ga-ctl cp` (cli-progress), drawn only on a terminal: bytes, rate,
// ETA; without a known size (stdin) just bytes and rate.
import { SingleBar } from 'cli-progress';
import type { Progress } from './copy';
import { bytes } from './format';

export interface Bar {
  update(p: Progress): void;
  stop(): void;
}

export function progressBar(label: string, stream: NodeJS.WriteStream): Bar {
  let bar: SingleBar | undefined;
  const started = Date.now();
  const payload = (p: Progress) => {
    const s = (Date.now() - started) / 1000;
    return {
      label,
      done: bytes(p.bytes),
      size: p.total === undefined ? '?' : bytes(p.total),
      rate: s > 0.2 ? `${bytes(p.bytes / s)}/s` : '',
      phase: p.phase === 'verify' ? ' verifying md5' : '',
    };
  };
  return {
    update(p) {
      if (!bar) {
        const known = p.total !== undefined && p.total > 0;
        bar = new SingleBar({
          stream,
          format: known
            ? '{label} [{bar}] {percentage}% {done}/{size} {rate} ETA {eta_formatted}{phase}'
            : '{label} {done} {rate}{phase}',
          barsize: 30,
          hideCursor: true,
          etaBuffer: 50,
          fps: 10,
        });
        bar.start(known ? p.total! : 1, 0, payload(p));
      }
      bar.update(p.total ? Math.min(p.bytes, p.total) : 0, payload(p));
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
