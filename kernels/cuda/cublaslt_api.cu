// cuBLASLt through dlopen (contract in kernels/cuda/cublaslt_api.h).
#include "kernels/cuda/cublaslt_api.h"

#include <dlfcn.h>

#include "kernels/check.h"

namespace ssiat::kernels::cuda::lt {
namespace {

std::string library_name() { return "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR); }

Api load() {
  const std::string name = library_name();
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    throw Error("cuBLASLt: cannot load " + name + " (" + (why ? why : "unknown error") +
                "); put the directory that holds it (the CUDA toolkit's lib64, or PyTorch's nvidia/cublas/lib) on "
                "LD_LIBRARY_PATH");
  }
  Api api;
  auto symbol = [&](const char* s) {
    void* p = dlsym(lib, s);
    if (!p) throw Error("cuBLASLt: " + name + " has no symbol " + s + " (a different cuBLASLt version?)");
    return p;
  };
#define SSIAT_LT_LOAD(fn) api.fn = reinterpret_cast<decltype(api.fn)>(symbol("cublasLt" #fn));
  SSIAT_LT_FUNCTIONS(SSIAT_LT_LOAD)
#undef SSIAT_LT_LOAD
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const Api& api() {
  static const Api loaded = load();
  return loaded;
}

std::string version_text() {
  try {
    const size_t v = api().GetVersion();  // major * 10000 + minor * 100 + patch
    return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  } catch (const Error& e) {
    return std::string("not found: ") + e.what();
  }
}

}  // namespace ssiat::kernels::cuda::lt
