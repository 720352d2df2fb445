// Incremental UTF-8 decoding that shows invalid bytes as visible \xHH escapes instead of
// replacing them with U+FFFD, so output that is not UTF-8 is shown safely and exactly.

const textDecoder = new TextDecoder("utf-8");

function concat(a, b) {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** The byte as its escape: 0xff -> "\xFF". */
export function escapeByte(byte) {
  return "\\x" + byte.toString(16).toUpperCase().padStart(2, "0");
}

/** Lengths and ranges from the Unicode standard, table 3-7 (well-formed UTF-8). */
function sequence(lead) {
  if (lead < 0x80) return { need: 0 };
  if (lead >= 0xc2 && lead <= 0xdf) return { need: 1, lo: 0x80, hi: 0xbf };
  if (lead === 0xe0) return { need: 2, lo: 0xa0, hi: 0xbf };
  if (lead === 0xed) return { need: 2, lo: 0x80, hi: 0x9f };
  if (lead >= 0xe1 && lead <= 0xef) return { need: 2, lo: 0x80, hi: 0xbf };
  if (lead === 0xf0) return { need: 3, lo: 0x90, hi: 0xbf };
  if (lead === 0xf4) return { need: 3, lo: 0x80, hi: 0x8f };
  if (lead >= 0xf1 && lead <= 0xf3) return { need: 3, lo: 0x80, hi: 0xbf };
  return null;
}

/**
 * Decodes chunks of one stream into pieces `{text, bad}`: `bad` pieces are escapes of bytes
 * that are not part of a well-formed sequence. A sequence cut between two chunks is kept
 * until the next chunk (or `finish()`), as chunk borders fall anywhere.
 */
export class ByteEscapingDecoder {
  constructor() {
    this.pending = new Uint8Array(0);
  }

  decode(bytes, final = false) {
    const buf = concat(this.pending, bytes);
    this.pending = new Uint8Array(0);
    const pieces = [];
    let start = 0;
    let i = 0;
    const flush = (end) => {
      if (end > start) pieces.push({ text: textDecoder.decode(buf.subarray(start, end)), bad: false });
    };
    const bad = (from, to) => {
      flush(from);
      let text = "";
      for (let k = from; k < to; k++) text += escapeByte(buf[k]);
      pieces.push({ text, bad: true });
      start = to;
    };
    while (i < buf.length) {
      const seq = sequence(buf[i]);
      if (seq === null) { bad(i, i + 1); i += 1; continue; }
      if (seq.need === 0) { i += 1; continue; }
      let j = 1;
      let valid = true;
      for (; j <= seq.need; j++) {
        if (i + j >= buf.length) {
          if (!final) {
            flush(i);
            this.pending = buf.slice(i);
            return pieces;
          }
          valid = false;
          break;
        }
        const c = buf[i + j];
        if (c < (j === 1 ? seq.lo : 0x80) || c > (j === 1 ? seq.hi : 0xbf)) { valid = false; break; }
      }
      if (valid) { i += seq.need + 1; continue; }
      bad(i, i + j); // the lead and the continuation bytes that were right so far
      i += j;
    }
    flush(buf.length);
    return pieces;
  }

  finish() {
    return this.pending.length ? this.decode(new Uint8Array(0), true) : [];
  }
}

/** base64 (as events and results carry bytes) to bytes. */
export function base64Bytes(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** UTF-8 text of bytes, for editor contents, and whether the bytes were valid UTF-8
 * (invalid ones are replaced by U+FFFD: an editor holds text, not bytes). */
export function bytesText(bytes) {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes), exact: true };
  } catch {
    return { text: textDecoder.decode(bytes), exact: false };
  }
}
