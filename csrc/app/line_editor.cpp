#include "app/line_editor.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>

#include <termios.h>
#include <unistd.h>

namespace hearth {
namespace {

constexpr size_t kMaxHistory = 1000;

void out(const std::string& s) {
    if (!s.empty() && ::write(1, s.data(), s.size()) < 0) {
        // the terminal went away: the next read ends the chat
    }
}

// UTF-8: the start of the code point before byte i, and after it.
size_t prev_char(const std::string& s, size_t i) {
    if (i == 0) return 0;
    do i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}
size_t next_char(const std::string& s, size_t i) {
    if (i >= s.size()) return s.size();
    do i++;
    while (i < s.size() && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

// Columns a code point takes: 2 for the East Asian wide ranges, else 1.
int char_width(uint32_t c) {
    const bool wide = (c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF && c != 0x303F) ||
                      (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) ||
                      (c >= 0xFF00 && c <= 0xFF60) || (c >= 0xFFE0 && c <= 0xFFE6) ||
                      (c >= 0x1F300 && c <= 0x1F64F) || (c >= 0x1F900 && c <= 0x1F9FF) ||
                      (c >= 0x20000 && c <= 0x3FFFD);
    return wide ? 2 : 1;
}

// Columns of s[0, end).
int columns(const std::string& s, size_t end) {
    int cols = 0;
    for (size_t i = 0; i < end;) {
        const unsigned char b = (unsigned char)s[i];
        const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        uint32_t c = n == 1 ? b : b & (0x3F >> (n - 1));
        for (size_t k = 1; k < n && i + k < s.size(); k++) c = (c << 6) | ((unsigned char)s[i + k] & 0x3F);
        cols += char_width(c);
        i += n;
    }
    return cols;
}

bool is_word_char(char c) { return c != ' ' && c != '\t'; }

// The terminal in character-at-a-time mode for one read; restored after.
class RawMode {
public:
    RawMode() {
        if (tcgetattr(0, &saved_) != 0) return;
        termios raw = saved_;
        raw.c_lflag &= ~(ICANON | ECHO | IEXTEN);  // ISIG stays: Ctrl-C is still SIGINT
        raw.c_iflag &= ~(IXON | ICRNL);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        ok_ = tcsetattr(0, TCSANOW, &raw) == 0;  // not FLUSH: keep what was typed ahead
    }
    ~RawMode() {
        if (ok_) tcsetattr(0, TCSANOW, &saved_);
    }

private:
    termios saved_{};
    bool ok_ = false;
};

}  // namespace

std::string default_history_path() {
    if (const char* p = std::getenv("HEARTH_HISTORY")) return p;
    if (const char* home = std::getenv("HOME")) return std::string(home) + "/.hearth_history";
    return "";
}

LineEditor::LineEditor(std::string history_path, const std::atomic<bool>& interrupted)
    : history_path_(std::move(history_path)), interrupted_(interrupted), terminal_(isatty(0) && isatty(1)) {
    if (history_path_.empty()) return;
    std::ifstream f(history_path_);
    for (std::string l; std::getline(f, l);)
        if (!l.empty()) history_.push_back(l);
    if (history_.size() > kMaxHistory) history_.erase(history_.begin(), history_.end() - kMaxHistory);
}

void LineEditor::remember(const std::string& line) {
    if (line.empty() || line.find('\n') != std::string::npos) return;
    if (!history_.empty() && history_.back() == line) return;
    history_.push_back(line);
    if (history_path_.empty()) return;
    std::ofstream f(history_path_, std::ios::app);
    f << line << '\n';
}

LineRead LineEditor::read(const std::string& prompt, std::string& line) {
    const LineRead r = terminal_ ? read_edited(prompt, line) : (out(prompt), read_plain(line));
    if (r == LineRead::Line) remember(line);
    return r;
}

// Not a terminal: bytes up to a newline, read from the descriptor (not
// std::cin, which takes a Ctrl-C's interrupted read for the end of input).
LineRead LineEditor::read_plain(std::string& line) {
    line.clear();
    for (;;) {
        char c;
        const ssize_t n = ::read(0, &c, 1);
        if (n == 1) {
            if (c == '\n') return LineRead::Line;
            line.push_back(c);
        } else if (n == 0) {
            return line.empty() ? LineRead::End : LineRead::Line;  // Ctrl-D
        } else if (errno == EINTR) {
            if (interrupted_.load()) return LineRead::Interrupted;
        } else {
            return LineRead::End;
        }
    }
}

LineRead LineEditor::read_edited(const std::string& prompt, std::string& line) {
    RawMode raw;
    line.clear();
    size_t cur = 0;                          // byte offset of the cursor
    size_t browsing = history_.size();       // history_.size(): the line being written
    std::string draft;                       // that line, while browsing older ones
    auto redraw = [&]() {
        out("\r" + prompt + line + "\x1b[K\r");
        const int col = columns(prompt, prompt.size()) + columns(line, cur);
        if (col > 0) out("\x1b[" + std::to_string(col) + "C");
    };
    auto show = [&](const std::string& s) {
        line = s;
        cur = line.size();
        redraw();
    };
    out(prompt);
    std::string pending;  // the bytes of a UTF-8 character not yet whole
    for (;;) {
        char c;
        const ssize_t n = ::read(0, &c, 1);
        if (n == 0) return line.empty() ? LineRead::End : LineRead::Line;
        if (n < 0) {
            if (errno == EINTR && interrupted_.load()) return LineRead::Interrupted;  // the caller ends the line
            if (errno == EINTR) continue;
            return LineRead::End;
        }
        const unsigned char b = (unsigned char)c;
        if (b == '\r' || b == '\n') {
            out("\n");  // the terminal (OPOST) makes it \r\n
            return LineRead::Line;
        } else if (b == 4) {  // Ctrl-D
            if (line.empty()) {
                out("\n");  // the terminal (OPOST) makes it \r\n
                return LineRead::End;
            }
            if (cur < line.size()) line.erase(cur, next_char(line, cur) - cur), redraw();
        } else if (b == 1) {  // Ctrl-A
            cur = 0, redraw();
        } else if (b == 5) {  // Ctrl-E
            cur = line.size(), redraw();
        } else if (b == 2) {  // Ctrl-B
            cur = prev_char(line, cur), redraw();
        } else if (b == 6) {  // Ctrl-F
            cur = next_char(line, cur), redraw();
        } else if (b == 127 || b == 8) {  // Backspace
            if (cur > 0) {
                const size_t p = prev_char(line, cur);
                line.erase(p, cur - p);
                cur = p;
                redraw();
            }
        } else if (b == 23) {  // Ctrl-W: the word before the cursor
            size_t p = cur;
            while (p > 0 && !is_word_char(line[p - 1])) p--;
            while (p > 0 && is_word_char(line[p - 1])) p--;
            line.erase(p, cur - p);
            cur = p;
            redraw();
        } else if (b == 21) {  // Ctrl-U
            line.erase(0, cur), cur = 0, redraw();
        } else if (b == 11) {  // Ctrl-K
            line.erase(cur), redraw();
        } else if (b == 12) {  // Ctrl-L: clear the screen
            out("\x1b[H\x1b[2J"), redraw();
        } else if (b == 27) {  // an escape sequence: arrows, Home, End, Delete
            char s[2];
            if (::read(0, &s[0], 1) != 1 || ::read(0, &s[1], 1) != 1) continue;
            char key = s[1];
            if (s[0] == '[' && s[1] >= '0' && s[1] <= '9') {  // ESC [ n ~
                char t;
                if (::read(0, &t, 1) != 1) continue;
                key = s[1] == '1' || s[1] == '7' ? 'H' : s[1] == '4' || s[1] == '8' ? 'F' : s[1] == '3' ? 'X' : 0;
            } else if (s[0] != '[' && s[0] != 'O') {
                continue;
            }
            if (key == 'D') {
                cur = prev_char(line, cur), redraw();
            } else if (key == 'C') {
                cur = next_char(line, cur), redraw();
            } else if (key == 'H') {
                cur = 0, redraw();
            } else if (key == 'F') {
                cur = line.size(), redraw();
            } else if (key == 'X') {
                if (cur < line.size()) line.erase(cur, next_char(line, cur) - cur), redraw();
            } else if (key == 'A' && browsing > 0) {
                if (browsing == history_.size()) draft = line;
                show(history_[--browsing]);
            } else if (key == 'B' && browsing < history_.size()) {
                ++browsing;
                show(browsing == history_.size() ? draft : history_[browsing]);
            }
        } else if (b >= 32 || b == '\t') {  // text, UTF-8 bytes collected whole
            pending.push_back(c);
            const unsigned char lead = (unsigned char)pending[0];
            const size_t need = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
            if (pending.size() < need) continue;
            line.insert(cur, pending);
            cur += pending.size();
            if (cur == line.size()) out(pending);  // typing at the end: the terminal's own echo
            else redraw();
            pending.clear();
        }
    }
}

}  // namespace hearth
