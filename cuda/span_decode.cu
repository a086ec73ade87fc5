// span_decode.cu: split-KV (flash-decoding) attention over per-sequence token intervals.
//
// Build: `spanattn build-kernel` (flags in cuda/build.json), or on a machine without
// Node: `python3 cuda/build.py`. Contract and layouts: span_decode.h. Design: NOTES.md.
//
// Work split. Grid = (S splits, Hkv * head_chunks, B); one block of 128 threads owns
// one (sequence, KV head, chunk of <= 8 query heads) and 1/S of that sequence's KEPT
// tokens. The block sums the interval lengths itself (a prefix scan in shared memory),
// so S is fixed by the shape and a 3%-kept call spreads over every block exactly like
// a dense one. Inside a block, a "lane group" of D/8 lanes holds one K/V row with
// 16-byte loads (8 elements per lane); each lane group walks a contiguous slice of
// the block's kept tokens, TPG rows per step, with its own online softmax for all
// the block's query heads, so each K/V row is read once for the whole GQA group.
// Lane groups are merged in shared memory at the end; splits are merged by
// span_decode_combine_kernel (skipped when S == 1).
#include "span_decode.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

namespace {

constexpr int kThreads = 128;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxHeadsPerBlock = 8;
constexpr int kMinTokensPerSplit = 128;
constexpr int kMaxSplits = 128;
constexpr float kLog2e = 1.4426950408889634f;

thread_local char g_last_error[512] = "";

int fail(int status, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(g_last_error, sizeof(g_last_error), fmt, args);
  va_end(args);
  return status;
}

int g_tokens_per_step = 0;  // tuning override, 0 = automatic
int g_num_splits = 0;

struct Params {
  const void* q;
  const void* k;
  const void* v;
  const int* intervals;
  const int* n_intervals;
  const int* seq_lens;
  void* out;
  float* part_o;   // (B, Hq, S, D)
  float* part_ml;  // (B, Hq, S, 2): running max (log2 domain) and sum
  int heads_q, heads_kv, max_len, max_intervals;
  int group, head_chunks, heads_per_chunk, num_splits;
  float scale_log2;
};

// ---------------------------------------------------------------- element helpers
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t u);

template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t u) {
  // bf16 is the top half of an fp32: widening is a shift/mask.
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}

template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t u) {
  __half2 h = *reinterpret_cast<__half2*>(&u);
  return __half22float2(h);
}

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& u, float (&f)[8]) {
  const float2 a = unpack2<T>(u.x), b = unpack2<T>(u.y), c = unpack2<T>(u.z),
               d = unpack2<T>(u.w);
  f[0] = a.x; f[1] = a.y; f[2] = b.x; f[3] = b.y;
  f[4] = c.x; f[5] = c.y; f[6] = d.x; f[7] = d.y;
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

// K/V rows are read exactly once: skip L1, ask L2 to fetch the whole 256-byte
// sector group (the next row of the same run is usually the next thing read).
__device__ __forceinline__ uint4 load_stream(const void* ptr) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(ptr));
  return r;
}

// ---------------------------------------------------------------- split kernel
template <typename T, int D, int GMAX, int TPG>
__global__ void __launch_bounds__(kThreads) span_decode_split_kernel(const Params p) {
  constexpr int LG = D / 8;           // lanes per K/V row
  constexpr int NLG = kThreads / LG;  // lane groups per block
  static_assert(LG <= 32 && (32 % LG) == 0, "a row must fit inside one warp");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  int* s_end = reinterpret_cast<int*>(smem_raw);  // [I] clipped interval ends
  int* s_cum = s_end + p.max_intervals;           // [I] inclusive prefix of lengths
  __shared__ int s_warp_sum[kThreads / 32];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int split = blockIdx.x;
  const int hkv = blockIdx.y / p.head_chunks;
  const int chunk = blockIdx.y - hkv * p.head_chunks;
  const int b = blockIdx.z;
  const int head0 = hkv * p.group + chunk * p.heads_per_chunk;
  const int nheads = min(p.heads_per_chunk, p.group - chunk * p.heads_per_chunk);

  const int seq_len = min(max(__ldg(p.seq_lens + b), 0), p.max_len);
  const int n_iv = min(max(__ldg(p.n_intervals + b), 0), p.max_intervals);
  const int* iv = p.intervals + (size_t)b * p.max_intervals * 2;

  // 1. Clip the intervals and scan their lengths: s_cum[i] = kept tokens in 0..i.
  int total = 0;
  for (int base = 0; base < n_iv; base += kThreads) {
    const int i = base + tid;
    int end = 0, len = 0;
    if (i < n_iv) {
      const int start = max(__ldg(iv + 2 * i), 0);
      end = min(__ldg(iv + 2 * i + 1), seq_len);
      len = max(end - start, 0);
    }
    int x = len;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(kFullMask, x, o);
      if (lane >= o) x += y;
    }
    if (lane == 31) s_warp_sum[warp] = x;
    __syncthreads();
    int before = total, chunk_sum = 0;
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) {
      const int ws = s_warp_sum[w];
      if (w < warp) before += ws;
      chunk_sum += ws;
    }
    if (i < n_iv) {
      s_cum[i] = before + x;
      s_end[i] = end;
    }
    total += chunk_sum;
    __syncthreads();
  }

  // 2. This block's share of the kept tokens, and this lane group's slice of it.
  const int S = p.num_splits;
  const int a = (int)(((long long)total * split) / S);
  const int span = (int)(((long long)total * (split + 1)) / S) - a;
  const int lg = tid / LG, li = tid - lg * LG;
  const int k0 = a + (int)(((long long)span * lg) / NLG);
  const int k1 = a + (int)(((long long)span * (lg + 1)) / NLG);
  // Same trip count for every lane group, so the shuffles below see full warps.
  const int trips = ((span + NLG - 1) / NLG + TPG - 1) / TPG;

  int cur = 0;  // interval holding kept token k0: first i with s_cum[i] > k0
  if (k0 < k1) {
    int lo = 0, hi = n_iv - 1;
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (s_cum[mid] > k0) hi = mid; else lo = mid + 1;
    }
    cur = lo;
  }

  float qf[GMAX][8];
  {
    const T* qrow = reinterpret_cast<const T*>(p.q) +
                    ((size_t)b * p.heads_q + head0) * D + li * 8;
#pragma unroll
    for (int g = 0; g < GMAX; ++g) {
      if (g < nheads) {
        unpack8<T>(*reinterpret_cast<const uint4*>(qrow + g * D), qf[g]);
#pragma unroll
        for (int j = 0; j < 8; ++j) qf[g][j] *= p.scale_log2;
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) qf[g][j] = 0.f;
      }
    }
  }

  const size_t kv_row0 = ((size_t)b * p.heads_kv + hkv) * (size_t)p.max_len;
  const T* kbase = reinterpret_cast<const T*>(p.k) + kv_row0 * D + li * 8;
  const T* vbase = reinterpret_cast<const T*>(p.v) + kv_row0 * D + li * 8;

  float m[GMAX], l[GMAX], acc[GMAX][8];  // scores are in the log2 domain
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[g][j] = 0.f;
  }

  // 3. Walk the slice: TPG kept tokens per step, all loads issued before any math.
  for (int it = 0; it < trips; ++it) {
    const int kfirst = k0 + it * TPG;
    bool valid[TPG];
    uint4 kr[TPG], vr[TPG];
#pragma unroll
    for (int t = 0; t < TPG; ++t) {
      const int kk = kfirst + t;
      valid[t] = kk < k1;
      int pos = 0;
      if (valid[t]) {
        while (cur < n_iv - 1 && kk >= s_cum[cur]) ++cur;
        pos = min(max(s_end[cur] - (s_cum[cur] - kk), 0), seq_len - 1);
      }
      const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
      kr[t] = valid[t] ? load_stream(kbase + (size_t)pos * D) : zero;
      vr[t] = valid[t] ? load_stream(vbase + (size_t)pos * D) : zero;
    }

    float s[TPG][GMAX];
#pragma unroll
    for (int t = 0; t < TPG; ++t) {
      float kf[8];
      unpack8<T>(kr[t], kf);
#pragma unroll
      for (int g = 0; g < GMAX; ++g) {
        float dot = 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j) dot = fmaf(qf[g][j], kf[j], dot);
        s[t][g] = dot;
      }
    }
#pragma unroll
    for (int t = 0; t < TPG; ++t)
#pragma unroll
      for (int g = 0; g < GMAX; ++g) {
#pragma unroll
        for (int o = LG / 2; o > 0; o >>= 1) s[t][g] += __shfl_xor_sync(kFullMask, s[t][g], o);
        if (!valid[t]) s[t][g] = -INFINITY;
      }

#pragma unroll
    for (int g = 0; g < GMAX; ++g) {
      float tile_max = s[0][g];
#pragma unroll
      for (int t = 1; t < TPG; ++t) tile_max = fmaxf(tile_max, s[t][g]);
      const float m_new = fmaxf(m[g], tile_max);
      const float m_safe = m_new == -INFINITY ? 0.f : m_new;  // no token seen yet
      const float alpha = exp2f(m[g] - m_safe);
      m[g] = m_new;
      float tile_sum = 0.f;
#pragma unroll
      for (int t = 0; t < TPG; ++t) {
        s[t][g] = exp2f(s[t][g] - m_safe);  // now the softmax numerator p
        tile_sum += s[t][g];
      }
      l[g] = fmaf(l[g], alpha, tile_sum);
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[g][j] *= alpha;
    }
#pragma unroll
    for (int t = 0; t < TPG; ++t) {
      float vf[8];
      unpack8<T>(vr[t], vf);
#pragma unroll
      for (int g = 0; g < GMAX; ++g)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[g][j] = fmaf(s[t][g], vf[j], acc[g][j]);
    }
  }

  // 4. Merge the lane groups (the interval tables are dead now: reuse their memory).
  __syncthreads();
  float* s_acc = reinterpret_cast<float*>(smem_raw);  // [NLG][GMAX][D]
  float* s_ml = s_acc + NLG * GMAX * D;               // [NLG][GMAX][2]
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    float4* dst = reinterpret_cast<float4*>(s_acc + (lg * GMAX + g) * D + li * 8);
    dst[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
    dst[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
    if (li == 0) {
      s_ml[(lg * GMAX + g) * 2] = m[g];
      s_ml[(lg * GMAX + g) * 2 + 1] = l[g];
    }
  }
  __syncthreads();

  for (int e = tid; e < nheads * D; e += kThreads) {
    const int g = e / D, d = e - g * D;
    float mx = -INFINITY;
#pragma unroll
    for (int x = 0; x < NLG; ++x) mx = fmaxf(mx, s_ml[(x * GMAX + g) * 2]);
    const float m_safe = mx == -INFINITY ? 0.f : mx;
    float o = 0.f, sum = 0.f;
#pragma unroll
    for (int x = 0; x < NLG; ++x) {
      const float w = exp2f(s_ml[(x * GMAX + g) * 2] - m_safe);
      sum = fmaf(w, s_ml[(x * GMAX + g) * 2 + 1], sum);
      o = fmaf(w, s_acc[(x * GMAX + g) * D + d], o);
    }
    const size_t bh = (size_t)b * p.heads_q + head0 + g;
    if (S == 1) {
      reinterpret_cast<T*>(p.out)[bh * D + d] = from_float<T>(sum > 0.f ? o / sum : 0.f);
    } else {
      const size_t slot = bh * S + split;
      p.part_o[slot * D + d] = o;
      if (d == 0) {
        p.part_ml[slot * 2] = mx;
        p.part_ml[slot * 2 + 1] = sum;
      }
    }
  }
}

// ---------------------------------------------------------------- combine kernel
// One block per (sequence, query head), one thread per output element.
template <typename T>
__global__ void span_decode_combine_kernel(const float* __restrict__ part_o,
                                           const float* __restrict__ part_ml,
                                           T* __restrict__ out, int num_splits, int head_dim) {
  const size_t bh = blockIdx.x;
  const float* ml = part_ml + bh * num_splits * 2;
  float mx = -INFINITY;
  for (int s = 0; s < num_splits; ++s) mx = fmaxf(mx, ml[2 * s]);
  const float m_safe = mx == -INFINITY ? 0.f : mx;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.f, sum = 0.f;
    for (int s = 0; s < num_splits; ++s) {
      const float w = exp2f(ml[2 * s] - m_safe);
      sum = fmaf(w, ml[2 * s + 1], sum);
      o = fmaf(w, part_o[(bh * num_splits + s) * head_dim + d], o);
    }
    out[bh * head_dim + d] = from_float<T>(sum > 0.f ? o / sum : 0.f);
  }
}

// ---------------------------------------------------------------- host side
using SplitKernel = void (*)(Params);

// TPG = 8 with 8 heads would spill (255 registers): those ask for 4 instead.
template <typename T, int D, int GMAX>
SplitKernel pick_tpg(int tpg) {
  if (tpg == 2) return span_decode_split_kernel<T, D, GMAX, 2>;
  if (tpg == 8 && GMAX < 8) return span_decode_split_kernel<T, D, GMAX, (GMAX < 8 ? 8 : 4)>;
  return span_decode_split_kernel<T, D, GMAX, 4>;
}

template <typename T, int D>
SplitKernel pick_gmax(int gmax, int tpg) {
  switch (gmax) {
    case 1: return pick_tpg<T, D, 1>(tpg);
    case 2: return pick_tpg<T, D, 2>(tpg);
    case 4: return pick_tpg<T, D, 4>(tpg);
    default: return pick_tpg<T, D, 8>(tpg);
  }
}

struct Plan {
  SplitKernel kernel;
  int gmax, tpg, group, head_chunks, heads_per_chunk, num_splits;
  size_t smem_bytes, workspace_bytes;
};

int check_shape(int batch, int heads_q, int heads_kv, int max_len, int head_dim,
                int max_intervals, int dtype) {
  if (batch < 0 || batch > 65535)
    return fail(SPANATTN_ERR_ARGUMENT, "batch must be in [0, 65535] (got %d)", batch);
  if (heads_kv < 1 || heads_q < 1)
    return fail(SPANATTN_ERR_ARGUMENT, "heads must be >= 1 (got Hq=%d, Hkv=%d)", heads_q,
                heads_kv);
  if (heads_q % heads_kv != 0)
    return fail(SPANATTN_ERR_ARGUMENT, "Hq must be a multiple of Hkv (got Hq=%d, Hkv=%d)",
                heads_q, heads_kv);
  if (head_dim != 64 && head_dim != 128)
    return fail(SPANATTN_ERR_ARGUMENT, "head_dim must be 64 or 128 (got %d)", head_dim);
  if (max_len < 0)
    return fail(SPANATTN_ERR_ARGUMENT, "Nmax must be >= 0 (got %d)", max_len);
  if (max_intervals < 0 || max_intervals > SPANATTN_MAX_INTERVALS)
    return fail(SPANATTN_ERR_ARGUMENT, "intervals per sequence must be in [0, %d] (got %d)",
                SPANATTN_MAX_INTERVALS, max_intervals);
  if (dtype != SPANATTN_BF16 && dtype != SPANATTN_FP16)
    return fail(SPANATTN_ERR_ARGUMENT, "dtype must be 0 (bf16) or 1 (fp16) (got %d)", dtype);
  return SPANATTN_OK;
}

int cuda_fail(cudaError_t err, const char* what) {
  return fail(SPANATTN_ERR_CUDA, "%s: %s", what, cudaGetErrorString(err));
}

// Blocks of `kernel` resident per SM with `smem` bytes, cached per device (host-only
// queries; none of this touches a stream, so it is safe during graph capture).
int blocks_per_sm(SplitKernel kernel, size_t smem, int device, int* out) {
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, size_t>, int> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(device, (const void*)kernel, smem);
  const auto it = cache.find(key);
  if (it != cache.end()) {
    *out = it->second;
    return SPANATTN_OK;
  }
  cudaError_t err = cudaFuncSetAttribute((const void*)kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (err != cudaSuccess) return cuda_fail(err, "cudaFuncSetAttribute(shared memory)");
  int blocks = 0;
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, (const void*)kernel, kThreads,
                                                      smem);
  if (err != cudaSuccess) return cuda_fail(err, "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  if (blocks < 1)
    return fail(SPANATTN_ERR_ARGUMENT, "kernel does not fit on the device with %zu bytes of "
                "shared memory (too many intervals per sequence?)", smem);
  cache[key] = blocks;
  *out = blocks;
  return SPANATTN_OK;
}

int sm_count(int device, int* out) {
  static std::mutex mu;
  static std::map<int, int> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto it = cache.find(device);
  if (it != cache.end()) {
    *out = it->second;
    return SPANATTN_OK;
  }
  int sms = 0;
  const cudaError_t err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return cuda_fail(err, "cudaDeviceGetAttribute(SM count)");
  cache[device] = sms;
  *out = sms;
  return SPANATTN_OK;
}

// Number of splits: the fewest that keep >= 85% of the resident-block slots of the
// last wave busy (wave = SMs x resident blocks per SM), without cutting a dense row
// below kMinTokensPerSplit tokens. Depends on the shape only, never on the data.
int choose_splits(int pairs, int wave, int max_len) {
  const int max_splits = std::max(1, std::min(kMaxSplits, max_len / kMinTokensPerSplit));
  if ((long long)pairs * max_splits <= wave) return max_splits;
  for (int s = 1; s <= max_splits; ++s) {
    const long long blocks = (long long)pairs * s;
    const long long waves = (blocks + wave - 1) / wave;
    if ((double)blocks / (double)(waves * wave) >= 0.85) return s;
  }
  return max_splits;
}

int make_plan(int batch, int heads_q, int heads_kv, int max_len, int head_dim,
              int max_intervals, int dtype, int device, Plan* plan) {
  int status = check_shape(batch, heads_q, heads_kv, max_len, head_dim, max_intervals, dtype);
  if (status != SPANATTN_OK) return status;
  plan->group = heads_q / heads_kv;
  plan->head_chunks = (plan->group + kMaxHeadsPerBlock - 1) / kMaxHeadsPerBlock;
  plan->heads_per_chunk = (plan->group + plan->head_chunks - 1) / plan->head_chunks;
  const int hpc = plan->heads_per_chunk;
  plan->gmax = hpc <= 1 ? 1 : hpc <= 2 ? 2 : hpc <= 4 ? 4 : 8;
  plan->tpg = g_tokens_per_step > 0 ? g_tokens_per_step : (plan->gmax >= 8 ? 2 : 4);
  if (dtype == SPANATTN_BF16)
    plan->kernel = head_dim == 64 ? pick_gmax<__nv_bfloat16, 64>(plan->gmax, plan->tpg)
                                  : pick_gmax<__nv_bfloat16, 128>(plan->gmax, plan->tpg);
  else
    plan->kernel = head_dim == 64 ? pick_gmax<__half, 64>(plan->gmax, plan->tpg)
                                  : pick_gmax<__half, 128>(plan->gmax, plan->tpg);
  const size_t lane_groups = kThreads / (head_dim / 8);
  const size_t merge_bytes = lane_groups * plan->gmax * (head_dim + 2) * sizeof(float);
  const size_t table_bytes = (size_t)max_intervals * 2 * sizeof(int);
  plan->smem_bytes = std::max(merge_bytes, table_bytes);

  int blocks = 0, sms = 0;
  if ((status = blocks_per_sm(plan->kernel, plan->smem_bytes, device, &blocks)) != SPANATTN_OK)
    return status;
  if ((status = sm_count(device, &sms)) != SPANATTN_OK) return status;
  const int pairs = std::max(1, batch * heads_kv * plan->head_chunks);
  plan->num_splits = g_num_splits > 0 ? std::min(g_num_splits, kMaxSplits)
                                      : choose_splits(pairs, sms * blocks, max_len);
  plan->workspace_bytes = plan->num_splits == 1
                              ? 0
                              : (size_t)batch * heads_q * plan->num_splits * (head_dim + 2) *
                                    sizeof(float);
  return SPANATTN_OK;
}

template <typename T>
void launch_combine(const Params& p, int batch, int head_dim, cudaStream_t stream) {
  span_decode_combine_kernel<T><<<(unsigned)(batch * p.heads_q), head_dim, 0, stream>>>(
      p.part_o, p.part_ml, reinterpret_cast<T*>(p.out), p.num_splits, head_dim);
}

}  // namespace

extern "C" {

int spanattn_abi_version(void) { return SPANATTN_ABI_VERSION; }

const char* spanattn_last_error(void) { return g_last_error; }

int spanattn_set_tuning(int tokens_per_step, int num_splits) {
  if (tokens_per_step != 0 && tokens_per_step != 2 && tokens_per_step != 4 &&
      tokens_per_step != 8)
    return fail(SPANATTN_ERR_ARGUMENT, "tokens_per_step must be 0, 2, 4 or 8 (got %d)",
                tokens_per_step);
  if (num_splits < 0)
    return fail(SPANATTN_ERR_ARGUMENT, "num_splits must be >= 0 (got %d)", num_splits);
  g_tokens_per_step = tokens_per_step;
  g_num_splits = num_splits;
  return SPANATTN_OK;
}

int spanattn_plan(int batch, int heads_q, int heads_kv, int max_len, int head_dim,
                  int max_intervals, int dtype, int device, int* num_splits,
                  size_t* workspace_bytes) {
  Plan plan;
  const int status = make_plan(batch, heads_q, heads_kv, max_len, head_dim, max_intervals,
                               dtype, device, &plan);
  if (status != SPANATTN_OK) return status;
  if (num_splits) *num_splits = plan.num_splits;
  if (workspace_bytes) *workspace_bytes = plan.workspace_bytes;
  return SPANATTN_OK;
}

int spanattn_span_decode(const void* q, const void* k_cache, const void* v_cache,
                         const int32_t* intervals, const int32_t* n_intervals,
                         const int32_t* seq_lens, void* out, void* workspace,
                         size_t workspace_bytes, int batch, int heads_q, int heads_kv,
                         int max_len, int head_dim, int max_intervals, float scale,
                         int dtype, void* stream) {
  int device = 0;
  const cudaError_t derr = cudaGetDevice(&device);
  if (derr != cudaSuccess) return cuda_fail(derr, "cudaGetDevice");
  Plan plan;
  int status = make_plan(batch, heads_q, heads_kv, max_len, head_dim, max_intervals, dtype,
                         device, &plan);
  if (status != SPANATTN_OK) return status;
  if (batch == 0) return SPANATTN_OK;
  if (!q || !out || !n_intervals || !seq_lens || (max_intervals > 0 && !intervals) ||
      (max_len > 0 && (!k_cache || !v_cache)))
    return fail(SPANATTN_ERR_ARGUMENT, "a required pointer is NULL");
  if (workspace_bytes < plan.workspace_bytes || (plan.workspace_bytes > 0 && !workspace))
    return fail(SPANATTN_ERR_ARGUMENT, "workspace must be >= %zu bytes (got %zu)",
                plan.workspace_bytes, workspace ? workspace_bytes : (size_t)0);
  if (!(scale > 0.f) || !isfinite(scale))
    return fail(SPANATTN_ERR_ARGUMENT, "scale must be a positive finite number (got %g)",
                (double)scale);

  Params p;
  p.q = q;
  p.k = k_cache;
  p.v = v_cache;
  p.intervals = intervals;
  p.n_intervals = n_intervals;
  p.seq_lens = seq_lens;
  p.out = out;
  p.part_o = reinterpret_cast<float*>(workspace);
  p.part_ml = p.part_o ? p.part_o + (size_t)batch * heads_q * plan.num_splits * head_dim
                       : nullptr;
  p.heads_q = heads_q;
  p.heads_kv = heads_kv;
  p.max_len = max_len;
  p.max_intervals = max_intervals;
  p.group = plan.group;
  p.head_chunks = plan.head_chunks;
  p.heads_per_chunk = plan.heads_per_chunk;
  p.num_splits = plan.num_splits;
  p.scale_log2 = scale * kLog2e;

  cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const dim3 grid(plan.num_splits, heads_kv * plan.head_chunks, batch);
  void* args[] = {&p};
  cudaError_t err = cudaLaunchKernel((const void*)plan.kernel, grid, dim3(kThreads), args,
                                     plan.smem_bytes, s);
  if (err != cudaSuccess) return cuda_fail(err, "span_decode_split_kernel launch");
  if (plan.num_splits > 1) {
    if (dtype == SPANATTN_BF16) launch_combine<__nv_bfloat16>(p, batch, head_dim, s);
    else launch_combine<__half>(p, batch, head_dim, s);
    err = cudaGetLastError();
    if (err != cudaSuccess) return cuda_fail(err, "span_decode_combine_kernel launch");
  }
  return SPANATTN_OK;
}

}  // extern "C"
