// Checked file reads and atomic publication of a tokenizer directory as one set of files.
// tokenizer/ may not use core/fs.h (dependencies point downward), so this is its small twin.
//
// read_file_checked: the whole regular file, every read(2) checked; TokenizerError
// "PATH: read error at byte N: <strerror>", "PATH: short read: ended at byte N of M",
// "PATH: is a directory, expected a file", "PATH: is a FIFO, expected a regular file".
//
// publish_file_set: writes every file into a temporary directory `.<name>.tmp-<pid>` beside dir,
// fsyncs each file and the directory, then publishes it: renamed to dir when dir does not exist
// (or is empty); under Overwrite::kReplace, swapped with the existing dir in one
// renameat2(RENAME_EXCHANGE) (where the file system lacks it: the old dir is renamed aside to
// `.<name>.old-<pid>` first) and the old set removed. At every moment dir holds either the whole
// old set or the whole new one, never a mixture. A crash leaves only hidden `.<name>.tmp-<pid>` /
// `.<name>.old-<pid>` siblings, which loaders never read and the next save's caller removes
// (core/fs.h remove_stale_temporaries).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace ssiat::tokenizer {

enum class Overwrite {
  kRefuse,   // dir must not exist or be empty
  kReplace,  // an existing dir is replaced if it holds only files named in the set's own names
};

std::string read_file_checked(const std::filesystem::path& path);

// Throws TokenizerError if publishing into dir under `mode` would be refused: dir is not a
// directory, or (kRefuse) it is not empty, or (kReplace) it holds an entry not named in own_names.
void check_publish_target(const std::filesystem::path& dir, Overwrite mode, const std::vector<std::string>& own_names);

// files: (file name, bytes) pairs; own_names: the names a replaceable directory may hold.
void publish_file_set(const std::filesystem::path& dir, const std::vector<std::pair<std::string, std::string>>& files,
                      Overwrite mode, const std::vector<std::string>& own_names);

}  // namespace ssiat::tokenizer
