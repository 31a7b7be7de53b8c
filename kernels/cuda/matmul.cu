// CUDA linear layer through cuBLASLt (contract in kernels/matmul.h; kernels/cpu/matmul.cpp is the oracle):
//   forward   out (N, OC)     = inp (N, C) @ weight (OC, C)^T           (beta = 0: writes `=`)
//   backward  dinp (N, C)     = dout (N, OC) @ weight (OC, C)           (beta = 0: writes `=`)
//             dweight (OC, C) += dout (N, OC)^T @ inp (N, C)            (beta = 1: accumulates)
//
// Row-major vs cuBLAS column-major: a row-major (R, K) buffer read column-major with ld = K is its
// transpose (K, R). So each row-major product X = P @ Q is computed as the column-major X^T = Q^T P^T:
//   forward   out^T (OC, N)  = weight (OC, C) * inp^T (C, N): A = weight buffer, col-major (C, OC)
//             ld C, op T; B = inp buffer, col-major (C, N) ld C, op N; D col-major (OC, N) ld OC.
//             m = OC, n = N, k = C ("TN").
//   dinp      dinp^T (C, N)  = weight^T (C, OC) * dout^T (OC, N): A = weight buffer, col-major
//             (C, OC) ld C, op N; B = dout buffer, col-major (OC, N) ld OC, op N; D (C, N) ld C.
//             m = C, n = N, k = OC ("NN").
//   dweight   dweight^T (C, OC) += inp^T (C, N) * dout (N, OC): A = inp buffer, col-major (C, N)
//             ld C, op N; B = dout buffer, col-major (OC, N) ld OC, op T; C = D = dweight (C, OC)
//             ld C. m = C, n = OC, k = N ("NT").
//
// Operand paths: f32 (A, B, C, D all CUDA_R_32F, CUBLAS_COMPUTE_32F: plain fp32, TF32 off) and bf16
// (A, B CUDA_R_16BF: the caller's bf16 weight and inp/dout rounded to nearest even into the Gemm's
// scratch by cast_kernel below; C, D CUDA_R_32F; CUBLAS_COMPUTE_32F, f32 scale). In backward the
// scratch holds dout_bf16 (N*OC elements) then inp_bf16 (N*C), unpadded; inp is rounded after the
// dinp GEMM, the CPU twin's order.
//
// Bits: one algorithm per plan (op, shape, dtype, transposes, pointer alignments), chosen once by
// cublasLtMatmulAlgoGetHeuristic with REDUCTION_SCHEME_NONE (K is never split, so no split-K
// reduction and no atomics; if that mask yields nothing, all schemes are asked for and only an
// unsplit result is taken, k_unsplit) and kept in the Gemm; cuBLAS documents identical bits run
// to run on GPUs of one architecture and SM count with one library version.
// Alignment: cuBLASLt assumes 256-byte aligned A/B/C/D unless told otherwise; views into a
// parameter buffer (weight + offset) may be only 4-byte aligned, so the heuristic is given each
// pointer's real alignment (capped at 256), which is part of the plan key.
// Alpha/beta are host scalars. A Gemm is bound to one stream and is not thread-safe.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cublaslt_api.h"
#include "kernels/matmul.h"

#include <climits>
#include <compare>
#include <map>
#include <memory>
#include <type_traits>
#include <utility>

namespace ssiat::kernels::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLASLt workspace: 32 MiB
constexpr uint32_t kMaxAlignment = 256;               // cuBLASLt's default (and largest useful) alignment
constexpr int kHeuristicResults = 16;
constexpr int kCastThreads = 256;

enum class Op : int { kForward, kDinp, kDweight };
enum class Dtype : int { kF32, kBf16 };  // of the A and B operands; C and D are always f32

const char* op_name(Op op) {
  switch (op) {
    case Op::kForward: return "matmul_forward";
    case Op::kDinp: return "matmul_backward (dinp)";
    case Op::kDweight: return "matmul_backward (dweight)";
  }
  return "matmul";
}

// out[i] = bf16(in[i]), round to nearest even (n elements; 64-bit indices).
__global__ void cast_kernel(__nv_bfloat16* __restrict__ out, const float* __restrict__ in, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}

void launch_cast(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  cast_kernel<<<detail::grid_1d(n, kCastThreads), kCastThreads, 0, s>>>(out, in, n);
  SSIAT_LAUNCH_CHECK();
}

// Largest power of two dividing the address, at most kMaxAlignment.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 1;
  while (align < kMaxAlignment && (a & (2 * uintptr_t{align} - 1)) == 0) align *= 2;
  return align;
}

// One column-major GEMM D (m, n) = alpha op(A) op(B) + beta C with C = D (derivations above).
struct GemmShape {
  cublasOperation_t ta, tb;
  int64_t m, n, k;
  int64_t lda, ldb, ldd;
};

GemmShape gemm_shape(Op op, int64_t N, int64_t C, int64_t OC) {
  switch (op) {
    case Op::kForward: return {CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, C, C, OC};   // out^T = weight inp^T
    case Op::kDinp: return {CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, C, OC, C};      // dinp^T = weight^T dout^T
    case Op::kDweight: return {CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, C, OC, C};   // dweight^T += inp^T dout
  }
  return {};
}

struct PlanKey {
  Op op;
  int64_t N, C, OC;
  Dtype dtype;
  int ta, tb;
  uint32_t align_a, align_b, align_d;  // C and D are the same pointer
  auto operator<=>(const PlanKey&) const = default;
};

// The descriptors and pinned algorithm of one PlanKey; owns the cuBLASLt objects.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;  // d serves as C and D
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // statuses ignored: destruction never throws
    if (d) lt::MatrixLayoutDestroy(d);
    if (b) lt::MatrixLayoutDestroy(b);
    if (a) lt::MatrixLayoutDestroy(a);
    if (desc) lt::MatmulDescDestroy(desc);
  }
};

struct PreferenceGuard {
  cublasLtMatmulPreference_t pref = nullptr;
  ~PreferenceGuard() {
    if (pref) lt::MatmulPreferenceDestroy(pref);
  }
};

// Column-major (rows, cols) layout with leading dimension ld.
cublasLtMatrixLayout_t make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t l = nullptr;
  SSIAT_GPU_CHECK(lt::MatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  return l;
}

// Belt and braces on top of the REDUCTION_SCHEME_NONE preference: the algorithm's own config says
// one K split and no reduction (an attribute it cannot report is taken from the preference).
bool k_unsplit(const cublasLtMatmulAlgo_t& algo) {
  int32_t splits = 1;
  uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  size_t written = 0;
  if (lt::MatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits),
                                           &written) != CUBLAS_STATUS_SUCCESS)
    splits = 1;
  if (lt::MatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof(scheme),
                                           &written) != CUBLAS_STATUS_SUCCESS)
    scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  return splits <= 1 && scheme == CUBLASLT_REDUCTION_SCHEME_NONE;
}

// cudaMalloc that names the bytes and purpose on failure (and clears the runtime's last error,
// so a later SSIAT_LAUNCH_CHECK does not report this failure again).
void* device_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    SSIAT_CHECK(false) << "gemm_create: cudaMalloc of " << bytes << " bytes for " << what
                       << " failed: " << detail::gpu_status_text(e);
  }
  return p;
}

}  // namespace

struct Gemm {
  cublasLtHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;          // (kWorkspaceBytes)
  __nv_bfloat16* scratch = nullptr;   // (scratch_elems): bf16 copies of inp / dout
  int64_t scratch_elems = 0;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;

  Gemm() = default;
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  ~Gemm() {  // never throws; cudaFree waits for the work already queued on the device
    plans.clear();
    if (scratch) cudaFree(scratch);
    if (workspace) cudaFree(workspace);
    if (handle) lt::Destroy(handle);
  }
};

namespace {

void check_dims(const char* op, int64_t N, int64_t C, int64_t OC) {
  SSIAT_CHECK(N >= 0 && C >= 0 && OC >= 0) << op << ": negative shape N=" << N << " C=" << C << " OC=" << OC;
  SSIAT_CHECK(N <= INT_MAX && C <= INT_MAX && OC <= INT_MAX)
      << op << ": shape N=" << N << " C=" << C << " OC=" << OC << " exceeds cuBLASLt's int32 dimension range";
}

// The first usable heuristic result for the plan under pref (results come fastest first): state
// SUCCESS, workspace within ours, K not split. -1 when there is none, including a failed query
// (its status is left in `status`).
int pick_algo(Gemm& g, const Plan& p, cublasLtMatmulPreference_t pref,
              cublasLtMatmulHeuristicResult_t (&results)[kHeuristicResults], cublasStatus_t& status) {
  int returned = 0;
  status = lt::MatmulAlgoGetHeuristic(g.handle, p.desc, p.a, p.b, p.d, p.d, pref, kHeuristicResults, results,
                                          &returned);
  if (status != CUBLAS_STATUS_SUCCESS) return -1;
  for (int i = 0; i < returned && i < kHeuristicResults; i++)
    if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize <= kWorkspaceBytes &&
        k_unsplit(results[i].algo))
      return i;
  return -1;
}

// The plan for key: descriptors built and the algorithm picked by the heuristic on first use, reused after.
const Plan& get_plan(Gemm& g, const PlanKey& key) {
  if (auto it = g.plans.find(key); it != g.plans.end()) return *it->second;

  const GemmShape s = gemm_shape(key.op, key.N, key.C, key.OC);
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t ab_type = key.dtype == Dtype::kBf16 ? CUDA_R_16BF : CUDA_R_32F;
  SSIAT_GPU_CHECK(lt::MatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));  // fp32, no TF32
  const int32_t ta = s.ta, tb = s.tb, pointer_mode = CUBLASLT_POINTER_MODE_HOST;
  SSIAT_GPU_CHECK(lt::MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  SSIAT_GPU_CHECK(lt::MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  SSIAT_GPU_CHECK(lt::MatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pointer_mode,
                                                 sizeof(pointer_mode)));
  // Stored shapes: op(A) is (m, k), so A is (m, k), or (k, m) when transposed; op(B) is (k, n) likewise.
  const bool ta_n = s.ta == CUBLAS_OP_N, tb_n = s.tb == CUBLAS_OP_N;
  plan->a = make_layout(ab_type, ta_n ? s.m : s.k, ta_n ? s.k : s.m, s.lda);
  plan->b = make_layout(ab_type, tb_n ? s.k : s.n, tb_n ? s.n : s.k, s.ldb);
  plan->d = make_layout(CUDA_R_32F, s.m, s.n, s.ldd);

  PreferenceGuard pg;
  SSIAT_GPU_CHECK(lt::MatmulPreferenceCreate(&pg.pref));
  const uint64_t max_ws = kWorkspaceBytes;
  SSIAT_GPU_CHECK(
      lt::MatmulPreferenceSetAttribute(pg.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof(max_ws)));
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d}};
  for (const auto& [attr, bytes] : aligns)
    SSIAT_GPU_CHECK(lt::MatmulPreferenceSetAttribute(pg.pref, attr, &bytes, sizeof(bytes)));

  // First ask for reduction scheme NONE only (the dot product in one sequence: K never split);
  // should that mask (0) filter out everything, ask again with every scheme allowed and let
  // k_unsplit() keep the unsplit ones. A query that finds nothing may return NOT_SUPPORTED
  // rather than 0 results, so its status is kept for the message, not thrown.
  cublasLtMatmulHeuristicResult_t results[kHeuristicResults] = {};
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  int pick = -1;
  for (const uint32_t reduction :
       {uint32_t{CUBLASLT_REDUCTION_SCHEME_NONE}, uint32_t{CUBLASLT_REDUCTION_SCHEME_MASK}}) {
    SSIAT_GPU_CHECK(lt::MatmulPreferenceSetAttribute(pg.pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                         &reduction, sizeof(reduction)));
    pick = pick_algo(g, *plan, pg.pref, results, status);
    if (pick >= 0) break;
  }
  SSIAT_CHECK(pick >= 0) << op_name(key.op) << ": cuBLASLt offers no algorithm without split-K for "
                         << (key.dtype == Dtype::kBf16 ? "bf16" : "f32") << " operands, N=" << key.N
                         << " C=" << key.C << " OC=" << key.OC << ", pointer alignments A=" << key.align_a
                         << " B=" << key.align_b << " C/D=" << key.align_d
                         << " bytes (last heuristic status: " << detail::gpu_status_text(status) << ")";
  plan->algo = results[pick].algo;
  return *g.plans.emplace(key, std::move(plan)).first->second;
}

// D = 1 * op(A) op(B) + beta * D for op's GEMM (A, B of dtype; D f32), on g's stream.
void run_gemm(Gemm& g, Op op, Dtype dtype, int64_t N, int64_t C, int64_t OC, const void* A, const void* B,
              float beta, float* D) {
  const GemmShape s = gemm_shape(op, N, C, OC);
  const PlanKey key{op,           N, C, OC, dtype, static_cast<int>(s.ta), static_cast<int>(s.tb),
                    alignment_of(A), alignment_of(B), alignment_of(D)};
  const Plan& p = get_plan(g, key);
  const float alpha = 1.0f;
  SSIAT_GPU_CHECK(lt::Matmul(g.handle, p.desc, &alpha, A, p.a, B, p.b, &beta, D, p.d, D, p.d, &p.algo,
                                 g.workspace, kWorkspaceBytes, g.stream));
}

template <typename W>
constexpr Dtype dtype_of() {
  return std::is_same_v<W, bf16> ? Dtype::kBf16 : Dtype::kF32;
}

template <typename W>
void forward_impl(float* out, const float* inp, const W* weight, int64_t N, int64_t C, int64_t OC, Gemm& g) {
  constexpr Dtype kDtype = dtype_of<W>();
  check_dims("matmul_forward", N, C, OC);
  if constexpr (kDtype == Dtype::kBf16) {
    SSIAT_CHECK(N * C <= g.scratch_elems) << "matmul_forward: bf16 scratch of " << g.scratch_elems
                                          << " elements < N*C = " << N * C << " (N=" << N << " C=" << C
                                          << "); size it in gemm_create";
  }
  if (N == 0 || OC == 0) return;
  SSIAT_CHECK(out != nullptr) << "matmul_forward: out is null (N=" << N << " OC=" << OC << ")";
  if (C == 0) {  // empty sum: out = 0, as the CPU twin
    SSIAT_GPU_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(N * OC) * sizeof(float), g.stream));
    return;
  }
  SSIAT_CHECK(inp != nullptr && weight != nullptr)
      << "matmul_forward: null inp or weight (N=" << N << " C=" << C << " OC=" << OC << ")";
  const void* b = inp;
  if constexpr (kDtype == Dtype::kBf16) {
    launch_cast(g.scratch, inp, N * C, g.stream);  // inp_bf16 (N, C)
    b = g.scratch;
  }
  run_gemm(g, Op::kForward, kDtype, N, C, OC, weight, b, 0.0f, out);
}

template <typename W>
void backward_impl(float* dinp, float* dweight, const float* dout, const float* inp, const W* weight, int64_t N,
                   int64_t C, int64_t OC, Gemm& g) {
  constexpr Dtype kDtype = dtype_of<W>();
  check_dims("matmul_backward", N, C, OC);
  if constexpr (kDtype == Dtype::kBf16) {
    SSIAT_CHECK(N * OC + N * C <= g.scratch_elems)
        << "matmul_backward: bf16 scratch of " << g.scratch_elems << " elements < N*OC + N*C = " << N * OC + N * C
        << " (N=" << N << " C=" << C << " OC=" << OC << "); size it in gemm_create";
  }
  if (N == 0 || C == 0) return;
  if (OC == 0) {  // empty sum: dinp = 0; dweight (0, C) has no elements
    if (dinp != nullptr) {
      SSIAT_GPU_CHECK(cudaMemsetAsync(dinp, 0, static_cast<size_t>(N * C) * sizeof(float), g.stream));
    }
    return;
  }
  SSIAT_CHECK(dweight != nullptr && dout != nullptr && inp != nullptr)
      << "matmul_backward: null dweight, dout or inp (N=" << N << " C=" << C << " OC=" << OC << ")";
  SSIAT_CHECK(dinp == nullptr || weight != nullptr)
      << "matmul_backward: dinp requested but weight is null (N=" << N << " C=" << C << " OC=" << OC << ")";

  const void* dout_op = dout;  // (N, OC)
  const void* inp_op = inp;    // (N, C)
  if constexpr (kDtype == Dtype::kBf16) {
    launch_cast(g.scratch, dout, N * OC, g.stream);  // dout_bf16 (N, OC) at scratch[0, N*OC)
    dout_op = g.scratch;
    inp_op = g.scratch + N * OC;                     // inp_bf16 (N, C) at scratch[N*OC, N*OC + N*C)
  }
  if (dinp != nullptr) run_gemm(g, Op::kDinp, kDtype, N, C, OC, weight, dout_op, 0.0f, dinp);
  if constexpr (kDtype == Dtype::kBf16) launch_cast(g.scratch + N * OC, inp, N * C, g.stream);
  run_gemm(g, Op::kDweight, kDtype, N, C, OC, inp_op, dout_op, 1.0f, dweight);
}

}  // namespace

Gemm* gemm_create(Stream s, int64_t bf16_scratch_elems) {
  SSIAT_CHECK(bf16_scratch_elems >= 0 && bf16_scratch_elems <= INT64_MAX / 2)
      << "gemm_create: bf16_scratch_elems=" << bf16_scratch_elems << " out of range";
  auto g = std::make_unique<Gemm>();
  g->stream = s;
  SSIAT_GPU_CHECK(lt::Create(&g->handle));
  g->workspace = device_alloc(kWorkspaceBytes, "the cuBLASLt workspace");
  if (bf16_scratch_elems > 0) {
    g->scratch = static_cast<__nv_bfloat16*>(
        device_alloc(static_cast<size_t>(bf16_scratch_elems) * sizeof(__nv_bfloat16), "the bf16 operand scratch"));
    g->scratch_elems = bf16_scratch_elems;
  }
  return g.release();
}

void gemm_destroy(Gemm* g) { delete g; }

void matmul_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, Gemm& g) {
  forward_impl(out, inp, weight, N, C, OC, g);
}

void matmul_forward(float* out, const float* inp, const bf16* weight, int64_t N, int64_t C, int64_t OC, Gemm& g) {
  forward_impl(out, inp, weight, N, C, OC, g);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     int64_t N, int64_t C, int64_t OC, Gemm& g) {
  backward_impl(dinp, dweight, dout, inp, weight, N, C, OC, g);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const bf16* weight,
                     int64_t N, int64_t C, int64_t OC, Gemm& g) {
  backward_impl(dinp, dweight, dout, inp, weight, N, C, OC, g);
}

}  // namespace ssiat::kernels::cuda
