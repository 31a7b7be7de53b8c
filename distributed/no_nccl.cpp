// The NCCL communicator in a build without CUDA (contract: distributed/comm.h): not built, and
// asking for it says so. The CUDA build compiles distributed/nccl_comm.cu instead.
#include "distributed/comm.h"
#include "kernels/check.h"

namespace ssiat::distributed {

bool nccl_built() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device, CUstream_st* stream) {
  SSIAT_CHECK(false) << "make_nccl_communicator on rank " << bootstrap.rank() << " of " << bootstrap.size()
                     << ": ssiat was built without CUDA (configure with SSIAT_CUDA=AUTO or ON where nvcc is found)";
  return nullptr;
}

}  // namespace ssiat::distributed
