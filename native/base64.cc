#include "base64.h"

#include <cstring>

namespace ember {
namespace base64 {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// Any decode table entry with this bit set: a byte outside the alphabet ('=' included).
constexpr uint32_t kBad = 0x01000000;

// The tables of a decoder that ORs four lookups into the group's three bytes, in memory order
// (byte 0 in the low bits): one table per position in the group, each with kBad for a byte
// outside the alphabet. The encoder's: two characters for each 12 bits.
struct Tables {
  uint32_t d[4][256];
  uint16_t e[4096];
  Tables() {
    for (auto& t : d) {
      for (auto& v : t) v = kBad | 0xffffff;
    }
    for (uint32_t i = 0; i < 64; i++) {
      auto c = static_cast<unsigned char>(kAlphabet[i]);
      d[0][c] = i << 2;
      d[1][c] = (i >> 4) | ((i & 0x0f) << 12);
      d[2][c] = ((i >> 2) << 8) | ((i & 0x03) << 22);
      d[3][c] = i << 16;
    }
    for (uint32_t i = 0; i < 4096; i++) {
      e[i] = static_cast<uint16_t>(static_cast<unsigned char>(kAlphabet[i >> 6]) |
                                   (static_cast<unsigned char>(kAlphabet[i & 63]) << 8));
    }
  }
};
const Tables kT;

inline uint32_t Group(const unsigned char* s) { return kT.d[0][s[0]] | kT.d[1][s[1]] | kT.d[2][s[2]] | kT.d[3][s[3]]; }

inline void Put3(unsigned char* dst, uint32_t v) {
  dst[0] = static_cast<unsigned char>(v);
  dst[1] = static_cast<unsigned char>(v >> 8);
  dst[2] = static_cast<unsigned char>(v >> 16);
}

}  // namespace

void Encode(const unsigned char* src, size_t n, unsigned char* dst) {
  size_t i = 0;
  for (; i + 3 <= n; i += 3, dst += 4) {
    uint32_t v = (static_cast<uint32_t>(src[i]) << 16) | (static_cast<uint32_t>(src[i + 1]) << 8) | src[i + 2];
    uint16_t hi = kT.e[v >> 12];
    uint16_t lo = kT.e[v & 0xfff];
    memcpy(dst, &hi, 2);
    memcpy(dst + 2, &lo, 2);
  }
  if (i < n) {
    uint32_t v = static_cast<uint32_t>(src[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(src[i + 1]) << 8;
    dst[0] = static_cast<unsigned char>(kAlphabet[v >> 18]);
    dst[1] = static_cast<unsigned char>(kAlphabet[(v >> 12) & 63]);
    dst[2] = i + 1 < n ? static_cast<unsigned char>(kAlphabet[(v >> 6) & 63]) : '=';
    dst[3] = '=';
  }
}

size_t Padding(const unsigned char* src, size_t n) {
  size_t pad = 0;
  while (pad < 2 && pad < n && src[n - 1 - pad] == '=') pad++;
  return pad;
}

size_t DecodeRun(const unsigned char* src, size_t n, unsigned char* dst, size_t room) {
  size_t groups = n / 4;
  if (groups > room / 3) groups = room / 3;
  size_t g = 0;
  // Four bytes stored for each group's three (the fourth overwritten by the next group's),
  // while a byte of room is left past the group.
  for (; g + 4 < groups; g += 4) {
    const unsigned char* s = src + g * 4;
    uint32_t a = Group(s), b = Group(s + 4), c = Group(s + 8), d = Group(s + 12);
    if ((a | b | c | d) & kBad) break;
    unsigned char* o = dst + g * 3;
    memcpy(o, &a, 4);
    memcpy(o + 3, &b, 4);
    memcpy(o + 6, &c, 4);
    memcpy(o + 9, &d, 4);
  }
  for (; g < groups; g++) {
    uint32_t v = Group(src + g * 4);
    if (v & kBad) break;
    Put3(dst + g * 3, v);
  }
  return g * 4;
}

int64_t Decode(const unsigned char* src, size_t n, unsigned char* dst) {
  if (n % 4 != 0) return -1;
  if (n == 0) return 0;
  const size_t pad = Padding(src, n);
  const size_t body = n - 4;
  if (DecodeRun(src, body, dst, body / 4 * 3) != body) return -1;
  // The last group: '=' only as its last one or two characters, and counted as zero bits.
  unsigned char last[4];
  memcpy(last, src + body, 4);
  for (size_t i = 4 - pad; i < 4; i++) last[i] = 'A';
  uint32_t v = Group(last);
  if (v & kBad) return -1;
  unsigned char out[3];
  Put3(out, v);
  memcpy(dst + body / 4 * 3, out, 3 - pad);
  return static_cast<int64_t>(n / 4 * 3 - pad);
}

}  // namespace base64
}  // namespace ember
