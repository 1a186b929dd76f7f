// Standard base64 (padded, no line breaks), held to strict input: plain C++, no N-API types (the
// glue is fileio.cc). Table-driven: a lookup per character, about three times OpenSSL's
// EVP_DecodeBlock here, which also trims whitespace and checks each block's length.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember {
namespace base64 {

// The base64 of src[0, n) into dst, which has room for 4 * ceil(n / 3) bytes.
void Encode(const unsigned char* src, size_t n, unsigned char* dst);

// The '=' that end the n characters of base64 text at src: 0, 1 or 2.
size_t Padding(const unsigned char* src, size_t n);

// Decodes whole groups of four alphabet characters ('=' is not one) from src[0, n) into dst,
// which has room for `room` bytes, stopping before the first group with any other byte, before
// an incomplete last group, or when dst is full: the characters decoded, a multiple of 4 (their
// bytes are dst's first 3/4 as many). For text that arrives in pieces: what stops it is the
// caller's to look at (the closing quote, padding, a byte that is not base64).
size_t DecodeRun(const unsigned char* src, size_t n, unsigned char* dst, size_t room);

// Strict base64 (standard alphabet, '=' padding only as the last one or two characters, nothing
// else: no whitespace, no line breaks, no URL alphabet) of the n characters at src into dst,
// which has room for the decoded length: n / 4 * 3 less the padding. The decoded length, or -1
// when the text is not that.
int64_t Decode(const unsigned char* src, size_t n, unsigned char* dst);

}  // namespace base64
}  // namespace ember
