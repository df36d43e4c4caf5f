// The chat's input line in a terminal: editing and history, as llama-cli and
// ollama have them, in a small editor of our own (no readline):
//   Left / Right, Home / End, Ctrl-A / Ctrl-E    move
//   Backspace, Delete, Ctrl-W (the word before), Ctrl-U (to the start),
//   Ctrl-K (to the end)                          delete
//   Up / Down                                    earlier / later lines
//   Enter                                        send the line
//   Ctrl-D on an empty line                      end of input
//   Ctrl-C                                       interrupt (the line is dropped)
// Lines are kept in a history file (one per line, newest last). When stdin
// is not a terminal, lines are read as they come, with no editing.
#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace hearth {

enum class LineRead { Line, Interrupted, End };

class LineEditor {
public:
    // history_path: where lines are kept ("" keeps none); interrupted: set
    // by the SIGINT handler, which makes a read return Interrupted.
    LineEditor(std::string history_path, const std::atomic<bool>& interrupted);

    // One line after printing prompt. Adds it to the history when not empty.
    LineRead read(const std::string& prompt, std::string& line);

private:
    LineRead read_plain(std::string& line);
    LineRead read_edited(const std::string& prompt, std::string& line);
    void remember(const std::string& line);

    std::string history_path_;
    const std::atomic<bool>& interrupted_;
    std::vector<std::string> history_;
    bool terminal_ = false;
};

// The history file's default place: $HEARTH_HISTORY, else ~/.hearth_history
// ("" when neither is known).
std::string default_history_path();

}  // namespace hearth
