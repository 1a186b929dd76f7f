// Bytes that stand for text but need not be UTF-8 (names the kernel takes as bytes), read as
// qemu's JSON writer reads them: the text qemu-ga answers with for them. Outside the qemu-ga
// front-end's JSON module so that the libraries can name such bytes the same way.

const MIN_CP = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

/**
 * Bytes as qemu's JSON writer reads them (mod_utf8_codepoint): UTF-8, 0xC0 0x80 as a NUL, and
 * U+FFFD for each sequence it rejects (a bad or missing byte, an overlong form, a noncharacter,
 * past U+10FFFF); a real NUL ends the string.
 */
export function qemuString(b: Buffer): string {
  let out = '';
  let p = 0;
  while (p < b.length && b[p] !== 0) {
    let byte = b[p++];
    let cp: number;
    if (byte < 0x80) cp = byte;
    else if (byte >= 0xfe || (byte & 0x40) === 0) cp = -1;
    else {
      let len = 0;
      let mask = 0x80;
      for (; byte & mask; mask >>= 1) len++;
      cp = byte & (mask - 1);
      for (let i = 1; i < len; i++) {
        byte = p < b.length ? b[p] : 0;
        if ((byte & 0xc0) !== 0x80) {
          cp = -1;
          break;
        }
        p++;
        cp = cp * 64 + (byte & 0x3f);
      }
      if (cp < 0) {
        // (a continuation byte was missing)
      } else if (cp > 0x10ffff) cp = -1;
      else if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) cp = -1;
      else if (cp < MIN_CP[len - 2] && !(cp === 0 && len === 2)) cp = -1;
    }
    out += cp < 0 ? '\ufffd' : String.fromCodePoint(cp);
  }
  return out;
}

/** Bytes as UTF-8 text, or undefined when they are not UTF-8. */
export function utf8Text(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined;
}

const NON_ASCII = /[\u0080-\uffff]/;

/**
 * A name the kernel gave as bytes, carried as a latin1 string (a character per byte): its text
 * when the bytes are UTF-8, else the bytes themselves (each caller chooses how to show them).
 */
export function byteName(raw: string): { text: string; bytes?: undefined } | { text?: undefined; bytes: Buffer } {
  if (!NON_ASCII.test(raw)) return { text: raw };
  const bytes = Buffer.from(raw, 'latin1');
  const text = utf8Text(bytes);
  return text !== undefined ? { text } : { bytes };
}
