// span_decode.cu: split-KV (flash-decoding) attention over per-sequence token intervals.
//
// Build: `spanattn build-kernel` (flags in cuda/build.json), or on a machine without
// Node: `python3 cuda/build.py`. Contract and layouts: span_decode.h. Design, versions and
// measurements: NOTES.md.
//
// Work split. Grid = (S splits, Hkv * head_chunks, B); one block of 128 threads owns one
// (sequence, KV head, chunk of <= 8 query heads) and 1/S of that sequence's KEPT tokens.
// The block sums the interval lengths itself (a prefix scan in shared memory), so S is
// fixed by the shape and a 3%-kept call spreads over every block exactly like a dense one.
// Two inner loops share that frame:
//  - SIMT (span_decode_split_kernel): a "lane group" of D/8 lanes holds one K/V row, 8
//    elements per lane; each lane group walks a contiguous slice of the block's kept
//    tokens, TPG rows per step, through a cp.async ring, with its own online softmax for
//    all the block's query heads, so each K/V row is read once for the whole GQA group.
//  - tensor cores (span_decode_mma_kernel): each warp walks its slice 16 tokens at a time
//    with mma.sync; see the comment above it.
// Partial results are merged in shared memory at the end of a block, and splits by
// span_decode_combine_kernel (skipped when S == 1).
// That is the rows schedule (spanattn_set_schedule(0)). The balanced schedule (the default,
// spanattn_set_schedule(1), cuda/span_schedule.h) runs span_plan_kernel first, which gives
// each sequence splits in proportion to the tokens it keeps and writes a block map; the split
// kernel then runs on a 1-D grid of S x P + P blocks that read their work from the map, and
// the combine kernel merges each (sequence, head)'s splits. Same inner loops, same numerics.
// Two options of the balanced schedule (NOTES.md, session 6): the plan as a step of its own
// (spanattn_span_plan once, spanattn_span_decode_planned for each layer), and the fused
// combine (spanattn_set_combine(1)): the last split block of each unit merges, no combine kernel.
#include "span_decode.h"
#include "span_schedule.h"

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
#include <vector>

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

int g_variant = 0;  // tuning override, 0 = automatic
int g_num_splits = 0;
int g_schedule = 1;  // 0 = rows, 1 = balanced (the default; span_schedule.h)
int g_fused_combine = 0;  // balanced: 1 = the last split block of a unit merges (no combine kernel)

struct Params {
  // balanced schedule only (NULL for the rows schedule): the plan kernel's block map
  // (b, unit, split, splits of the row) and per-row first block / split count
  const int4* map;
  const int* row_start;
  const int* row_n;
  // balanced schedule with the fused combine only (else NULL): per (sequence, unit), how many
  // of its split blocks have stored their partials (the plan kernel zeroes them; the last
  // block to arrive merges and sets its counter back to 0)
  int* counters;
  const void* q;
  const void* k;
  const void* v;
  const int* intervals;
  const int* n_intervals;
  const int* seq_lens;
  void* out;
  float* part_o;   // (B, Hq, S, D)
  float* part_ml;  // (B, Hq, S, 2): running max (log2 domain) and sum
  int batch, heads_q, heads_kv, max_len, max_intervals;
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

// K/V rows are read exactly once and never by another thread: each lane copies its
// own 16 bytes of a row into shared memory with cp.async (no registers held while the
// load is in flight, so several tiles can be in flight per thread) and reads back only
// what it copied itself, so a per-thread cp.async.wait_group is the only ordering needed.
// src_size 0 zero-fills the slot without reading global memory (rows past the slice).
__device__ __forceinline__ void cp_async16(void* smem_dst, const void* src, bool valid) {
  const unsigned dst = (unsigned)__cvta_generic_to_shared(smem_dst);
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Programmatic dependent launch (sm_90+): the combine kernel is launched while the
// split kernel's last blocks run and waits here for their results.
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_primary_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Kernel variants, by the id spanattn_set_tuning takes (timings in NOTES.md). SIMT: TPG
// tokens per lane group per step and a STAGES-deep cp.async ring, so (STAGES - 1) * TPG *
// 32 bytes of K+V are in flight per thread. MMA: 16 tokens per warp per step, 3 stages.
// Only variants that ran on the GPU are compiled; id 3 exists for blocks of 4 query heads
// (its default) and falls back to id 1 otherwise.
struct Variant {
  int id;
  bool mma;
  int tpg, stages;
};
constexpr Variant kVariants[] = {{1, false, 4, 3}, {3, false, 4, 4}, {5, true, 16, 3}};

const Variant& variant_by_id(int id) {
  for (const Variant& v : kVariants)
    if (v.id == id) return v;
  return kVariants[0];
}

// Defaults are what the GPU fuzz and benchmark ran with this code (NOTES.md): blocks of
// 1-2 query heads -> 1 (fuzz), 4 -> 3 (fuzz of its template + the benchmark sweep),
// 5-8 -> 5, the tensor-core kernel (fuzz, sanitizer, harness; the SIMT template would
// need ~240 registers there).
int resolve_variant(int gmax, int requested) {
  if (requested == 1 || requested == 5) return requested;
  if (requested == 3) return gmax == 4 ? 3 : 1;
  return gmax == 8 ? 5 : gmax == 4 ? 3 : 1;
}

// ---------------------------------------------------------------- shared pieces
// Clip each interval to [0, seq_len) and scan the lengths across the block:
// s_cum[i] = kept tokens in intervals 0..i, s_end[i] = clipped end. Returns the total
// (same value in every thread). first_* are interval `threadIdx.x`, loaded early.
__device__ __forceinline__ int scan_kept_lengths(const int* iv, int n_iv, int seq_len,
                                                 int first_start, int first_end, int* s_end,
                                                 int* s_cum) {
  __shared__ int s_warp_sum[kThreads / 32];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int total = 0;
  for (int base = 0; base < n_iv; base += kThreads) {
    const int i = base + tid;
    int end = 0, len = 0;
    if (i < n_iv) {
      const int start = max(base == 0 ? first_start : __ldg(iv + 2 * i), 0);
      end = min(base == 0 ? first_end : __ldg(iv + 2 * i + 1), seq_len);
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
  return total;
}

// First interval index i with s_cum[i] > k (k < total).
__device__ __forceinline__ int find_interval(const int* s_cum, int n_iv, int k) {
  int lo = 0, hi = n_iv - 1;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (s_cum[mid] > k) hi = mid; else lo = mid + 1;
  }
  return lo;
}

// Cache position of kept token kk; `cur` walks forward (kk only grows per caller).
__device__ __forceinline__ int kept_position(const int* s_cum, const int* s_end, int n_iv,
                                             int seq_len, int kk, int& cur) {
  while (cur < n_iv - 1 && kk >= s_cum[cur]) ++cur;
  return min(max(s_end[cur] - (s_cum[cur] - kk), 0), seq_len - 1);
}

// Merge NPART partial softmax states per head (s_ml: [NPART][HSTRIDE][2] max, sum;
// s_acc: [NPART][HSTRIDE][D] unnormalised outputs) and write the block's result: the
// final output when there is one split, else this split's slot of the workspace.
template <typename T, int D, int NPART, int HSTRIDE>
__device__ __forceinline__ void store_block_result(const Params& p, const float* s_acc,
                                                   const float* s_ml, int b, int unit, int head0,
                                                   int nheads, int nsplit, size_t slot0,
                                                   int slot_stride) {
  for (int e = threadIdx.x; e < nheads * D; e += kThreads) {
    const int g = e / D, d = e - g * D;
    float mx = -INFINITY;
#pragma unroll
    for (int x = 0; x < NPART; ++x) mx = fmaxf(mx, s_ml[(x * HSTRIDE + g) * 2]);
    const float m_safe = mx == -INFINITY ? 0.f : mx;
    float o = 0.f, sum = 0.f;
#pragma unroll
    for (int x = 0; x < NPART; ++x) {
      const float w = exp2f(s_ml[(x * HSTRIDE + g) * 2] - m_safe);
      sum = fmaf(w, s_ml[(x * HSTRIDE + g) * 2 + 1], sum);
      o = fmaf(w, s_acc[(x * HSTRIDE + g) * D + d], o);
    }
    const size_t bh = (size_t)b * p.heads_q + head0 + g;
    if (nsplit == 1) {
      reinterpret_cast<T*>(p.out)[bh * D + d] = from_float<T>(sum > 0.f ? o / sum : 0.f);
    } else {
      const size_t slot = slot0 + (size_t)g * slot_stride;
      p.part_o[slot * D + d] = o;
      if (d == 0) {
        p.part_ml[slot * 2] = mx;
        p.part_ml[slot * 2 + 1] = sum;
      }
    }
  }
  if (p.counters == nullptr || nsplit == 1) return;
  // Fused combine (balanced schedule): the last of the unit's nsplit blocks to store its
  // partials merges all of them, in the combine kernel's order (the same bits), and sets the
  // unit's counter back to 0 for the next call. Classic threadfence reduction: every block
  // makes its partials visible device-wide before it counts, the last reads them from L2.
  __shared__ int s_last;
  __threadfence();
  __syncthreads();
  int* counter = p.counters + (size_t)b * (p.heads_kv * p.head_chunks) + unit;
  if (threadIdx.x == 0) s_last = atomicAdd(counter, 1) == nsplit - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const size_t first =
      (size_t)spanattn_schedule::unit_first_block(p.row_start, p.row_n, b, unit) * p.heads_per_chunk;
  const size_t stride = p.heads_per_chunk;
  for (int e = threadIdx.x; e < nheads * D; e += kThreads) {
    const int g = e / D, d = e - g * D;
    float mx = -INFINITY;
    for (int x = 0; x < nsplit; ++x) mx = fmaxf(mx, __ldcg(p.part_ml + 2 * (first + x * stride + g)));
    const float m_safe = mx == -INFINITY ? 0.f : mx;
    float o = 0.f, sum = 0.f;
    for (int x = 0; x < nsplit; ++x) {
      const size_t slot = first + x * stride + g;
      const float w = exp2f(__ldcg(p.part_ml + 2 * slot) - m_safe);
      sum = fmaf(w, __ldcg(p.part_ml + 2 * slot + 1), sum);
      o = fmaf(w, __ldcg(p.part_o + slot * D + d), o);
    }
    const size_t bh = (size_t)b * p.heads_q + head0 + g;
    reinterpret_cast<T*>(p.out)[bh * D + d] = from_float<T>(sum > 0.f ? o / sum : 0.f);
  }
  if (threadIdx.x == 0) *counter = 0;
}

// Which piece of work this block owns: its sequence, KV head, head chunk, split and the
// number of splits of its unit, and where its partial results go (slot0 + g * stride for
// the g-th head of the chunk). Rows schedule: from the grid position. Balanced schedule:
// from the plan kernel's map (waiting for it first); false = nothing to do.
struct BlockWork {
  int b, hkv, chunk, split, nsplit, slot_stride;
  size_t slot0;
};

__device__ __forceinline__ bool block_work(const Params& p, BlockWork& w) {
  if (p.map == nullptr) {
    w.split = blockIdx.x;
    w.nsplit = p.num_splits;
    w.hkv = blockIdx.y / p.head_chunks;
    w.chunk = blockIdx.y - w.hkv * p.head_chunks;
    w.b = blockIdx.z;
    const int head0 = w.hkv * p.group + w.chunk * p.heads_per_chunk;
    w.slot0 = ((size_t)w.b * p.heads_q + head0) * p.num_splits + w.split;
    w.slot_stride = p.num_splits;
    return true;
  }
  wait_for_primary_grid();  // the map is the plan kernel's output
  const int4 e = p.map[blockIdx.x];
  if (e.x < 0) return false;
  w.b = e.x;
  w.hkv = e.y / p.head_chunks;
  w.chunk = e.y - w.hkv * p.head_chunks;
  w.split = e.z;
  w.nsplit = e.w;
  w.slot0 = (size_t)blockIdx.x * p.heads_per_chunk;
  w.slot_stride = 1;
  return true;
}

// ---------------------------------------------------------------- SIMT split kernel
template <typename T, int D, int GMAX, int TPG, int STAGES>
__global__ void __launch_bounds__(kThreads) span_decode_split_kernel(const Params p) {
  constexpr int LG = D / 8;           // lanes per K/V row
  constexpr int NLG = kThreads / LG;  // lane groups per block
  static_assert(LG <= 32 && (32 % LG) == 0, "a row must fit inside one warp");

  constexpr int kStageRows = 2 * TPG * kThreads;  // uint4 slots per stage (K then V)

  extern __shared__ __align__(128) unsigned char smem_raw[];
  uint4* kv_tiles = reinterpret_cast<uint4*>(smem_raw);         // [STAGES][2][TPG][kThreads]
  int* s_end = reinterpret_cast<int*>(kv_tiles + STAGES * kStageRows);  // [I] clipped ends
  int* s_cum = s_end + p.max_intervals;  // [I] inclusive prefix of lengths
  const int tid = threadIdx.x;
  BlockWork w;
  if (!block_work(p, w)) return;
  const int split = w.split, hkv = w.hkv, chunk = w.chunk, b = w.b;
  const int head0 = hkv * p.group + chunk * p.heads_per_chunk;
  const int nheads = min(p.heads_per_chunk, p.group - chunk * p.heads_per_chunk);
  const int lg = tid / LG, li = tid - lg * LG;
  const int* iv = p.intervals + (size_t)b * p.max_intervals * 2;

  // Issue every independent global load of the prologue at once: lengths, the first
  // chunk of intervals (speculatively, before n_intervals is known) and q.
  const int seq_len_raw = __ldg(p.seq_lens + b);
  const int n_iv_raw = __ldg(p.n_intervals + b);
  int first_start = 0, first_end = 0;
  if (tid < p.max_intervals) {
    first_start = __ldg(iv + 2 * tid);
    first_end = __ldg(iv + 2 * tid + 1);
  }
  const T* qrow = reinterpret_cast<const T*>(p.q) + ((size_t)b * p.heads_q + head0) * D + li * 8;
  uint4 qraw[GMAX];
#pragma unroll
  for (int g = 0; g < GMAX; ++g)
    qraw[g] = g < nheads ? __ldg(reinterpret_cast<const uint4*>(qrow + g * D)) : make_uint4(0, 0, 0, 0);
  allow_dependent_launch();

  const int seq_len = min(max(seq_len_raw, 0), p.max_len);
  const int n_iv = min(max(n_iv_raw, 0), p.max_intervals);

  // 1. Clip the intervals and scan their lengths: s_cum[i] = kept tokens in 0..i.
  const int total = scan_kept_lengths(iv, n_iv, seq_len, first_start, first_end, s_end, s_cum);

  // 2. This block's share of the kept tokens, and this lane group's slice of it.
  const int a = spanattn_schedule::piece_begin(total, split, w.nsplit);
  const int span = spanattn_schedule::piece_begin(total, split + 1, w.nsplit) - a;
  const int k0 = a + (int)(((long long)span * lg) / NLG);
  const int k1 = a + (int)(((long long)span * (lg + 1)) / NLG);
  // Same trip count for every lane group, so the shuffles below see full warps.
  const int trips = ((span + NLG - 1) / NLG + TPG - 1) / TPG;

  int cur = k0 < k1 ? find_interval(s_cum, n_iv, k0) : 0;  // interval of the next token

  float qf[GMAX][8];
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    unpack8<T>(qraw[g], qf[g]);
#pragma unroll
    for (int j = 0; j < 8; ++j) qf[g][j] *= p.scale_log2;
  }

  const size_t kv_row0 = ((size_t)b * p.heads_kv + hkv) * (size_t)p.max_len;
  const T* kbase = reinterpret_cast<const T*>(p.k) + kv_row0 * D + li * 8;
  const T* vbase = reinterpret_cast<const T*>(p.v) + kv_row0 * D + li * 8;

  // Copy tile `tile` (TPG kept tokens of this lane group's slice) into its stage.
  auto fetch = [&](int tile) {
    uint4* stage = kv_tiles + (tile % STAGES) * kStageRows + tid;
#pragma unroll
    for (int t = 0; t < TPG; ++t) {
      const int kk = k0 + tile * TPG + t;
      const bool valid = kk < k1;
      const int pos = valid ? kept_position(s_cum, s_end, n_iv, seq_len, kk, cur) : 0;
      cp_async16(stage + t * kThreads, kbase + (size_t)pos * D, valid);
      cp_async16(stage + (TPG + t) * kThreads, vbase + (size_t)pos * D, valid);
    }
    cp_async_commit();
  };

  float m[GMAX], l[GMAX], acc[GMAX][8];  // scores are in the log2 domain
#pragma unroll
  for (int g = 0; g < GMAX; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[g][j] = 0.f;
  }

  // 3. Walk the slice, STAGES - 1 tiles ahead of the math.
  if (trips > 0) {
#pragma unroll
    for (int t = 0; t < STAGES - 1; ++t) fetch(t);
  }
  for (int it = 0; it < trips; ++it) {
    fetch(it + STAGES - 1);  // rows past the slice are zero-filled, never read
    cp_async_wait<STAGES - 1>();
    const uint4* stage = kv_tiles + (it % STAGES) * kStageRows + tid;
    bool valid[TPG];
#pragma unroll
    for (int t = 0; t < TPG; ++t) valid[t] = k0 + it * TPG + t < k1;

    float s[TPG][GMAX];
#pragma unroll
    for (int t = 0; t < TPG; ++t) {
      float kf[8];
      unpack8<T>(stage[t * kThreads], kf);
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
      unpack8<T>(stage[(TPG + t) * kThreads], vf);
#pragma unroll
      for (int g = 0; g < GMAX; ++g)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[g][j] = fmaf(s[t][g], vf[j], acc[g][j]);
    }
  }
  cp_async_wait<0>();

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

  store_block_result<T, D, NLG, GMAX>(p, s_acc, s_ml, b, hkv * p.head_chunks + chunk, head0, nheads, w.nsplit,
                                      w.slot0, w.slot_stride);
}

// ---------------------------------------------------------------- tensor-core split kernel
// Same work split as the SIMT kernel, but each WARP owns a slice of the block's kept
// tokens and walks it 16 tokens at a time with mma.sync (m16n8k16, fp32 accumulate),
// FlashAttention-2 style, transposed so GQA heads sit in the narrow N dimension:
//   S^T (16 heads [>= 8 are padding] x 8 tokens) = Q (16 x D) . K^T   (A = q in registers)
//   O^T (D x 8 heads) += V^T (D x 16 tokens) . P^T (16 tokens x 8 heads)
// The C fragment of S^T is, element for element, the B fragment of P^T, so P goes from
// the softmax to the second mma without touching shared memory. K/V tiles are staged
// by cp.async in a STAGES-deep ring per warp, rows XOR-swizzled in 16-byte chunks so
// ldmatrix reads are bank-conflict free. P is rounded to the input dtype for the second
// mma, as FlashAttention and SDPA do; softmax statistics and accumulation stay fp32.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                          uint32_t a3, uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1,
                                                         uint32_t a2, uint32_t a3, uint32_t b0,
                                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], uint32_t a0, uint32_t a1,
                                                  uint32_t a2, uint32_t a3, uint32_t b0,
                                                  uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_ptr) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(smem_ptr);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_ptr) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(smem_ptr);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

constexpr int kMmaHeads = 8;  // N of the PV mma: query heads per block

template <int D>
__device__ __forceinline__ int swizzled(int row, int chunk) {  // byte offset in a tile
  return row * (D * 2) + ((chunk ^ (row & 7)) << 4);
}

template <typename T, int D, int STAGES>
__global__ void __launch_bounds__(kThreads) span_decode_mma_kernel(const Params p) {
  constexpr int kWarps = kThreads / 32;
  constexpr int kTile = 16;                 // kept tokens per warp per step
  constexpr int kTileBytes = kTile * D * 2;  // one K (or V) tile
  constexpr int kStageBytes = 2 * kTileBytes;
  constexpr int kKC = D / 16;  // 16-wide slices of D: k-steps of QK, m-blocks of PV

  extern __shared__ __align__(128) unsigned char smem_raw[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  unsigned char* tiles = smem_raw + warp * STAGES * kStageBytes;
  int* s_end = reinterpret_cast<int*>(smem_raw + kWarps * STAGES * kStageBytes);
  int* s_cum = s_end + p.max_intervals;

  BlockWork w;
  if (!block_work(p, w)) return;
  const int split = w.split, hkv = w.hkv, chunk = w.chunk, b = w.b;
  const int head0 = hkv * p.group + chunk * p.heads_per_chunk;
  const int nheads = min(p.heads_per_chunk, p.group - chunk * p.heads_per_chunk);
  const int* iv = p.intervals + (size_t)b * p.max_intervals * 2;
  const int g = lane >> 2, tq = lane & 3;  // fragment row group / thread-in-quad

  const int seq_len_raw = __ldg(p.seq_lens + b);
  const int n_iv_raw = __ldg(p.n_intervals + b);
  int first_start = 0, first_end = 0;
  if (tid < p.max_intervals) {
    first_start = __ldg(iv + 2 * tid);
    first_end = __ldg(iv + 2 * tid + 1);
  }
  // A fragments of Q: row g = head g (rows 8..15 are padding, zero), k = 2tq(+1), 2tq+8(+9).
  uint32_t qa_lo[kKC], qa_hi[kKC];
  {
    const uint32_t* qw = reinterpret_cast<const uint32_t*>(
        reinterpret_cast<const T*>(p.q) + ((size_t)b * p.heads_q + head0 + min(g, nheads - 1)) * D);
#pragma unroll
    for (int kc = 0; kc < kKC; ++kc) {
      qa_lo[kc] = g < nheads ? __ldg(qw + kc * 8 + tq) : 0u;
      qa_hi[kc] = g < nheads ? __ldg(qw + kc * 8 + tq + 4) : 0u;
    }
  }
  allow_dependent_launch();

  const int seq_len = min(max(seq_len_raw, 0), p.max_len);
  const int n_iv = min(max(n_iv_raw, 0), p.max_intervals);
  const int total = scan_kept_lengths(iv, n_iv, seq_len, first_start, first_end, s_end, s_cum);

  const int a = spanattn_schedule::piece_begin(total, split, w.nsplit);
  const int span = spanattn_schedule::piece_begin(total, split + 1, w.nsplit) - a;
  const int k0 = a + (int)(((long long)span * warp) / kWarps);
  const int k1 = a + (int)(((long long)span * (warp + 1)) / kWarps);
  const int trips = (k1 - k0 + kTile - 1) / kTile;  // per warp: nothing below syncs warps

  // Filling: lane copies row (lane & 15) of each tile, chunks (lane >> 4) + 2j.
  const int fill_row = lane & 15, fill_half = lane >> 4;
  int cur = k0 + fill_row < k1 ? find_interval(s_cum, n_iv, k0 + fill_row) : 0;
  const size_t kv_row0 = ((size_t)b * p.heads_kv + hkv) * (size_t)p.max_len;
  const T* kbase = reinterpret_cast<const T*>(p.k) + kv_row0 * D;
  const T* vbase = reinterpret_cast<const T*>(p.v) + kv_row0 * D;
  auto fetch = [&](int tile) {
    unsigned char* st = tiles + (tile % STAGES) * kStageBytes;
    const int kk = k0 + tile * kTile + fill_row;
    const bool valid = kk < k1;
    const int pos = valid ? kept_position(s_cum, s_end, n_iv, seq_len, kk, cur) : 0;
    const T* krow = kbase + (size_t)pos * D;
    const T* vrow = vbase + (size_t)pos * D;
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      const int c = fill_half + 2 * j;
      const int off = swizzled<D>(fill_row, c);
      cp_async16(st + off, krow + c * 8, valid);
      cp_async16(st + kTileBytes + off, vrow + c * 8, valid);
    }
    cp_async_commit();
  };

  float m_run = -INFINITY, l_run = 0.f;  // head g; l_run is this lane's share of the sum
  float acc[kKC][4];  // O^T: d = mb*16 + g (+8 for [2], [3]), heads 2tq, 2tq+1
#pragma unroll
  for (int mb = 0; mb < kKC; ++mb) acc[mb][0] = acc[mb][1] = acc[mb][2] = acc[mb][3] = 0.f;

  if (trips > 0) {
#pragma unroll
    for (int t = 0; t < STAGES - 1; ++t) fetch(t);
  }
  for (int it = 0; it < trips; ++it) {
    __syncwarp();  // every lane is done reading the stage fetch() overwrites
    fetch(it + STAGES - 1);
    cp_async_wait<STAGES - 1>();
    __syncwarp();  // ... and every lane's copies of tile `it` have landed
    const unsigned char* st = tiles + (it % STAGES) * kStageBytes;

    float sc[2][4];  // S^T for tokens 0-7 and 8-15 of the tile
#pragma unroll
    for (int nb = 0; nb < 2; ++nb) {
      sc[nb][0] = sc[nb][1] = sc[nb][2] = sc[nb][3] = 0.f;
#pragma unroll
      for (int kc = 0; kc < kKC; kc += 2) {
        uint32_t kb[4];  // B fragments of K^T for k-steps kc and kc+1
        ldmatrix_x4(kb, st + swizzled<D>(nb * 8 + (lane & 7), kc * 2 + (lane >> 3)));
        mma_16816<T>(sc[nb], qa_lo[kc], 0u, qa_hi[kc], 0u, kb[0], kb[1]);
        mma_16816<T>(sc[nb], qa_lo[kc + 1], 0u, qa_hi[kc + 1], 0u, kb[2], kb[3]);
      }
    }

    // Online softmax for head g over tile tokens 2tq, 2tq+1, 8+2tq, 9+2tq.
    const int first = k0 + it * kTile;
    float sv[4] = {sc[0][0], sc[0][1], sc[1][0], sc[1][1]};
    const int tok[4] = {2 * tq, 2 * tq + 1, 8 + 2 * tq, 9 + 2 * tq};
    float tile_max = -INFINITY;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      sv[i] = first + tok[i] < k1 ? sv[i] * p.scale_log2 : -INFINITY;
      tile_max = fmaxf(tile_max, sv[i]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 2));
    const float m_new = fmaxf(m_run, tile_max);
    const float m_safe = m_new == -INFINITY ? 0.f : m_new;
    const float alpha = exp2f(m_run - m_safe);
    m_run = m_new;
    float tile_sum = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      sv[i] = exp2f(sv[i] - m_safe);
      tile_sum += sv[i];
    }
    l_run = fmaf(l_run, alpha, tile_sum);
    // O^T columns are heads 2tq, 2tq+1; head h's alpha is in lane 4h.
    const float alpha_a = __shfl_sync(kFullMask, alpha, 8 * tq);
    const float alpha_b = __shfl_sync(kFullMask, alpha, 8 * tq + 4);
    const uint32_t pb0 = pack2<T>(sv[0], sv[1]), pb1 = pack2<T>(sv[2], sv[3]);

#pragma unroll
    for (int mb = 0; mb < kKC; ++mb) {
      acc[mb][0] *= alpha_a;
      acc[mb][1] *= alpha_b;
      acc[mb][2] *= alpha_a;
      acc[mb][3] *= alpha_b;
      uint32_t va[4];  // A fragment of V^T: d rows mb*16.., tokens 0-15
      const int mi = lane >> 3;
      ldmatrix_x4_trans(va, st + kTileBytes + swizzled<D>((mi >> 1) * 8 + (lane & 7), mb * 2 + (mi & 1)));
      mma_16816<T>(acc[mb], va[0], va[1], va[2], va[3], pb0, pb1);
    }
  }
  cp_async_wait<0>();

  l_run += __shfl_xor_sync(kFullMask, l_run, 1);
  l_run += __shfl_xor_sync(kFullMask, l_run, 2);
  __syncthreads();  // tiles and interval tables are dead: reuse the memory for the merge
  float* s_acc = reinterpret_cast<float*>(smem_raw);  // [kWarps][kMmaHeads][D]
  float* s_ml = s_acc + kWarps * kMmaHeads * D;       // [kWarps][kMmaHeads][2]
#pragma unroll
  for (int mb = 0; mb < kKC; ++mb) {
    float* row_a = s_acc + (warp * kMmaHeads + 2 * tq) * D + mb * 16 + g;
    float* row_b = row_a + D;
    row_a[0] = acc[mb][0];
    row_b[0] = acc[mb][1];
    row_a[8] = acc[mb][2];
    row_b[8] = acc[mb][3];
  }
  if (tq == 0) {
    s_ml[(warp * kMmaHeads + g) * 2] = m_run;
    s_ml[(warp * kMmaHeads + g) * 2 + 1] = l_run;
  }
  __syncthreads();
  store_block_result<T, D, kWarps, kMmaHeads>(p, s_acc, s_ml, b, hkv * p.head_chunks + chunk, head0, nheads,
                                              w.nsplit, w.slot0, w.slot_stride);
}

// ---------------------------------------------------------------- combine kernel
// One block per (sequence, query head), one thread per output element. Rows schedule: the
// S partials of (b, h) are adjacent. Balanced: the row's n splits of this head's unit are
// the unit's n consecutive blocks, one slot per head of the chunk; n == 1 (every row that
// keeps nothing among them) wrote the output in the split kernel already. Not launched with
// the fused combine (spanattn_set_combine(1)): the split kernel's last block merges.
template <typename T>
__global__ void span_decode_combine_kernel(const Params p, int head_dim) {
  wait_for_primary_grid();
  const size_t bh = blockIdx.x;
  size_t first;
  int count, stride;
  if (p.map == nullptr) {
    first = bh * p.num_splits;
    count = p.num_splits;
    stride = 1;
  } else {
    const int b = (int)(bh / p.heads_q), h = (int)(bh - (size_t)b * p.heads_q);
    const int hkv = h / p.group, r = h - hkv * p.group;
    const int chunk = r / p.heads_per_chunk, g = r - chunk * p.heads_per_chunk;
    count = p.row_n[b];
    if (count == 1) return;
    first = (size_t)spanattn_schedule::unit_first_block(p.row_start, p.row_n, b, hkv * p.head_chunks + chunk) *
                p.heads_per_chunk + g;
    stride = p.heads_per_chunk;
  }
  const float* ml = p.part_ml;
  float mx = -INFINITY;
  for (int s = 0; s < count; ++s) mx = fmaxf(mx, ml[2 * (first + (size_t)s * stride)]);
  const float m_safe = mx == -INFINITY ? 0.f : mx;
  T* out = reinterpret_cast<T*>(p.out);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.f, sum = 0.f;
    for (int s = 0; s < count; ++s) {
      const size_t slot = first + (size_t)s * stride;
      const float w = exp2f(ml[2 * slot] - m_safe);
      sum = fmaf(w, ml[2 * slot + 1], sum);
      o = fmaf(w, p.part_o[slot * head_dim + d], o);
    }
    out[bh * head_dim + d] = from_float<T>(sum > 0.f ? o / sum : 0.f);
  }
}

// ---------------------------------------------------------------- plan kernel (balanced)
// One block: kept tokens per row (clipped exactly as the split kernels clip them), splits
// per row (spanattn_schedule::row_blocks), their prefix over rows, and the block map.
// Global writes of one phase are read by other threads of the block in the next, after
// __syncthreads (which orders global memory within a block too).
constexpr int kPlanThreads = 512;

__global__ void __launch_bounds__(kPlanThreads) span_plan_kernel(const Params p, int4* map, int* row_start,
                                                                 int* row_n, long long work_blocks,
                                                                 int grid_blocks) {
  namespace ss = spanattn_schedule;
  __shared__ long long s_red[kPlanThreads];
  __shared__ int s_scan[kPlanThreads];
  const int tid = threadIdx.x, B = p.batch, Y = p.heads_kv * p.head_chunks;
  // Wait for whatever ran before on the stream (with programmatic serialization of this
  // launch it may start early), then let the split kernel launch: it waits for the map.
  wait_for_primary_grid();
  allow_dependent_launch();
  // the fused combine's counters, always (the plan outlives a change of spanattn_set_combine)
  for (int i = tid; i < B * Y; i += kPlanThreads) p.counters[i] = 0;

  long long mine = 0;
  for (int b = tid; b < B; b += kPlanThreads) {
    const int t = ss::row_kept_tokens(p.intervals + (size_t)b * p.max_intervals * 2,
                                      ss::clamp_n_intervals(p.n_intervals[b], p.max_intervals),
                                      ss::clamp_seq_len(p.seq_lens[b], p.max_len));
    row_n[b] = t;  // kept tokens for now; splits below
    mine += t;
  }
  s_red[tid] = mine;
  __syncthreads();
  for (int o = kPlanThreads / 2; o > 0; o >>= 1) {
    if (tid < o) s_red[tid] += s_red[tid + o];
    __syncthreads();
  }
  const long long total = s_red[0];

  const int per = (B + kPlanThreads - 1) / kPlanThreads;  // contiguous rows per thread
  const int c0 = min(B, tid * per), c1 = min(B, c0 + per);
  int local = 0;
  for (int b = c0; b < c1; ++b) {
    const int n = ss::row_blocks(row_n[b], total, work_blocks, Y);
    row_n[b] = n;
    local += Y * n;
  }
  s_scan[tid] = local;
  __syncthreads();
  for (int o = 1; o < kPlanThreads; o <<= 1) {  // inclusive scan of the per-thread sums
    const int v = tid >= o ? s_scan[tid - o] : 0;
    __syncthreads();
    s_scan[tid] += v;
    __syncthreads();
  }
  int run = s_scan[tid] - local;
  for (int b = c0; b < c1; ++b) {
    row_start[b] = run;
    run += Y * row_n[b];
  }
  const int total_blocks = s_scan[kPlanThreads - 1];
  __syncthreads();
  for (int i = tid; i < grid_blocks; i += kPlanThreads) {
    const ss::Entry e = ss::map_entry(row_start, row_n, B, Y, total_blocks, i);
    map[i] = make_int4(e.b, e.unit, e.split, e.n);
  }
}

// ---------------------------------------------------------------- host side
using SplitKernel = void (*)(Params);

template <typename T, int D, int GMAX>
SplitKernel pick_variant(int variant) {
  if (variant == 5) return span_decode_mma_kernel<T, D, 3>;
  if constexpr (GMAX == 4) {
    if (variant == 3) return span_decode_split_kernel<T, D, GMAX, 4, 4>;
  }
  return span_decode_split_kernel<T, D, GMAX, 4, 3>;
}

template <typename T, int D>
SplitKernel pick_gmax(int gmax, int variant) {
  switch (gmax) {
    case 1: return pick_variant<T, D, 1>(variant);
    case 2: return pick_variant<T, D, 2>(variant);
    case 4: return pick_variant<T, D, 4>(variant);
    default: return pick_variant<T, D, 8>(variant);
  }
}

struct Plan {
  SplitKernel kernel;
  int gmax, variant, group, head_chunks, heads_per_chunk, num_splits;
  int schedule;       // 0 rows, 1 balanced
  int grid_blocks;    // balanced: W + P blocks (1-D grid)
  long long work_blocks;  // balanced: W = num_splits x P
  size_t map_offset;  // balanced: byte offset of the int4 map in the workspace (then row_start, row_n, counters)
  bool dependent_launch;
  size_t smem_bytes, workspace_bytes;
};

// Query heads per KV head, chunks of <= kMaxHeadsPerBlock of them, heads per chunk.
void head_layout(int heads_q, int heads_kv, int* group, int* chunks, int* per_chunk) {
  *group = heads_q / heads_kv;
  *chunks = (*group + kMaxHeadsPerBlock - 1) / kMaxHeadsPerBlock;
  *per_chunk = (*group + *chunks - 1) / *chunks;
}

// Balanced grid: W = num_splits x P work blocks, W + P blocks in all (P = batch x units).
int balanced_grid(int batch, int units_per_row, int num_splits, long long* work_blocks, int* grid_blocks) {
  const long long pairs = (long long)batch * units_per_row;
  const long long work = (long long)num_splits * pairs;
  if (work + pairs > 0x7fffffffLL)
    return fail(SPANATTN_ERR_ARGUMENT, "the balanced schedule needs %lld blocks, more than a grid holds", work + pairs);
  *work_blocks = work;
  *grid_blocks = (int)(work + pairs);
  return SPANATTN_OK;
}

// Workspace of the balanced schedule: partials per (block, head of its chunk), then the plan:
// the map (int4 a block), row_start and row_n (B each), the fused combine's counters (B x units).
int balanced_layout(int batch, int units_per_row, int num_splits, int heads_per_chunk, int head_dim,
                    long long* work_blocks, int* grid_blocks, size_t* map_offset, size_t* bytes) {
  const int status = balanced_grid(batch, units_per_row, num_splits, work_blocks, grid_blocks);
  if (status != SPANATTN_OK) return status;
  const long long grid = *grid_blocks;
  const size_t floats = (size_t)grid * heads_per_chunk * (head_dim + 2);
  const size_t offset = (floats * sizeof(float) + 15) / 16 * 16;
  *map_offset = offset;
  *bytes = offset + (size_t)grid * 4 * sizeof(int) + (size_t)2 * batch * sizeof(int) +
           (size_t)batch * units_per_row * sizeof(int);
  return SPANATTN_OK;
}

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
  // The attribute is a per-kernel cap, so it is only ever raised: set it once per kernel
  // to the most the device allows beside the kernel's static shared memory (lowering it
  // for a smaller call would break a later, cached, larger one).
  static std::map<std::pair<int, const void*>, int> raised_to;
  const auto kernel_key = std::make_pair(device, (const void*)kernel);
  auto raised = raised_to.find(kernel_key);
  if (raised == raised_to.end()) {
    int optin = 0;
    cudaError_t aerr = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (aerr != cudaSuccess) return cuda_fail(aerr, "cudaDeviceGetAttribute(shared memory opt-in)");
    cudaFuncAttributes attrs;
    aerr = cudaFuncGetAttributes(&attrs, (const void*)kernel);
    if (aerr != cudaSuccess) return cuda_fail(aerr, "cudaFuncGetAttributes");
    const int dynamic_max = optin - (int)attrs.sharedSizeBytes;
    aerr = cudaFuncSetAttribute((const void*)kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic_max);
    if (aerr != cudaSuccess) return cuda_fail(aerr, "cudaFuncSetAttribute(shared memory)");
    raised = raised_to.emplace(kernel_key, dynamic_max).first;
  }
  if (smem > (size_t)raised->second)
    return fail(SPANATTN_ERR_ARGUMENT, "the kernel needs %zu bytes of shared memory, the device allows %d "
                "(too many intervals per sequence?)", smem, raised->second);
  int blocks = 0;
  cudaError_t err;
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

struct DeviceInfo {
  int sms, major;
};

int device_info(int device, DeviceInfo* out) {
  static std::mutex mu;
  static std::map<int, DeviceInfo> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto it = cache.find(device);
  if (it != cache.end()) {
    *out = it->second;
    return SPANATTN_OK;
  }
  DeviceInfo info;
  cudaError_t err = cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return cuda_fail(err, "cudaDeviceGetAttribute(SM count)");
  err = cudaDeviceGetAttribute(&info.major, cudaDevAttrComputeCapabilityMajor, device);
  if (err != cudaSuccess) return cuda_fail(err, "cudaDeviceGetAttribute(compute capability)");
  cache[device] = info;
  *out = info;
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
  head_layout(heads_q, heads_kv, &plan->group, &plan->head_chunks, &plan->heads_per_chunk);
  const int hpc = plan->heads_per_chunk;
  plan->gmax = hpc <= 1 ? 1 : hpc <= 2 ? 2 : hpc <= 4 ? 4 : 8;
  plan->variant = resolve_variant(plan->gmax, g_variant);
  if (dtype == SPANATTN_BF16)
    plan->kernel = head_dim == 64 ? pick_gmax<__nv_bfloat16, 64>(plan->gmax, plan->variant)
                                  : pick_gmax<__nv_bfloat16, 128>(plan->gmax, plan->variant);
  else
    plan->kernel = head_dim == 64 ? pick_gmax<__half, 64>(plan->gmax, plan->variant)
                                  : pick_gmax<__half, 128>(plan->gmax, plan->variant);
  const size_t merge_parts = kThreads / (head_dim / 8);  // SIMT lane groups (>= MMA's 4 warps)
  const size_t merge_bytes = merge_parts * std::max(plan->gmax, kMmaHeads) * (head_dim + 2) * sizeof(float);
  const Variant& v = variant_by_id(plan->variant);
  const size_t tile_bytes =
      v.mma ? (size_t)(kThreads / 32) * v.stages * 2 * v.tpg * head_dim * 2
            : (size_t)v.stages * 2 * v.tpg * kThreads * sizeof(uint4);
  const size_t table_bytes = (size_t)max_intervals * 2 * sizeof(int);
  plan->smem_bytes = std::max(merge_bytes, tile_bytes + table_bytes);

  int blocks = 0;
  DeviceInfo info;
  if ((status = blocks_per_sm(plan->kernel, plan->smem_bytes, device, &blocks)) != SPANATTN_OK)
    return status;
  if ((status = device_info(device, &info)) != SPANATTN_OK) return status;
  plan->dependent_launch = info.major >= 9;
  const int pairs = std::max(1, batch * heads_kv * plan->head_chunks);
  plan->num_splits = g_num_splits > 0 ? std::min(g_num_splits, kMaxSplits)
                                      : choose_splits(pairs, info.sms * blocks, max_len);
  plan->schedule = g_schedule;
  plan->grid_blocks = 0;
  plan->work_blocks = 0;
  plan->map_offset = 0;
  if (plan->schedule == 1)
    return balanced_layout(batch, heads_kv * plan->head_chunks, plan->num_splits, plan->heads_per_chunk,
                           head_dim, &plan->work_blocks, &plan->grid_blocks, &plan->map_offset,
                           &plan->workspace_bytes);
  plan->workspace_bytes = plan->num_splits == 1
                              ? 0
                              : (size_t)batch * heads_q * plan->num_splits * (head_dim + 2) *
                                    sizeof(float);
  return SPANATTN_OK;
}

template <typename T>
cudaError_t launch_combine(const Params& p, int batch, int head_dim, bool dependent,
                           cudaStream_t stream) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3((unsigned)(batch * p.heads_q));
  config.blockDim = dim3(head_dim);
  config.stream = stream;
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attr;
  config.numAttrs = dependent ? 1 : 0;
  return cudaLaunchKernelEx(&config, span_decode_combine_kernel<T>, p, head_dim);
}

// The split kernel of the balanced schedule: a 1-D grid after the plan kernel, launched
// early (programmatic dependent launch) and waiting inside for the map.
cudaError_t launch_split_balanced(const Plan& plan, const Params& p, cudaStream_t stream) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3((unsigned)plan.grid_blocks);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = plan.smem_bytes;
  config.stream = stream;
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attr;
  config.numAttrs = plan.dependent_launch ? 1 : 0;
  return cudaLaunchKernelEx(&config, plan.kernel, p);
}

}  // namespace

extern "C" {

int spanattn_abi_version(void) { return SPANATTN_ABI_VERSION; }

const char* spanattn_last_error(void) { return g_last_error; }

int spanattn_set_schedule(int schedule) {
  if (schedule != 0 && schedule != 1)
    return fail(SPANATTN_ERR_ARGUMENT, "schedule must be 0 (rows) or 1 (balanced) (got %d)", schedule);
  g_schedule = schedule;
  return SPANATTN_OK;
}

int spanattn_get_schedule(void) { return g_schedule; }

int spanattn_set_combine(int fused) {
  if (fused != 0 && fused != 1)
    return fail(SPANATTN_ERR_ARGUMENT, "combine must be 0 (combine kernel) or 1 (fused) (got %d)", fused);
  g_fused_combine = fused;
  return SPANATTN_OK;
}

int spanattn_get_combine(void) { return g_fused_combine; }

int spanattn_schedule_host(int batch, int heads_q, int heads_kv, int max_len, int max_intervals,
                           int num_splits, const int32_t* intervals, const int32_t* n_intervals,
                           const int32_t* seq_lens, int32_t* map, int32_t* pieces,
                           int32_t* row_start, int32_t* row_n, int* grid_blocks) {
  namespace ss = spanattn_schedule;
  if (batch < 1 || heads_kv < 1 || heads_q < 1 || heads_q % heads_kv != 0 || num_splits < 1 ||
      max_len < 0 || max_intervals < 0)
    return fail(SPANATTN_ERR_ARGUMENT, "bad shape for spanattn_schedule_host");
  int group, chunks, per_chunk;
  head_layout(heads_q, heads_kv, &group, &chunks, &per_chunk);
  const int units = heads_kv * chunks;
  long long work;
  int grid;
  const int status = balanced_grid(batch, units, num_splits, &work, &grid);
  if (status != SPANATTN_OK) return status;
  *grid_blocks = grid;
  if (!map) return SPANATTN_OK;
  // The plan kernel's phases, one thread; the split kernel's piece bounds per block.
  std::vector<int> kept(batch);
  long long total = 0;
  for (int b = 0; b < batch; ++b) {
    kept[b] = ss::row_kept_tokens(intervals + (size_t)b * max_intervals * 2,
                                  ss::clamp_n_intervals(n_intervals[b], max_intervals),
                                  ss::clamp_seq_len(seq_lens[b], max_len));
    total += kept[b];
  }
  int run = 0;
  for (int b = 0; b < batch; ++b) {
    row_n[b] = ss::row_blocks(kept[b], total, work, units);
    row_start[b] = run;
    run += units * row_n[b];
  }
  for (int i = 0; i < grid; ++i) {
    const ss::Entry e = ss::map_entry(row_start, row_n, batch, units, run, i);
    map[4 * i] = e.b;
    map[4 * i + 1] = e.unit;
    map[4 * i + 2] = e.split;
    map[4 * i + 3] = e.n;
    pieces[2 * i] = e.b < 0 ? 0 : ss::piece_begin(kept[e.b], e.split, e.n);
    pieces[2 * i + 1] = e.b < 0 ? 0 : ss::piece_begin(kept[e.b], e.split + 1, e.n);
  }
  return SPANATTN_OK;
}

int spanattn_set_tuning(int variant, int num_splits) {
  if (variant != 0 && variant_by_id(variant).id != variant)
    return fail(SPANATTN_ERR_ARGUMENT, "variant must be 0 (automatic), 1, 3 or 5 (got %d)",
                variant);
  if (num_splits < 0)
    return fail(SPANATTN_ERR_ARGUMENT, "num_splits must be >= 0 (got %d)", num_splits);
  g_variant = variant;
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

int spanattn_plan_sizes(int batch, int heads_q, int heads_kv, int max_len, int head_dim,
                        int max_intervals, int dtype, int device, int* num_splits,
                        size_t* partials_bytes, size_t* plan_bytes) {
  Plan plan;
  const int status = make_plan(batch, heads_q, heads_kv, max_len, head_dim, max_intervals,
                               dtype, device, &plan);
  if (status != SPANATTN_OK) return status;
  if (num_splits) *num_splits = plan.num_splits;
  const bool balanced = plan.schedule == 1;
  if (partials_bytes) *partials_bytes = balanced ? plan.map_offset : plan.workspace_bytes;
  if (plan_bytes) *plan_bytes = balanced ? plan.workspace_bytes - plan.map_offset : 0;
  return SPANATTN_OK;
}

}  // extern "C"

namespace {

// The plan kernel of the balanced schedule into `plan_buf` (map, row_start, row_n).
cudaError_t launch_plan(const Plan& plan, const Params& p, void* plan_buf, cudaStream_t s) {
  int4* map = reinterpret_cast<int4*>(plan_buf);
  int* row_start = reinterpret_cast<int*>(map + plan.grid_blocks);
  int* row_n = row_start + p.batch;
  long long work_blocks = plan.work_blocks;
  int grid_blocks = plan.grid_blocks;
  Params q = p;
  q.counters = row_n + p.batch;
  void* plan_args[] = {&q, &map, &row_start, &row_n, &work_blocks, &grid_blocks};
  return cudaLaunchKernel((const void*)span_plan_kernel, dim3(1), dim3(kPlanThreads), plan_args, 0, s);
}

// spanattn_span_decode and spanattn_span_decode_planned. Balanced schedule: partials at the
// start of `workspace`; the plan at `plan_buf`, which is the rest of `workspace` when
// run_plan (the plan kernel runs first) and a buffer from spanattn_span_plan otherwise.
int decode_impl(const void* q, const void* k_cache, const void* v_cache, const int32_t* intervals,
                const int32_t* n_intervals, const int32_t* seq_lens, const void* plan_buf,
                size_t plan_bytes, bool run_plan, void* out, void* workspace, size_t workspace_bytes,
                int batch, int heads_q, int heads_kv, int max_len, int head_dim, int max_intervals,
                float scale, int dtype, void* stream) {
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
  const bool balanced = plan.schedule == 1;
  // what the caller's workspace must hold: partials and plan, or (planned) the partials alone
  const size_t need = balanced && !run_plan ? plan.map_offset : plan.workspace_bytes;
  if (workspace_bytes < need || (need > 0 && !workspace))
    return fail(SPANATTN_ERR_ARGUMENT, "workspace must be >= %zu bytes (got %zu)", need,
                workspace ? workspace_bytes : (size_t)0);
  if (balanced && !run_plan) {
    const size_t plan_need = plan.workspace_bytes - plan.map_offset;
    if (!plan_buf || plan_bytes < plan_need)
      return fail(SPANATTN_ERR_ARGUMENT, "plan buffer must be >= %zu bytes (got %zu): make it with "
                  "spanattn_span_plan for the same shape", plan_need, plan_buf ? plan_bytes : (size_t)0);
  }
  if (balanced && run_plan) plan_buf = reinterpret_cast<unsigned char*>(workspace) + plan.map_offset;
  if (!(scale > 0.f) || !isfinite(scale))
    return fail(SPANATTN_ERR_ARGUMENT, "scale must be a positive finite number (got %g)",
                (double)scale);

  Params p;
  p.map = nullptr;
  p.row_start = nullptr;
  p.row_n = nullptr;
  p.counters = nullptr;
  p.batch = batch;
  p.q = q;
  p.k = k_cache;
  p.v = v_cache;
  p.intervals = intervals;
  p.n_intervals = n_intervals;
  p.seq_lens = seq_lens;
  p.out = out;
  p.part_o = reinterpret_cast<float*>(workspace);
  if (balanced) {  // partials per (block, head of the chunk); the plan at plan_buf
    const size_t slots = (size_t)plan.grid_blocks * plan.heads_per_chunk;
    p.part_ml = p.part_o + slots * head_dim;
    p.map = reinterpret_cast<const int4*>(plan_buf);
    p.row_start = reinterpret_cast<const int*>(p.map + plan.grid_blocks);
    p.row_n = p.row_start + batch;
    if (g_fused_combine) p.counters = const_cast<int*>(p.row_n + batch);
  } else {  // partials per (sequence, query head, split)
    p.part_ml = p.part_o ? p.part_o + (size_t)batch * heads_q * plan.num_splits * head_dim : nullptr;
  }
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
  if (balanced) {
    cudaError_t err;
    if (run_plan) {
      err = launch_plan(plan, p, const_cast<void*>(plan_buf), s);
      if (err != cudaSuccess) return cuda_fail(err, "span_plan_kernel launch");
    }
    // planned: the split kernel follows some other kernel of the caller's; it still waits
    // for that one inside (block_work), and the plan kernel ran before it in stream order
    err = launch_split_balanced(plan, p, s);
    if (err != cudaSuccess) return cuda_fail(err, "span_decode_split_kernel launch (balanced)");
    if (p.counters) return SPANATTN_OK;  // fused: the split kernel merged the splits itself
    err = dtype == SPANATTN_BF16
              ? launch_combine<__nv_bfloat16>(p, batch, head_dim, plan.dependent_launch, s)
              : launch_combine<__half>(p, batch, head_dim, plan.dependent_launch, s);
    if (err != cudaSuccess) return cuda_fail(err, "span_decode_combine_kernel launch");
    return SPANATTN_OK;
  }
  const dim3 grid(plan.num_splits, heads_kv * plan.head_chunks, batch);
  void* args[] = {&p};
  cudaError_t err = cudaLaunchKernel((const void*)plan.kernel, grid, dim3(kThreads), args,
                                     plan.smem_bytes, s);
  if (err != cudaSuccess) return cuda_fail(err, "span_decode_split_kernel launch");
  if (plan.num_splits > 1) {
    err = dtype == SPANATTN_BF16
              ? launch_combine<__nv_bfloat16>(p, batch, head_dim, plan.dependent_launch, s)
              : launch_combine<__half>(p, batch, head_dim, plan.dependent_launch, s);
    if (err != cudaSuccess) return cuda_fail(err, "span_decode_combine_kernel launch");
  }
  return SPANATTN_OK;
}

}  // namespace

extern "C" {

int spanattn_span_decode(const void* q, const void* k_cache, const void* v_cache,
                         const int32_t* intervals, const int32_t* n_intervals,
                         const int32_t* seq_lens, void* out, void* workspace,
                         size_t workspace_bytes, int batch, int heads_q, int heads_kv,
                         int max_len, int head_dim, int max_intervals, float scale,
                         int dtype, void* stream) {
  return decode_impl(q, k_cache, v_cache, intervals, n_intervals, seq_lens, nullptr, 0, true, out,
                     workspace, workspace_bytes, batch, heads_q, heads_kv, max_len, head_dim,
                     max_intervals, scale, dtype, stream);
}

int spanattn_span_plan(const int32_t* intervals, const int32_t* n_intervals, const int32_t* seq_lens,
                       void* plan_buf, size_t plan_bytes, int batch, int heads_q, int heads_kv,
                       int max_len, int head_dim, int max_intervals, int dtype, void* stream) {
  int device = 0;
  const cudaError_t derr = cudaGetDevice(&device);
  if (derr != cudaSuccess) return cuda_fail(derr, "cudaGetDevice");
  Plan plan;
  const int status = make_plan(batch, heads_q, heads_kv, max_len, head_dim, max_intervals, dtype,
                               device, &plan);
  if (status != SPANATTN_OK) return status;
  if (plan.schedule != 1 || batch == 0) return SPANATTN_OK;  // the rows schedule has no plan
  if (!n_intervals || !seq_lens || (max_intervals > 0 && !intervals))
    return fail(SPANATTN_ERR_ARGUMENT, "a required pointer is NULL");
  const size_t need = plan.workspace_bytes - plan.map_offset;
  if (!plan_buf || plan_bytes < need)
    return fail(SPANATTN_ERR_ARGUMENT, "plan buffer must be >= %zu bytes (got %zu)", need,
                plan_buf ? plan_bytes : (size_t)0);
  Params p = {};
  p.batch = batch;
  p.intervals = intervals;
  p.n_intervals = n_intervals;
  p.seq_lens = seq_lens;
  p.heads_q = heads_q;
  p.heads_kv = heads_kv;
  p.max_len = max_len;
  p.max_intervals = max_intervals;
  p.group = plan.group;
  p.head_chunks = plan.head_chunks;
  p.heads_per_chunk = plan.heads_per_chunk;
  p.num_splits = plan.num_splits;
  const cudaError_t err = launch_plan(plan, p, plan_buf, reinterpret_cast<cudaStream_t>(stream));
  if (err != cudaSuccess) return cuda_fail(err, "span_plan_kernel launch");
  return SPANATTN_OK;
}

int spanattn_span_decode_planned(const void* q, const void* k_cache, const void* v_cache,
                                 const int32_t* intervals, const int32_t* n_intervals,
                                 const int32_t* seq_lens, const void* plan_buf, size_t plan_bytes,
                                 void* out, void* workspace, size_t workspace_bytes, int batch,
                                 int heads_q, int heads_kv, int max_len, int head_dim,
                                 int max_intervals, float scale, int dtype, void* stream) {
  return decode_impl(q, k_cache, v_cache, intervals, n_intervals, seq_lens, plan_buf, plan_bytes,
                     false, out, workspace, workspace_bytes, batch, heads_q, heads_kv, max_len,
                     head_dim, max_intervals, scale, dtype, stream);
}

}  // extern "C"
