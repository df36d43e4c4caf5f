// The body of fuzz_tokenizer_bpe and fuzz_tokenizer_spm: encode arbitrary
// bytes with a real vocabulary and check what tests/test_tokenizer.py
// promises of every text:
// - every id is in [0, n_tokens);
// - add_special adds the vocabulary's BOS / EOS around the plain encoding
//   and nothing else;
// - decode(encode(text), special=true) gives the text back: for byte-level
//   BPE any bytes, each byte the vocabulary has no token for read as U+FFFD;
//   for SentencePiece (parse_special off: with it, a control token written
//   out gets llama.cpp's dummy-prefix space after it) valid UTF-8 without
//   U+2581, which SentencePiece itself writes for a space.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"

namespace hearth_fuzz {

inline std::string show_ids(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += std::to_string(id) + " ";
    return s;
}

inline bool is_valid_utf8(std::string_view s) {
    std::string decoded;
    return hearth::utf8_decode_replace(s, true, decoded) == s.size() && decoded == s;
}

// Byte-level BPE: the text as decode gives it back.
inline std::string bpe_round_trip_text(const hearth::Vocab& v, std::string_view text) {
    std::string out;
    for (unsigned char b : text) {
        if (v.byte_token[b] >= 0) out.push_back((char)b);
        else out += "\xEF\xBF\xBD";
    }
    return out;
}

// data[0]: bit 0 parse_special; the rest is the text.
inline void fuzz_encode(const hearth::Tokenizer& t, const uint8_t* data, size_t size) {
    if (size == 0) return;
    const bool parse_special = data[0] & 1;
    const std::string_view text((const char*)data + 1, size - 1);
    const hearth::Vocab& v = t.vocab();

    std::vector<int32_t> ids;
    try {
        ids = t.encode(text, false, parse_special);
    } catch (const hearth::Error&) {
        return;  // a vocabulary that cannot encode some byte says so (not the case for real ones)
    }
    for (int32_t id : ids) FUZZ_EXPECT(id >= 0 && id < t.n_tokens(), "id " + std::to_string(id));

    std::vector<int32_t> with_special = t.encode(text, true, parse_special);
    std::vector<int32_t> want;
    if (v.add_bos && v.bos >= 0) want.push_back(v.bos);
    want.insert(want.end(), ids.begin(), ids.end());
    if (v.add_eos && v.eos >= 0) want.push_back(v.eos);
    FUZZ_EXPECT(with_special == want, "add_special gave " + show_ids(with_special) + "\nwant " + show_ids(want));

    const std::string back = t.decode(ids.data(), ids.size(), true);
    if (v.type == hearth::VocabType::BPE) {
        const std::string want_text = bpe_round_trip_text(v, text);
        FUZZ_EXPECT(back == want_text, "decode(encode(text)) differs; ids " + show_ids(ids));
    } else if (!parse_special && is_valid_utf8(text) && text.find("\xE2\x96\x81") == std::string_view::npos) {
        FUZZ_EXPECT(back == text, "decode(encode(text)) differs; ids " + show_ids(ids));
    }
}

}  // namespace hearth_fuzz
