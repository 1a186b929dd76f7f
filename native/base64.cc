#include "base64.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace ember {
namespace base64 {

// OpenSSL's encoder writes a NUL after its output and takes an int length. So the bytes go in
// blocks of whole 3-byte groups, each block's NUL overwritten by the next block's text, and the
// last 1-3 bytes through a small buffer of their own.
void Encode(const unsigned char* src, size_t n, unsigned char* dst) {
  constexpr size_t kBlock = 3 << 20;
  const size_t body = n == 0 ? 0 : (n - 1) / 3 * 3;
  for (size_t off = 0; off < body; off += kBlock) {
    EVP_EncodeBlock(dst + off / 3 * 4, src + off, static_cast<int>(std::min(kBlock, body - off)));
  }
  if (n > body) {
    unsigned char tail[5];
    EVP_EncodeBlock(tail, src + body, static_cast<int>(n - body));
    memcpy(dst + body / 3 * 4, tail, 4);
  }
}

size_t Padding(const unsigned char* src, size_t n) {
  size_t pad = 0;
  while (pad < 2 && pad < n && src[n - 1 - pad] == '=') pad++;
  return pad;
}

// OpenSSL's decoder does the work; it is lenient in three ways, each caught here: '=' decodes
// as zero bits wherever it stands (so '=' must only end the text), and it skips whitespace at
// the start and whitespace, line ends and '-' at the end of what it is given (so each block
// must decode to exactly its length's worth of bytes). It writes whole 3-byte groups, padding
// included, so the last group goes through a small buffer of its own (dst is exactly the data's
// size: a 1 MiB chunk fits a 1 MiB buffer); and it takes an int length, so the rest goes in
// blocks of 3 MiB.
int64_t Decode(const unsigned char* src, size_t n, unsigned char* dst) {
  if (n % 4 != 0) return -1;
  if (n == 0) return 0;
  const size_t pad = Padding(src, n);
  if (memchr(src, '=', n - pad) != nullptr) return -1;
  constexpr size_t kBlock = 3 << 20;  // characters: a multiple of 4
  const size_t body = n - 4;
  for (size_t off = 0; off < body; off += kBlock) {
    size_t len = std::min(kBlock, body - off);
    if (EVP_DecodeBlock(dst + off / 4 * 3, src + off, static_cast<int>(len)) != static_cast<int>(len / 4 * 3))
      return -1;
  }
  unsigned char last[3];
  if (EVP_DecodeBlock(last, src + body, 4) != 3) return -1;
  memcpy(dst + body / 4 * 3, last, 3 - pad);
  return static_cast<int64_t>(n / 4 * 3 - pad);
}

}  // namespace base64
}  // namespace ember
