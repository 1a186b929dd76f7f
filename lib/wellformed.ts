// Lone UTF-16 surrogates in JSON text. A host can send one ("\udc00": JSON.parse keeps it), and
// JSON.stringify writes it back as that escape, which strict parsers refuse. Go's encoding/json,
// the reference's, reads it as U+FFFD and writes U+FFFD; so does everything here. Plain regular
// expressions: String.prototype.toWellFormed needs Node 20, and the agent runs on 18.

// JSON.stringify writes paired surrogates as they are and only lone ones as \ud800-\udfff
// escapes; an escaped backslash is matched as a pair so that "\\ud800" (text) is left alone.
const LONE_SURROGATE_ESCAPE = /\\(?:\\|ud[89a-f][0-9a-f]{2})/g;

/** JSON text from JSON.stringify, with each lone surrogate written as U+FFFD. */
export function wellFormedJson(json: string): string {
  if (!json.includes('\\u')) return json;
  return json.replace(LONE_SURROGATE_ESCAPE, (m) => (m === '\\\\' ? m : '\ufffd'));
}

/** A value a host sent, quoted for an error message: JSON text, lone surrogates as U+FFFD. */
export function quote(value: unknown): string {
  return wellFormedJson(JSON.stringify(value) ?? String(value));
}
