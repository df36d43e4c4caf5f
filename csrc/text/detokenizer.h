// Streaming detokenization: token ids in, text out as soon as it is whole.
// A character may span tokens (a byte-level BPE token can end inside a UTF-8
// sequence), so bytes are held back until they complete a character: every
// piece returned is valid UTF-8, and the pieces of a sequence concatenate to
// exactly its decode() with invalid bytes replaced as Python's
// bytes.decode(errors="replace") does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "text/tokenizer.h"

namespace hearth {

// Decodes the longest prefix of s that can be decoded now into out, each
// ill-formed sequence (its maximal subpart, as Unicode and CPython define it)
// as one U+FFFD. Unless final, an incomplete sequence at the end is left for
// later. Returns how many bytes were consumed.
size_t utf8_decode_replace(std::string_view s, bool final, std::string& out);

class StreamDecoder {
public:
    StreamDecoder(const Tokenizer& t, bool special) : tokens_(t, special) {}
    // The text this token completes (possibly empty).
    std::string push(int32_t id);
    // What is still held back (an incomplete character becomes U+FFFD).
    std::string finish();

private:
    TokenDecoder tokens_;
    std::string pending_;
};

}  // namespace hearth
