// What a benchmark section prints through: aligned rows of "label  value  comparison".
export interface Reporter {
  /** A heading for a group of rows. */
  heading(title: string): void;
  /** One measured figure, e.g. row('download 4 KiB', '41.2 MiB/s', '2.38x reference, 0.31x ideal'). */
  row(label: string, value: string, comparison?: string): void;
  /** A line of context (setup, sizes, caveats). */
  note(text: string): void;
  /** A line as it is. */
  line(text: string): void;
}

export function consoleReporter(write: (s: string) => void = (s) => process.stdout.write(s)): Reporter {
  return {
    heading: (title) => write(`\n== ${title}\n`),
    row: (label, value, comparison) =>
      write(`  ${label.padEnd(34)} ${value.padStart(14)}${comparison ? `   ${comparison}` : ''}\n`),
    note: (text) => write(`  (${text})\n`),
    line: (text) => write(`${text}\n`),
  };
}

/** "1.23x" */
export function ratio(x: number): string {
  return `${x.toFixed(2)}x`;
}

export function mibps(bytes: number, seconds: number): number {
  return bytes / (1024 * 1024) / seconds;
}

/** Percentile p (0..100) of already sorted numbers. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
