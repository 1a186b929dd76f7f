// Reading kernel text the way C's sscanf reads it, for parsers that must agree with a C reader
// field for field (qemu-ga reads /proc/stat and /proc/diskstats with sscanf): each conversion
// skips leading white space, and the count of conversions that succeeded decides what a line
// holds.

const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

/** A cursor over one line. */
export class Scan {
  private pos = 0;

  constructor(private readonly text: string) {}

  private skipSpace(): void {
    while (this.pos < this.text.length && SPACE.has(this.text[this.pos])) this.pos++;
  }

  /** At the end once white space is skipped (sscanf's EOF before a conversion). */
  atEnd(): boolean {
    this.skipSpace();
    return this.pos >= this.text.length;
  }

  /** %s: the next run of characters other than white space, or undefined at the end. */
  word(): string | undefined {
    if (this.atEnd()) return undefined;
    const start = this.pos;
    while (this.pos < this.text.length && !SPACE.has(this.text[this.pos])) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /**
   * %u (bits 32) or %lu (bits 64): strtoul's optional sign and decimal digits, wrapped to that
   * many bits as C stores them; undefined (the cursor unmoved) when no digits are there.
   */
  unsigned(bits: 32 | 64): number | undefined {
    this.skipSpace();
    const m = /^([+-]?)(\d+)/.exec(this.text.slice(this.pos, this.pos + 32));
    if (!m) return undefined;
    this.pos += m[0].length;
    // Digits past what fits were cut by the slice above only beyond 30 of them, far past 2^64.
    let v = BigInt(m[2]);
    if (m[1] === '-') v = -v;
    return Number(BigInt.asUintN(bits, v));
  }
}

/** C's atoi: optional white space and sign, then decimal digits; 0 when there are none. */
export function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? Number(BigInt.asIntN(32, BigInt(m[1]))) : 0;
}

/**
 * sscanf over `text` for formats of literal characters and the conversions %u, %d, %x (each may
 * be suppressed, %*u) and %n: the values assigned, in order, stopping at the first mismatch
 * (sscanf's count is their number), and where each %n was (undefined past a mismatch). Enough for
 * the sysfs paths C agents pick apart ("%*x:%*x/%x:%x:%x.%x%n").
 */
export function cscanf(text: string, format: string): { values: number[]; n: (number | undefined)[] } {
  const values: number[] = [];
  const n: (number | undefined)[] = [];
  let pos = 0;
  let f = 0;
  const fail = () => {
    for (let g = f; g < format.length; g++) if (format[g] === '%' && format[g + 1] === 'n') n.push(undefined);
    return { values, n };
  };
  while (f < format.length) {
    const c = format[f];
    if (c !== '%') {
      if (text[pos] !== c) return fail();
      pos++;
      f++;
      continue;
    }
    let spec = format[f + 1];
    const suppress = spec === '*';
    if (suppress) spec = format[f + 2];
    f += suppress ? 3 : 2;
    if (spec === 'n') {
      n.push(pos);
      continue;
    }
    while (SPACE.has(text[pos])) pos++;
    const re = spec === 'x' ? /^([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]+)/ : /^([+-]?)(\d+)/;
    const m = re.exec(text.slice(pos, pos + 40));
    if (!m) {
      f -= suppress ? 3 : 2;
      return fail();
    }
    pos += m[0].length;
    if (suppress) continue;
    let v = BigInt(`${spec === 'x' ? '0x' : ''}${m[2]}`);
    if (m[1] === '-') v = -v;
    values.push(Number(spec === 'd' ? BigInt.asIntN(32, v) : BigInt.asUintN(32, v)));
  }
  return { values, n };
}
