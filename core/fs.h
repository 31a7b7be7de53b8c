// Whole-file reads, and atomic file and directory publication (invariant 6: never a half-written file where a good
// one was expected).
//
// write_file_atomic: writes `tmp` beside the target, fsyncs it, renames it over the target and
// fsyncs the directory. publish_dir_atomic: fsyncs every file in a fully written temporary
// directory, renames it to its final name (which must not exist) and fsyncs the parent.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace ssiat {

void write_file_atomic(const std::filesystem::path& path, std::string_view content);
// The whole file; IoError "PATH: cannot open for reading" / "PATH: read error".
std::string read_whole_file(const std::filesystem::path& path);
void fsync_path(const std::filesystem::path& path);  // file or directory
void publish_dir_atomic(const std::filesystem::path& tmp_dir, const std::filesystem::path& final_dir);

}  // namespace ssiat
