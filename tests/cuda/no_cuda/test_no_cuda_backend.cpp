// A build without the CUDA backend (kernels/cuda/no_cuda.cpp in place of kernels/cuda/*.cu):
// the runtime reports no backend and no device without throwing, and asking for a CUDA Backend
// (train.device = "cuda") is refused with one line that says the build lacks CUDA and how to
// get it. CMake builds this small executable from core/device.cpp and no_cuda.cpp alone, so a
// CUDA build (CI's) checks the no-CUDA path too.
#include <gtest/gtest.h>

#include <string>

#include "core/device.h"
#include "core/error.h"
#include "kernels/device.h"

namespace {

TEST(NoCudaBuild, RuntimeReportsNoBackendAndNoDevice) {
  EXPECT_FALSE(ssiat::kernels::cuda::compiled());
  EXPECT_EQ(ssiat::kernels::cuda::device_count(), 0);
  try {
    ssiat::kernels::cuda::set_device(0);
    ADD_FAILURE() << "set_device(0) did not throw";
  } catch (const ssiat::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA backend"), std::string::npos) << e.what();
  }
}

TEST(NoCudaBuild, CudaBackendIsRefusedWithOneLine) {
  try {
    ssiat::Backend::create(ssiat::DeviceKind::kCuda, 0, ssiat::Precision::kBf16);
    ADD_FAILURE() << "a CUDA backend was created in a build without CUDA";
  } catch (const ssiat::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (const char* needle : {"train.device = \"cuda\"", "no CUDA backend", "SSIAT_CUDA"})
      EXPECT_NE(m.find(needle), std::string::npos) << needle << " not in: " << m;
  }
  // The CPU needs nothing of CUDA.
  EXPECT_EQ(ssiat::Backend::create(ssiat::DeviceKind::kCpu, 0, ssiat::Precision::kF32)->kind(), ssiat::DeviceKind::kCpu);
}

}  // namespace
