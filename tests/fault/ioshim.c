/* Test-only LD_PRELOAD shim that injects I/O errors into the ssiat CLI (tests/tools/test_io_faults_cli.cpp).
 *
 * It interposes read, readv, pread(64), write, writev and pwrite(64): what libstdc++'s filebuf, HDF5's sec2
 * driver and core/fs.cpp call. For a descriptor whose path (readlink /proc/self/fd/N) contains
 * SSIAT_IOSHIM_PATH, a read that reaches byte SSIAT_IOSHIM_READ_AFTER of the file returns the bytes before it
 * (a short read) and every later read fails with EIO; writes likewise after SSIAT_IOSHIM_WRITE_AFTER bytes,
 * failing with SSIAT_IOSHIM_WRITE_ERRNO ("EIO", the default, or "ENOSPC"). Positions are file offsets
 * (lseek) for seekable descriptors and per-descriptor byte counts for pipes. Unset variables inject nothing.
 * glibc's fread/fwrite call read/write internally, not through the PLT, so they are not covered. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

typedef ssize_t (*read_fn)(int, void*, size_t);
typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pread_fn)(int, void*, size_t, off_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*readv_fn)(int, const struct iovec*, int);
typedef ssize_t (*writev_fn)(int, const struct iovec*, int);

static read_fn real_read;
static write_fn real_write;
static pread_fn real_pread;
static pwrite_fn real_pwrite;
static readv_fn real_readv;
static writev_fn real_writev;
static const char* g_pattern;
static long long g_read_after = -1, g_write_after = -1;
static int g_write_errno = EIO;
static int g_ready;

#define kMaxFd 4096
static long long g_stream_pos[kMaxFd]; /* bytes moved through non-seekable descriptors */

static void shim_init(void) {
  if (g_ready) return;
  real_read = (read_fn)dlsym(RTLD_NEXT, "read");
  real_write = (write_fn)dlsym(RTLD_NEXT, "write");
  real_pread = (pread_fn)dlsym(RTLD_NEXT, "pread");
  real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
  real_readv = (readv_fn)dlsym(RTLD_NEXT, "readv");
  real_writev = (writev_fn)dlsym(RTLD_NEXT, "writev");
  g_pattern = getenv("SSIAT_IOSHIM_PATH");
  if (g_pattern && !*g_pattern) g_pattern = NULL;
  const char* r = getenv("SSIAT_IOSHIM_READ_AFTER");
  const char* w = getenv("SSIAT_IOSHIM_WRITE_AFTER");
  const char* e = getenv("SSIAT_IOSHIM_WRITE_ERRNO");
  if (r && *r) g_read_after = atoll(r);
  if (w && *w) g_write_after = atoll(w);
  if (e && strcmp(e, "ENOSPC") == 0) g_write_errno = ENOSPC;
  g_ready = 1;
}

__attribute__((constructor)) static void shim_ctor(void) { shim_init(); }

static int matches(int fd) {
  if (!g_pattern || fd < 0) return 0;
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return strstr(target, g_pattern) != NULL;
}

/* The position of the next byte moved through fd (its offset, or a running count for a pipe). */
static long long position(int fd, int* seekable) {
  const off_t off = lseek(fd, 0, SEEK_CUR);
  *seekable = off >= 0;
  if (off >= 0) return (long long)off;
  return fd < kMaxFd ? g_stream_pos[fd] : 0;
}

/* How many of n bytes at pos may pass before the limit; -1: none (fail now). */
static long long allowed(long long pos, size_t n, long long limit) {
  if (limit < 0) return (long long)n;
  if (pos >= limit) return -1;
  const long long room = limit - pos;
  return room < (long long)n ? room : (long long)n;
}

static void advance(int fd, int seekable, ssize_t moved) {
  if (!seekable && moved > 0 && fd >= 0 && fd < kMaxFd) g_stream_pos[fd] += moved;
}

ssize_t read(int fd, void* buf, size_t n) {
  shim_init();
  if (g_read_after < 0 || !matches(fd)) return real_read(fd, buf, n);
  int seekable;
  const long long a = allowed(position(fd, &seekable), n, g_read_after);
  if (a < 0) return errno = EIO, -1;
  const ssize_t got = real_read(fd, buf, (size_t)a);
  advance(fd, seekable, got);
  return got;
}

ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  shim_init();
  if (g_read_after < 0 || !matches(fd)) return real_pread(fd, buf, n, off);
  const long long a = allowed((long long)off, n, g_read_after);
  if (a < 0) return errno = EIO, -1;
  return real_pread(fd, buf, (size_t)a, off);
}
ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return pread(fd, buf, n, off); }

ssize_t readv(int fd, const struct iovec* iov, int cnt) {
  shim_init();
  if (g_read_after < 0 || !matches(fd)) return real_readv(fd, iov, cnt);
  if (cnt <= 0) return real_readv(fd, iov, cnt);
  return read(fd, iov[0].iov_base, iov[0].iov_len); /* a legal short read */
}

ssize_t write(int fd, const void* buf, size_t n) {
  shim_init();
  if (g_write_after < 0 || !matches(fd)) return real_write(fd, buf, n);
  int seekable;
  const long long a = allowed(position(fd, &seekable), n, g_write_after);
  if (a < 0 || (a == 0 && n > 0)) return errno = g_write_errno, -1;
  const ssize_t put = real_write(fd, buf, (size_t)a);
  advance(fd, seekable, put);
  return put;
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  shim_init();
  if (g_write_after < 0 || !matches(fd)) return real_pwrite(fd, buf, n, off);
  const long long a = allowed((long long)off, n, g_write_after);
  if (a < 0 || (a == 0 && n > 0)) return errno = g_write_errno, -1;
  return real_pwrite(fd, buf, (size_t)a, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  shim_init();
  if (g_write_after < 0 || !matches(fd)) return real_writev(fd, iov, cnt);
  if (cnt <= 0) return real_writev(fd, iov, cnt);
  return write(fd, iov[0].iov_base, iov[0].iov_len); /* a legal short write */
}
