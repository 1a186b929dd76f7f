// Base64 as qemu-ga decodes it (qbase64_decode: qemu's character check, then glib's
// g_base64_decode): lenient where a strict decoder refuses. Groups of four characters decode to
// three bytes, less one for each '=' among a group's last two; newlines are skipped; characters
// left over after the last whole group are dropped ("QQ" is no bytes, "QQ=A" two).

/** Each character's six bits: '=' counts as 0; -1 for a newline (skipped); -2: not base64's. */
const RANK = new Int8Array(128).fill(-2);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => {
  RANK[c.charCodeAt(0)] = i;
});
RANK[0x3d] = 0; // '='
RANK[0x0a] = -1; // '\n'

const EQUALS = 0x3d;
const STRICT = /^[A-Za-z0-9+/]*={0,2}$/;
const VALID = /^[A-Za-z0-9+/=\n]*$/;

/** The bytes qemu-ga 7.2 decodes `text` to, or null when it has a character base64 does not use. */
export function qbase64Decode(text: string): Buffer | null {
  // Strict base64 (what hosts send) decodes the same either way, natively.
  if (text.length % 4 === 0 && STRICT.test(text)) return Buffer.from(text, 'base64');
  if (!VALID.test(text)) return null; // before any allocation: a huge invalid one costs nothing
  const out = Buffer.allocUnsafe(Math.floor(text.length / 4) * 3);
  let n = 0;
  let v = 0;
  let inGroup = 0;
  let last0 = 0; // the last two characters that count, for their '='
  let last1 = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const rank = RANK[c]; // every character is valid (VALID)
    if (rank === -1) continue;
    last1 = last0;
    last0 = c;
    v = ((v << 6) | rank) & 0xffffff;
    if (++inGroup === 4) {
      out[n++] = v >> 16;
      if (last1 !== EQUALS) out[n++] = (v >> 8) & 0xff;
      if (last0 !== EQUALS) out[n++] = v & 0xff;
      inGroup = 0;
    }
  }
  return out.subarray(0, n);
}
