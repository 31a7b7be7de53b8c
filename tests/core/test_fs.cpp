// core/fs.h: checked reads (every byte or an error naming the file and byte offset; a short read
// is an error), non-regular inputs (a directory refused at once, a FIFO refused or streamed but
// never a hang and never "empty"), and removal of temporaries left by dead processes.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

class FsRead : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ssiat_fs_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
    return s;
  }
  static void put(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
  // The message of the IoError fn throws ("" if none), run on another thread so that a hang
  // fails the test after `limit` instead of blocking it.
  template <typename Fn>
  static std::string error_of(Fn fn, std::chrono::seconds limit = std::chrono::seconds(10)) {
    auto fut = std::async(std::launch::async, [fn] {
      try {
        fn();
      } catch (const IoError& e) {
        return std::string(e.what());
      }
      return std::string();
    });
    if (fut.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "read still blocked after " << limit.count() << " s";
      std::terminate();  // a blocked read cannot be cancelled; end the test binary visibly
    }
    return fut.get();
  }
  fs::path dir_;
};

TEST_F(FsRead, ReadsEveryByteOfAFileSpanningManyChunks) {
  const std::string data = pattern((3u << 20) + 7);  // 3 MiB + 7: four read(2) chunks
  put(dir_ / "a.bin", data);
  EXPECT_EQ(read_whole_file(dir_ / "a.bin"), data);
  EXPECT_EQ(sha256_file(dir_ / "a.bin"), sha256_hex(data));
  put(dir_ / "empty", "");
  EXPECT_EQ(read_whole_file(dir_ / "empty"), "");
}

TEST_F(FsRead, FileTruncatedWhileBeingReadIsAShortReadNamingTheOffset) {
  const std::string data = pattern(3u << 20);
  put(dir_ / "a.bin", data);
  const fs::path p = dir_ / "a.bin";
  bool truncated = false;
  const std::string err = error_of([&] {
    read_file_chunks(p, InputKind::kRegularFile, [&](const char*, size_t) {
      if (!truncated) fs::resize_file(p, 1536 * 1024), truncated = true;  // after the first 1 MiB chunk
    });
  });
  EXPECT_EQ(err, p.string() + ": short read: ended at byte 1572864 of 3145728 (truncated while being read?)");
}

TEST_F(FsRead, IoErrorNamesFileAndOffset) {
  // /proc/self/mem is a regular file whose read at offset 0 (an unmapped address) fails with EIO.
  const std::string err = error_of([] { (void)read_whole_file("/proc/self/mem"); });
  EXPECT_EQ(err, "/proc/self/mem: read error at byte 0: Input/output error");
}

TEST_F(FsRead, MissingFileAndDirectoryAreRefusedAtOnce) {
  EXPECT_EQ(error_of([&] { (void)read_whole_file(dir_ / "absent"); }),
            (dir_ / "absent").string() + ": cannot open for reading: No such file or directory");
  for (InputKind kind : {InputKind::kRegularFile, InputKind::kStreamOk})
    EXPECT_EQ(error_of([&] { (void)read_whole_file(dir_, kind); }), dir_.string() + ": is a directory, expected a file");
  EXPECT_EQ(error_of([&] { (void)sha256_file(dir_); }), dir_.string() + ": is a directory, expected a file");
  EXPECT_EQ(error_of([] { (void)read_whole_file("-"); }), "-: standard input is not accepted here; give a regular file");
}

TEST_F(FsRead, FifoIsRefusedWhereARegularFileIsNeededWithoutWaiting) {
  const fs::path f = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(f.c_str(), 0644), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of([&] { (void)read_whole_file(f); }), f.string() + ": is a FIFO, expected a regular file");
  EXPECT_EQ(error_of([&] { (void)sha256_file(f); }), f.string() + ": is a FIFO, expected a regular file");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));  // refused, not waited on
}

TEST_F(FsRead, FifoThatNobodyWritesToIsRefusedNotHangingNorEmpty) {
  const fs::path f = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(f.c_str(), 0644), 0);
  EXPECT_EQ(error_of([&] { (void)read_whole_file(f, InputKind::kStreamOk); }),
            f.string() + ": FIFO with no writer: nothing was written to it within 2 s");
}

TEST_F(FsRead, FifoIsStreamedUntilItsWriterClosesIt) {
  const fs::path f = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(f.c_str(), 0644), 0);
  const std::string data = pattern((2u << 20) + 11);
  // The writer opens after the reader started waiting and pauses mid-stream.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int fd = -1;  // non-blocking open (ENXIO until a reader is there), so a failed reader never strands it
    for (int i = 0; i < 500 && fd < 0; i++) {
      fd = ::open(f.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd < 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (fd < 0) return;
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(fd, data.data() + off, std::min<size_t>(data.size() - off, 1u << 20));
      if (n <= 0) break;
      off += static_cast<size_t>(n);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::close(fd);
  });
  std::string got;
  const std::string err = error_of([&] { got = read_whole_file(f, InputKind::kStreamOk); });
  writer.join();
  EXPECT_EQ(err, "");
  EXPECT_TRUE(got == data) << got.size() << " bytes of " << data.size();
  EXPECT_TRUE(is_stream_input(f));
  EXPECT_TRUE(is_stream_input("-"));
  put(dir_ / "reg", "x");
  EXPECT_FALSE(is_stream_input(dir_ / "reg"));
  EXPECT_FALSE(is_stream_input(dir_));
}

TEST_F(FsRead, StaleTemporariesOfDeadProcessesAreRemovedOthersKept) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);  // now a dead pid
  const std::string dead = std::to_string(child), alive = std::to_string(::getpid());
  for (const std::string& n : {".out.tmp-" + dead, ".out.old-" + dead, ".out.tmp-" + alive, ".other.tmp-" + dead})
    fs::create_directories(dir_ / n / "sub");
  put(dir_ / (".out.tmp-" + dead + "x"), "not a pid suffix");
  EXPECT_EQ(remove_stale_temporaries(dir_, "out"), 2);
  EXPECT_FALSE(fs::exists(dir_ / (".out.tmp-" + dead)));
  EXPECT_FALSE(fs::exists(dir_ / (".out.old-" + dead)));
  EXPECT_TRUE(fs::exists(dir_ / (".out.tmp-" + alive)));  // a live writer's
  EXPECT_TRUE(fs::exists(dir_ / (".other.tmp-" + dead)));  // another target's
  EXPECT_TRUE(fs::exists(dir_ / (".out.tmp-" + dead + "x")));
}

}  // namespace
}  // namespace ssiat
